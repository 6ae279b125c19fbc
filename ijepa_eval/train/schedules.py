"""Per-iteration schedules (lr, weight decay, EMA momentum) and the AdamW parameter groups.

Each schedule is a pure function of the global step, so a resumed run reads the same values at
the same step without replaying anything. The formulas are those of the official
``src/utils/schedulers.py`` and ``src/train.py``: their schedulers are stepped before use, so the
value at our 0-based ``step`` is theirs after ``step + 1`` calls; the momentum generator starts
at its first value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from ijepa_eval.train.config import OptimizationConfig


@dataclass(frozen=True)
class Schedules:
    """lr: linear warmup ``start_lr → lr``, then cosine to ``final_lr``; wd: cosine
    ``weight_decay → final_weight_decay``; momentum: linear ``ema[0] → ema[1]``.

    All three span ``ipe_scale × epochs × iterations-per-epoch`` steps, as in the official code.
    """

    iterations_per_epoch: int
    epochs: int
    warmup: float  # epochs
    start_lr: float
    lr: float
    final_lr: float
    weight_decay: float
    final_weight_decay: float
    ema: tuple[float, float]
    ipe_scale: float = 1.0

    @classmethod
    def from_config(cls, opt: OptimizationConfig, iterations_per_epoch: int) -> Schedules:
        return cls(
            iterations_per_epoch=iterations_per_epoch,
            epochs=opt.epochs,
            warmup=opt.warmup,
            start_lr=opt.start_lr,
            lr=opt.lr,
            final_lr=opt.final_lr,
            weight_decay=opt.weight_decay,
            final_weight_decay=opt.final_weight_decay,
            ema=opt.ema,
            ipe_scale=opt.ipe_scale,
        )

    @property
    def warmup_steps(self) -> int:
        return int(self.warmup * self.iterations_per_epoch)

    @property
    def total_steps(self) -> int:
        return int(self.ipe_scale * self.epochs * self.iterations_per_epoch)

    def lr_at(self, step: int) -> float:
        s = step + 1
        if s < self.warmup_steps:
            return self.start_lr + s / max(1, self.warmup_steps) * (self.lr - self.start_lr)
        progress = (s - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        cosine = self.final_lr + (self.lr - self.final_lr) * 0.5 * (
            1 + math.cos(math.pi * progress)
        )
        return max(self.final_lr, cosine)

    def wd_at(self, step: int) -> float:
        progress = (step + 1) / self.total_steps
        start, end = self.weight_decay, self.final_weight_decay
        value = end + (start - end) * 0.5 * (1 + math.cos(math.pi * progress))
        return max(end, value) if end <= start else min(end, value)

    def momentum_at(self, step: int) -> float:
        span = self.iterations_per_epoch * self.epochs * self.ipe_scale
        return min(self.ema[1], self.ema[0] + step * (self.ema[1] - self.ema[0]) / span)


def make_optimizer(encoder: nn.Module, predictor: nn.Module) -> torch.optim.AdamW:
    """AdamW with the official four groups: weights of each network, then their biases and 1-D
    parameters (no weight decay; marked ``WD_exclude`` so the wd schedule leaves them at 0).

    The fixed position tables sit in the weight groups as they do in the official optimizer, so
    the optimizer state dicts line up; having no gradient, AdamW never moves them.
    """

    def split(net: nn.Module, decay: bool) -> list[nn.Parameter]:
        return [p for n, p in net.named_parameters() if ("bias" not in n and p.ndim != 1) == decay]

    return torch.optim.AdamW(
        [
            {"params": split(encoder, True)},
            {"params": split(predictor, True)},
            {"params": split(encoder, False), "WD_exclude": True, "weight_decay": 0.0},
            {"params": split(predictor, False), "WD_exclude": True, "weight_decay": 0.0},
        ]
    )


def apply_schedules(optimizer: torch.optim.Optimizer, lr: float, wd: float) -> None:
    """Set this step's lr on every group and its weight decay on the decayed groups."""
    for group in optimizer.param_groups:
        group["lr"] = lr
        if not group.get("WD_exclude", False):
            group["weight_decay"] = wd
