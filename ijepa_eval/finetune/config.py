"""The fine-tuning recipe: one frozen dataclass, presets per architecture, ``KEY=VALUE`` overrides.

A preset (``tasks/finetune/<name>.yaml``, or any YAML file of the same shape) holds the values
every architecture shares under ``common:`` and the paper's per-architecture numbers under
``arch:``, keyed by `VitArch.name` (``vit_huge_patch14_224``)::

    common: {epochs: 50, layer_decay: 0.75, ...}
    arch:
      vit_huge_patch14_224: {lr: 3.0e-5, weight_decay: 0.4}

A preset with an ``arch:`` table refuses an architecture it does not name (its numbers were
published for those only); a preset without one applies to every architecture. Missing keys take
the defaults below, which are MAE's ``main_finetune.py`` defaults where the paper is silent.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ijepa_eval.errors import UserError
from ijepa_eval.paths import find_preset, preset_names
from ijepa_eval.schema import bounded, build, did_you_mean, parse_assignments
from ijepa_eval.yaml_file import read_yaml


@dataclass(frozen=True)
class FinetuneConfig:
    """Every number of a fine-tuning run; the record stores it resolved (``recipe``)."""

    epochs: int = bounded(50, ge=1)
    warmup_epochs: float = bounded(5, ge=0)  # linear warm-up from 0 (MAE's default)
    batch_size: int = bounded(512, ge=1)  # global: split evenly across the processes
    lr: float | None = bounded(None, gt=0)  # absolute peak lr; None: blr × global batch / 256
    blr: float = bounded(1e-3, gt=0)  # MAE's base lr (used when lr is None)
    min_lr: float = bounded(1e-6, ge=0)  # the cosine's floor (MAE's default)
    weight_decay: float = bounded(0.05, ge=0)  # on weights; biases and norms get none
    layer_decay: float = bounded(0.75, gt=0, le=1)
    label_smoothing: float = bounded(0.1, ge=0, lt=1)
    mixup: float = bounded(0.0, ge=0)  # Beta(α, α) of mixup; 0 = off
    cutmix: float = bounded(0.0, ge=0)  # Beta(α, α) of cutmix; 0 = off
    mixup_prob: float = bounded(1.0, ge=0, le=1)
    mixup_switch_prob: float = bounded(0.5, ge=0, le=1)
    drop_path: float = bounded(0.0, ge=0, lt=1)
    random_erasing: float = bounded(0.0, ge=0, le=1)  # probability per image (timm, pixel mode)
    rand_augment: str = "rand-m9-mstd0.5-inc1"  # timm's RandAugment string; "none" = off
    crop_scale: tuple[float, float] = bounded((0.08, 1.0), gt=0, le=1, ascending=True)
    hflip: float = bounded(0.5, ge=0, le=1)
    interpolation: str = "bicubic"  # of the training crop (MAE's)
    clip_grad: float | None = bounded(None, gt=0)
    holdout: float = bounded(0.0, ge=0, lt=1)  # part of the labelled set watched, never chosen on
    seed: int = bounded(0, ge=0)
    workers: int = bounded(4, ge=0)
    bf16: bool = True  # bf16 autocast on GPU (the CPU runs in fp32)
    log_every: int = bounded(10, ge=1)  # steps between log.csv rows
    stop_after: int | None = bounded(None, ge=1)  # end after that epoch; --resume continues

    def peak_lr(self, global_batch: int) -> float:
        return self.lr if self.lr is not None else self.blr * global_batch / 256

    def to_dict(self) -> dict[str, Any]:
        """Plain values (tuples as lists): YAML, JSON and ``weights_only`` loading all take it."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    def with_overrides(self, overrides: list[str] | dict[str, Any]) -> FinetuneConfig:
        given = overrides if isinstance(overrides, dict) else parse_overrides(overrides)
        return from_dict({**self.to_dict(), **given})


def from_dict(raw: dict[str, Any]) -> FinetuneConfig:
    return build(FinetuneConfig, raw, unknown=_unknown_key)


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["epochs=2", "lr=1e-4"]`` → ``{"epochs": 2, "lr": 0.0001}`` (YAML values)."""
    return parse_assignments(overrides, "-o")


def _unknown_key(key: str, known: list[str]) -> str:
    hint = did_you_mean(key, known)
    return f"unknown fine-tuning key {key!r}" + (
        f"; did you mean {' or '.join(hint)}?" if hint else ""
    )


def load_recipe(
    preset: str | os.PathLike[str],
    arch_name: str,
    overrides: list[str] | dict[str, Any] | None = None,
) -> FinetuneConfig:
    """The preset's values for ``arch_name``, then ``overrides``; checked before any work."""
    path = resolve_preset(preset)
    raw = read_yaml(path, "fine-tuning preset") or {}
    if not isinstance(raw, dict) or set(raw) - {"description", "source", "common", "arch"}:
        raise UserError(
            f"fine-tuning preset {path} must be a mapping of description, source, common, arch"
        )
    values = dict(raw.get("common") or {})
    table = raw.get("arch")
    if table is not None:
        if arch_name not in table:
            raise UserError(
                f"fine-tuning preset {Path(path).stem} has no numbers for {arch_name} (it covers "
                f"{', '.join(table)}); choose --preset full, or a preset file of your own"
            )
        values.update(table[arch_name] or {})
    cfg = from_dict(values)
    return cfg.with_overrides(overrides) if overrides else cfg


def resolve_preset(source: str | os.PathLike[str]) -> Path:
    return find_preset(source, "tasks/finetune", "fine-tuning preset or file")


def presets() -> list[str]:
    return preset_names("tasks/finetune")
