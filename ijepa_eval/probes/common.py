"""What every probe shares: its error type, the device choice and input checks.

The checks run before any work so that a user mistake (empty features, labels that do not line
up, a single class) is reported in one line instead of surfacing as a shape error mid-training.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor

from ijepa_eval.errors import UserError


class ProbeError(UserError):
    """Features or labels a probe cannot be trained or evaluated on."""


class ProbeWarning(UserWarning):
    """A probe adjusted a request to fit the data (e.g. k clipped to the training-set size)."""


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The given device, or the GPU when there is one, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def as_labels(labels: Tensor | np.ndarray) -> Tensor:
    """Labels as an int64 CPU tensor (a numpy array is accepted for convenience)."""
    t = torch.as_tensor(np.asarray(labels) if not isinstance(labels, Tensor) else labels)
    if t.ndim != 1:
        raise ProbeError(f"labels must be one-dimensional, got shape {tuple(t.shape)}")
    if t.is_floating_point():
        raise ProbeError(f"labels must be integers, got {t.dtype}")
    return t.long().cpu()


def check_pair(
    feats: Tensor, labels: Tensor, *, num_classes: int, name: str, need_two_classes: bool = True
) -> Tensor:
    """Check one (features, labels) pair and return the labels as int64.

    `need_two_classes` is off for evaluation sets: a test set may legitimately hold one class.
    """
    labels = as_labels(labels)
    if feats.ndim != 2:
        raise ProbeError(f"{name} features must be (N, D), got shape {tuple(feats.shape)}")
    if feats.shape[0] == 0:
        raise ProbeError(f"{name} set is empty: no features to fit or evaluate on")
    if feats.shape[0] != labels.shape[0]:
        raise ProbeError(
            f"{name} has {feats.shape[0]} feature rows but {labels.shape[0]} labels; "
            "they must be the same length"
        )
    if num_classes < 2:
        raise ProbeError(f"num_classes is {num_classes}; a classification probe needs >= 2")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= num_classes:
        raise ProbeError(f"{name} labels span [{lo}, {hi}], outside [0, {num_classes - 1}]")
    if need_two_classes and labels.unique().numel() < 2:
        raise ProbeError(
            f"{name} labels hold a single class ({lo}); a classifier needs at least two classes"
        )
    return labels


def note(message: str) -> None:
    """Tell the user about an adjustment without stopping the run."""
    warnings.warn(message, ProbeWarning, stacklevel=3)
