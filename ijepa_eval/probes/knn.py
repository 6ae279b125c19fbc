"""Weighted k-nearest-neighbour classification on cosine similarity (DINO's k-NN protocol).

Each test item votes with its k most similar training items, weighted by exp(sim / T), as in
DINO's `eval_knn.py`. Similarities are computed block by block over both test and training rows
and the running top-k is merged after each training block, so peak memory is
O(chunk_size x (train_chunk_size + k)) whatever the training-set size: 1.28M ImageNet features
fit in a fixed budget. Training features stay on the device in their stored dtype (float16 from
the cache) and are normalised in float32 block by block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ijepa_eval.probes.base import Probe, ProbeInputs, ProbeResult
from ijepa_eval.probes.common import ProbeError, check_pair, note, resolve_device
from ijepa_eval.probes.metrics import ClassificationMeter


def _top_neighbours(
    queries: Tensor, train: Tensor, k: int, train_chunk_size: int
) -> tuple[Tensor, Tensor]:
    """(similarities, indices) of the k most similar training rows to each (normalised) query."""
    best_sim = queries.new_empty(queries.shape[0], 0)
    best_idx = torch.empty(queries.shape[0], 0, dtype=torch.long, device=queries.device)
    for start in range(0, train.shape[0], train_chunk_size):
        block = F.normalize(train[start : start + train_chunk_size].float(), dim=1)
        sim = queries @ block.T
        top = sim.topk(min(k, sim.shape[1]), dim=1)
        cand_sim = torch.cat([best_sim, top.values], dim=1)
        cand_idx = torch.cat([best_idx, top.indices + start], dim=1)
        keep = cand_sim.topk(min(k, cand_sim.shape[1]), dim=1)
        best_sim, best_idx = keep.values, cand_idx.gather(1, keep.indices)
    return best_sim, best_idx


@dataclass(frozen=True)
class KnnConfig:
    """DINO's k-NN: every k is reported (nothing is selected); chunk sizes bound the memory."""

    ks: tuple[int, ...] = (10, 20, 100, 200)
    temperature: float = 0.07
    chunk_size: int = 4096
    train_chunk_size: int = 65536

    def __post_init__(self) -> None:
        if not self.ks or min(self.ks) < 1:
            raise ProbeError(f"ks must be positive integers, got {list(self.ks)}")
        if self.temperature <= 0:
            raise ProbeError(f"temperature must be > 0, got {self.temperature}")
        if self.chunk_size < 1 or self.train_chunk_size < 1:
            raise ProbeError("chunk sizes must be >= 1")


@dataclass
class KnnResult:
    """Metrics per k and, per k, each test item's five best classes (best first)."""

    metrics: dict[int, dict[str, float]]
    top5: dict[int, np.ndarray]


def knn_eval(
    train_feats: Tensor,
    train_labels: Tensor,
    test_feats: Tensor,
    test_labels: Tensor,
    *,
    num_classes: int,
    ks: Sequence[int] = (10, 20, 100, 200),
    temperature: float = 0.07,
    chunk_size: int = 4096,
    train_chunk_size: int = 65536,
    device: str | torch.device | None = None,
) -> dict[int, dict[str, float]]:
    """Metrics ({"top1", "top5", "mean_per_class_acc"}, percent) of the k-NN classifier per k.

    A k larger than the training set is clipped to its size (with a ProbeWarning); the result
    is still keyed by the k asked for.
    """
    config = KnnConfig(tuple(ks), temperature, chunk_size, train_chunk_size)
    return knn_classify(
        train_feats, train_labels, test_feats, test_labels, num_classes=num_classes,
        config=config, device=device,
    ).metrics  # fmt: skip


def knn_classify(
    train_feats: Tensor,
    train_labels: Tensor,
    test_feats: Tensor,
    test_labels: Tensor,
    *,
    num_classes: int,
    config: KnnConfig = KnnConfig(),
    device: str | torch.device | None = None,
) -> KnnResult:
    """`knn_eval` with each test item's predictions kept (see `KnnResult`)."""
    train_labels = check_pair(train_feats, train_labels, num_classes=num_classes, name="train")
    test_labels = check_pair(
        test_feats, test_labels, num_classes=num_classes, name="test", need_two_classes=False
    )
    if train_feats.shape[1] != test_feats.shape[1]:
        raise ProbeError(
            f"train features are {train_feats.shape[1]}-d but test features "
            f"{test_feats.shape[1]}-d; use the same representation for both"
        )
    ks = config.ks
    n_train = train_feats.shape[0]
    for k in ks:
        if k > n_train:
            note(f"k = {k} exceeds the {n_train} training items; using k = {n_train}")
    dev = resolve_device(device)
    train = train_feats.to(dev)
    train_y = train_labels.to(dev)
    k_max = min(max(ks), n_train)
    meters = {k: ClassificationMeter(num_classes) for k in ks}
    top5: dict[int, list[Tensor]] = {k: [] for k in ks}
    for start in range(0, test_feats.shape[0], config.chunk_size):
        chunk = test_feats[start : start + config.chunk_size]
        queries = F.normalize(chunk.to(dev).float(), dim=1)
        sim, idx = _top_neighbours(queries, train, k_max, config.train_chunk_size)
        weights = (sim / config.temperature).exp()
        neighbour_y = train_y[idx]
        y = test_labels[start : start + config.chunk_size].to(dev)
        for k, meter in meters.items():
            k_used = min(k, n_train)
            votes = torch.zeros(queries.shape[0], num_classes, device=dev)
            votes.scatter_add_(1, neighbour_y[:, :k_used], weights[:, :k_used])
            meter.update(votes, y)
            top5[k].append(votes.topk(min(5, num_classes), dim=1).indices.to(torch.int32).cpu())
    return KnnResult(
        metrics={k: meter.compute()[0] for k, meter in meters.items()},
        top5={k: torch.cat(parts).numpy() for k, parts in top5.items()},
    )


class KnnProbe(Probe):
    """Weighted k-NN on one representation; every k is reported."""

    name = "knn"
    Config = KnnConfig
    selects = False

    @classmethod
    def metric_names(cls, config: KnnConfig) -> tuple[str, ...]:
        return tuple(f"top{n}_k{k}" for n in (1, 5) for k in config.ks)

    def run(self, inputs: ProbeInputs, config: KnnConfig, device: str | None) -> ProbeResult:
        rep = inputs.representations[0]
        fit, test = inputs.fit, inputs.test
        result = knn_classify(
            fit.x[rep], fit.y, test.x[rep], test.y, num_classes=inputs.num_classes,
            config=config, device=device,
        )  # fmt: skip
        metrics = {f"top1_k{k}": m["top1"] for k, m in result.metrics.items()}
        metrics.update({f"top5_k{k}": m["top5"] for k, m in result.metrics.items()})
        predictions = {f"k{k}/top5": top for k, top in result.top5.items()}
        predictions["target"] = test.y.to(torch.int32).numpy()
        return ProbeResult(
            metrics=metrics,
            grid=[{"k": k, **m} for k, m in result.metrics.items()],
            predictions=predictions,
            splits={"fit": len(fit), "test": len(test)},
        )
