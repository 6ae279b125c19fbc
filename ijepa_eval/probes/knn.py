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

import torch
import torch.nn.functional as F
from torch import Tensor

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
    train_labels = check_pair(train_feats, train_labels, num_classes=num_classes, name="train")
    test_labels = check_pair(
        test_feats, test_labels, num_classes=num_classes, name="test", need_two_classes=False
    )
    if train_feats.shape[1] != test_feats.shape[1]:
        raise ProbeError(
            f"train features are {train_feats.shape[1]}-d but test features "
            f"{test_feats.shape[1]}-d; use the same representation for both"
        )
    if not ks or min(ks) < 1:
        raise ProbeError(f"ks must be positive integers, got {list(ks)}")
    if temperature <= 0:
        raise ProbeError(f"temperature must be > 0, got {temperature}")
    n_train = train_feats.shape[0]
    for k in ks:
        if k > n_train:
            note(f"k = {k} exceeds the {n_train} training items; using k = {n_train}")
    dev = resolve_device(device)
    train = train_feats.to(dev)
    train_y = train_labels.to(dev)
    k_max = min(max(ks), n_train)
    meters = {k: ClassificationMeter(num_classes) for k in ks}
    for start in range(0, test_feats.shape[0], chunk_size):
        queries = F.normalize(test_feats[start : start + chunk_size].to(dev).float(), dim=1)
        sim, idx = _top_neighbours(queries, train, k_max, train_chunk_size)
        weights = (sim / temperature).exp()
        neighbour_y = train_y[idx]
        y = test_labels[start : start + chunk_size].to(dev)
        for k, meter in meters.items():
            k_used = min(k, n_train)
            votes = torch.zeros(queries.shape[0], num_classes, device=dev)
            votes.scatter_add_(1, neighbour_y[:, :k_used], weights[:, :k_used])
            meter.update(votes, y)
    return {k: meter.compute()[0] for k, meter in meters.items()}
