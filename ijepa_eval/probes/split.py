"""Seeded, stratified splits of a labelled set: a validation part for model selection, k-shot.

Both draw from numpy's PCG64 with an explicit seed, so a split is a pure function of
(labels, fraction or k, seed): the same on every machine, independent of torch's global RNG.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

from ijepa_eval.probes.common import ProbeError, as_labels


def _classes(labels: Tensor | np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    y = as_labels(labels).numpy()
    if y.size == 0:
        raise ProbeError("cannot split an empty label set")
    classes = np.unique(y)
    if classes.size < 2:
        raise ProbeError(f"all labels are class {classes[0]}; a classifier needs at least two")
    return y, [np.flatnonzero(y == c) for c in classes]


def stratified_split(
    labels: Tensor | np.ndarray, fraction: float, seed: int, *, allow_singletons: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (train_idx, val_idx) with about `fraction` of each class in val.

    Each class with n >= 2 items puts round(fraction * n) of them in val, clipped to [1, n - 1],
    so it keeps at least one item in each part. A class with a single item cannot be in both:
    it goes to train (the model should at least see it) unless `allow_singletons` is False, in
    which case it is an error. Both index arrays are sorted.
    """
    if not 0.0 < fraction < 1.0:
        raise ProbeError(f"validation fraction must be in (0, 1), got {fraction}")
    y, members = _classes(labels)
    singles = [int(y[m[0]]) for m in members if m.size == 1]
    if singles and (not allow_singletons or len(singles) == len(members)):
        raise ProbeError(
            f"classes {singles[:10]} have a single item, too few to hold one out for validation; "
            "a stratified split needs at least 2 items per class"
        )
    rng = np.random.Generator(np.random.PCG64(seed))
    train, val = [], []
    for m in members:
        shuffled = rng.permutation(m)
        n_val = 0 if m.size == 1 else min(max(round(fraction * m.size), 1), m.size - 1)
        val.append(shuffled[:n_val])
        train.append(shuffled[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def sample_per_class(labels: Tensor | np.ndarray, k: int, seed: int) -> np.ndarray:
    """Sorted indices of k items drawn from every class (the k-shot training sets)."""
    if k < 1:
        raise ProbeError(f"k must be >= 1 items per class, got {k}")
    y, members = _classes(labels)
    smallest = min(members, key=len)
    if smallest.size < k:
        raise ProbeError(
            f"k = {k} per class, but class {int(y[smallest[0]])} has only {smallest.size} items; "
            f"use k <= {smallest.size}"
        )
    rng = np.random.Generator(np.random.PCG64(seed))
    return np.sort(np.concatenate([rng.choice(m, size=k, replace=False) for m in members]))
