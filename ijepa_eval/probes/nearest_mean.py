"""Nearest class mean: each test item takes the class whose mean training feature is closest.

No training and nothing to tune, so it is the cheapest probe there is, and the worked example of
the probe contract (docs/tasks-and-probes.md): a config, the inputs it needs, `run`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ijepa_eval.probes.base import (
    CLASSIFICATION_METRICS,
    Probe,
    ProbeInputs,
    ProbeResult,
    classification_predictions,
)
from ijepa_eval.probes.common import ProbeError, check_pair
from ijepa_eval.probes.metrics import classification_metrics


@dataclass(frozen=True)
class NearestMeanConfig:
    metric: str = "cosine"  # cosine: L2-normalised features and means; euclidean: raw distance

    def __post_init__(self) -> None:
        if self.metric not in ("cosine", "euclidean"):
            raise ProbeError(f"metric must be 'cosine' or 'euclidean', not {self.metric!r}")


class NearestMeanProbe(Probe):
    name = "nearest_mean"
    reports = CLASSIFICATION_METRICS
    Config = NearestMeanConfig
    inputs = "pooled"  # (N, D) features per representation
    targets = "classes"
    selects = False  # nothing to choose: fit on all of train

    def run(
        self, inputs: ProbeInputs, config: NearestMeanConfig, device: str | None
    ) -> ProbeResult:
        rep = inputs.representations[0]
        x, y = inputs.fit.x[rep].float(), inputs.fit.y
        y = check_pair(x, y, num_classes=inputs.num_classes, name="train")
        test = inputs.test.x[rep].float()
        if config.metric == "cosine":
            x, test = F.normalize(x, dim=1), F.normalize(test, dim=1)
        sums = torch.zeros(inputs.num_classes, x.shape[1]).index_add_(0, y, x)
        counts = torch.bincount(y, minlength=inputs.num_classes).clamp_min(1)
        means = sums / counts[:, None]
        if config.metric == "cosine":
            scores = test @ F.normalize(means, dim=1).T
        else:
            scores = -torch.cdist(test, means)
        absent = torch.bincount(y, minlength=inputs.num_classes) == 0
        scores[:, absent] = float("-inf")  # a class never seen in training is never predicted
        return ProbeResult(
            metrics=classification_metrics(scores, inputs.test.y, inputs.num_classes),
            predictions=classification_predictions(scores, inputs.test.y),
            artifacts={"class_means": means},
            splits={"fit": len(y), "test": len(test)},
        )
