"""Top-1, top-5 and mean per-class accuracy, for one head or many heads at once.

`ClassificationMeter` accumulates counts, so metrics over a large evaluation set can be computed
batch by batch (the k-NN and the linear grid never hold all scores at once), and it accepts
scores for G heads in one tensor so a whole grid is evaluated with one pass over the data.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ijepa_eval.probes.common import ProbeError


class ClassificationMeter:
    """Running counts of correct predictions for `heads` classifiers over `num_classes` classes.

    Top-5 uses k = min(5, num_classes): with fewer than five classes it is trivially 100%.
    Mean per-class accuracy averages the recall of the classes that occur in the labels seen.
    """

    def __init__(self, num_classes: int, heads: int = 1):
        self.num_classes, self.heads = num_classes, heads
        self.k = min(5, num_classes)
        self.total = 0
        self.top1 = torch.zeros(heads, dtype=torch.float64)
        self.topk = torch.zeros(heads, dtype=torch.float64)
        self.class_correct = torch.zeros(heads, num_classes, dtype=torch.float64)
        self.class_count = torch.zeros(num_classes, dtype=torch.float64)

    def update(self, scores: Tensor, labels: Tensor) -> None:
        """Add a batch: scores (n, C) for one head or (n, G, C) for G heads; labels (n,)."""
        if scores.shape[-1] != self.num_classes:
            raise ProbeError(f"scores have {scores.shape[-1]} classes, expected {self.num_classes}")
        if scores.ndim == 2:
            scores = scores.unsqueeze(1)
        labels = labels.to(scores.device)
        hits_k = scores.topk(self.k, dim=-1).indices == labels[:, None, None]  # (n, G, k)
        hit1 = scores.argmax(dim=-1) == labels[:, None]  # (n, G)
        self.total += labels.numel()
        self.top1 += hit1.sum(0).double().cpu()
        self.topk += hits_k.any(-1).sum(0).double().cpu()
        per_class = torch.zeros(self.heads, self.num_classes, dtype=torch.float64)
        per_class.index_add_(1, labels.cpu(), hit1.T.double().cpu())
        self.class_correct += per_class
        self.class_count += torch.bincount(labels.cpu(), minlength=self.num_classes).double()

    def compute(self) -> list[dict[str, float]]:
        """One dict per head: {"top1", "top5", "mean_per_class_acc"} in percent."""
        present = self.class_count > 0
        recall = self.class_correct[:, present] / self.class_count[present]
        n = max(self.total, 1)
        return [
            {
                "top1": 100.0 * self.top1[g].item() / n,
                "top5": 100.0 * self.topk[g].item() / n,
                "mean_per_class_acc": 100.0 * recall[g].mean().item() if present.any() else 0.0,
            }
            for g in range(self.heads)
        ]


def classification_metrics(scores: Tensor, labels: Tensor, num_classes: int) -> dict[str, float]:
    """Metrics of one classifier's scores (N, C) against int labels (N,), in percent."""
    meter = ClassificationMeter(num_classes)
    meter.update(scores, labels)
    return meter.compute()[0]
