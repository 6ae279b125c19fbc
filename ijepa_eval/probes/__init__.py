"""Probes trained on frozen features: a linear grid, logistic regression, and k-NN.

They take features already pooled into (N, D) tensors (see `FeatureSet.pooled()`), run on the
GPU when there is one (`device=None`), and choose hyper-parameters on a validation split only.
"""

from ijepa_eval.lazy import lazy_exports

__all__ = lazy_exports(
    __name__,
    {
        "ijepa_eval.probes.attentive": (
            "AttentiveClassifier",
            "AttentiveConfig",
            "AttentiveProbeResult",
            "ConcatTokens",
            "TokenRows",
            "attentive_probe",
            "fit_attentive",
        ),
        "ijepa_eval.probes.common": ("ProbeError", "ProbeWarning", "resolve_device"),
        "ijepa_eval.probes.knn": ("knn_eval",),
        "ijepa_eval.probes.linear": (
            "DINOV2_LRS",
            "GridResult",
            "LinearGridConfig",
            "LinearHead",
            "LinearProbeResult",
            "fit_linear",
            "linear_grid",
            "linear_probe",
            "select_on_val",
        ),
        "ijepa_eval.probes.logreg": (
            "DINOV2_CS",
            "LogRegModel",
            "LogRegResult",
            "logreg_fit",
            "logreg_grid",
        ),
        "ijepa_eval.probes.metrics": ("ClassificationMeter", "classification_metrics"),
        "ijepa_eval.probes.split": ("sample_per_class", "stratified_split"),
    },
)
