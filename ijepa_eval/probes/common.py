"""What every probe shares: its error type, the device choice and input checks.

The checks run before any work so that a user mistake (empty features, labels that do not line
up, a single class) is reported in one line instead of surfacing as a shape error mid-training.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

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
    feats: Tensor,
    labels: Tensor,
    *,
    num_classes: int,
    name: str,
    need_two_classes: bool = True,
    views: bool = False,
) -> Tensor:
    """Check one (features, labels) pair and return the labels as int64.

    `need_two_classes` is off for evaluation sets: a test set may legitimately hold one class.
    `views`: training features may be (N, V, D), V views of each item.
    """
    labels = as_labels(labels)
    if feats.ndim != 2 and not (views and feats.ndim == 3 and feats.shape[1] > 0):
        shapes = "(N, D) or (N, V, D)" if views else "(N, D)"
        raise ProbeError(f"{name} features must be {shapes}, got shape {tuple(feats.shape)}")
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


def is_finite(tensors: Iterable[Tensor]) -> bool:
    """Whether every value is a finite number: a diverged fit (a NaN or infinite loss) leaves
    its weights non-finite, so this tells after training whether it stayed sound."""
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def leave_out_diverged(rows: list[dict], finite: Sequence[bool], probe: str) -> None:
    """Mark the grid rows whose training diverged, so no choice falls on them.

    Their validation metrics (NaN or meaningless) become None and ``diverged`` True, with a
    note; when every row diverged there is nothing sound to report and the run stops.
    """
    bad = [i for i, ok in enumerate(finite) if not ok]
    if not bad:
        return
    if len(bad) == len(rows):
        raise ProbeError(
            f"{probe} probe: training diverged (the loss became NaN or infinite) in every "
            "configuration of the grid; lower the learning rates (-p lrs=[...])"
        )
    for i in bad:
        rows[i].update({k: None for k in rows[i] if k.startswith("val_")}, diverged=True)
    lrs = ", ".join(f"{rows[i].get('lr', '?'):g}" for i in bad if "lr" in rows[i])
    note(
        f"{probe} probe: {len(bad)} of {len(rows)} configurations diverged (NaN or infinite "
        f"loss){f' (lr {lrs})' if lrs else ''} and were left out of the choice"
    )


def require_sound(tensors: Iterable[Tensor], probe: str, what: str) -> None:
    """Stop when the model that is reported diverged: its numbers would mean nothing."""
    if not is_finite(tensors):
        raise ProbeError(
            f"{probe} probe: {what} diverged (the loss became NaN or infinite); lower the "
            "learning rate (-p lrs=[...])"
        )


def select_on_val(
    rows: Sequence[dict], *, metric: str = "val_top1", lower_is_better: bool = False
) -> int:
    """Index of the row with the best validation metric; ties go to the first in grid order.

    It sees only the rows' validation metrics, so the choice cannot depend on a test set, and
    skips rows whose training diverged (`leave_out_diverged`).
    """
    sound = [i for i, row in enumerate(rows) if not row.get("diverged")]
    if not sound:
        raise ProbeError("no grid rows to select from")
    sign = -1 if lower_is_better else 1
    best = max(sign * rows[i][metric] for i in sound)
    return next(i for i in sound if sign * rows[i][metric] == best)


def note(message: str) -> None:
    """Tell the user about an adjustment without stopping the run."""
    warnings.warn(message, ProbeWarning, stacklevel=3)
