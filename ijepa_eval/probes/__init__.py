"""Probes trained on frozen features: a linear grid, logistic regression, k-NN, the attentive
probe, depth, nearest class mean.

Each module holds a probe's library functions (usable on any tensors) and its `Probe` class,
the contract the evaluation pipeline runs (`ijepa_eval.probes.base`). They run on the GPU when
there is one (`device=None`) and choose hyper-parameters on a selection split only.
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
        "ijepa_eval.probes.base": (
            "Part",
            "Probe",
            "ProbeInputs",
            "ProbeResult",
            "find_probe",
            "probe_registry",
        ),
        "ijepa_eval.probes.common": (
            "ProbeError",
            "ProbeWarning",
            "resolve_device",
            "select_on_val",
        ),
        "ijepa_eval.probes.knn": ("KnnConfig", "knn_classify", "knn_eval"),
        "ijepa_eval.probes.linear": (
            "DINOV2_LRS",
            "GridResult",
            "LinearGridConfig",
            "LinearHead",
            "LinearProbeResult",
            "fit_linear",
            "linear_grid",
            "linear_probe",
        ),
        "ijepa_eval.probes.logreg": (
            "DINOV2_CS",
            "LogRegConfig",
            "LogRegModel",
            "LogRegResult",
            "logreg_fit",
            "logreg_grid",
        ),
        "ijepa_eval.probes.metrics": ("ClassificationMeter", "classification_metrics"),
        "ijepa_eval.probes.split": ("sample_per_class", "stratified_split"),
    },
)
