"""Probes trained on frozen features: a linear grid, logistic regression, and k-NN.

They take features already pooled into (N, D) tensors (see `FeatureSet.pooled()`), run on the
GPU when there is one (`device=None`), and choose hyper-parameters on a validation split only.
"""

from ijepa_eval.probes.attentive import (
    AttentiveClassifier,
    AttentiveConfig,
    AttentiveProbeResult,
    ConcatTokens,
    TokenRows,
    attentive_probe,
    fit_attentive,
)
from ijepa_eval.probes.common import ProbeError, ProbeWarning, resolve_device
from ijepa_eval.probes.knn import knn_eval
from ijepa_eval.probes.linear import (
    DINOV2_LRS,
    GridResult,
    LinearGridConfig,
    LinearHead,
    LinearProbeResult,
    fit_linear,
    linear_grid,
    linear_probe,
    select_on_val,
)
from ijepa_eval.probes.logreg import DINOV2_CS, LogRegModel, LogRegResult, logreg_fit, logreg_grid
from ijepa_eval.probes.metrics import ClassificationMeter, classification_metrics
from ijepa_eval.probes.split import sample_per_class, stratified_split

__all__ = [
    "AttentiveClassifier",
    "AttentiveConfig",
    "AttentiveProbeResult",
    "ConcatTokens",
    "TokenRows",
    "attentive_probe",
    "fit_attentive",
    "DINOV2_CS",
    "DINOV2_LRS",
    "ClassificationMeter",
    "GridResult",
    "LinearGridConfig",
    "LinearHead",
    "LinearProbeResult",
    "LogRegModel",
    "LogRegResult",
    "ProbeError",
    "ProbeWarning",
    "classification_metrics",
    "fit_linear",
    "knn_eval",
    "linear_grid",
    "linear_probe",
    "logreg_fit",
    "logreg_grid",
    "resolve_device",
    "sample_per_class",
    "select_on_val",
    "stratified_split",
]
