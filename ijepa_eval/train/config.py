"""Pretraining configuration: YAML files backed by dataclasses, plus ``key=value`` overrides.

A config has six sections (``data``, ``model``, ``mask``, ``optimization``, ``eval``,
``logging``) and a ``seed``. Missing keys take the defaults below (the official ViT-H/14 recipe
where it has one); an unknown key is an error naming it and the closest known keys. Overrides
use dotted keys and YAML values: ``optimization.lr=1e-3``, ``eval.every=0``,
``optimization.stop_after=null``. Presets live in ``tasks/pretrain/<name>.yaml``. Every number
declares its range (`bounded`), so ``data.batch_size=-4`` stops before any work with one line
naming the key and what it allows.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ijepa_eval.errors import UserError
from ijepa_eval.models.arch import VitArch
from ijepa_eval.paths import find_preset, preset_names
from ijepa_eval.schema import bounded, build, did_you_mean, merge, parse_assignments
from ijepa_eval.train.masks import MaskConfig
from ijepa_eval.yaml_file import read_yaml


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "imagefolder"  # any `load_dataset` adapter
    root: str = ""
    split: str = "train"
    batch_size: int = bounded(128, ge=1)  # per process (official global batch: 16 GPUs × 128)
    workers: int = bounded(10, ge=0)
    # RandomResizedCrop's area range, the only augmentation
    crop_scale: tuple[float, float] = bounded((0.3, 1.0), gt=0, le=1, ascending=True)


@dataclass(frozen=True)
class ModelConfig:
    embed_dim: int = bounded(1280, ge=1)
    depth: int = bounded(32, ge=1)
    num_heads: int = bounded(16, ge=1)
    mlp_hidden: int | None = bounded(None, ge=1)  # default 4 × embed_dim (ViT-g/16: 6144)
    patch_size: int = bounded(14, ge=1)
    img_size: int = bounded(224, ge=1)
    predictor_depth: int = bounded(12, ge=1)
    predictor_embed_dim: int = bounded(384, ge=1)  # predictor heads = encoder heads

    def arch(self) -> VitArch:
        if self.img_size % self.patch_size:
            raise UserError(
                f"model.img_size={self.img_size} is not a multiple of "
                f"model.patch_size={self.patch_size}"
            )
        for key, width in (
            ("embed_dim", self.embed_dim),
            ("predictor_embed_dim", self.predictor_embed_dim),
        ):
            if width % 4:  # the fixed 2-D sin-cos position table splits the width in four
                raise UserError(f"model.{key}={width} must be a multiple of 4")
        if self.embed_dim % self.num_heads or self.predictor_embed_dim % self.num_heads:
            raise UserError(
                f"model.num_heads={self.num_heads} must divide model.embed_dim="
                f"{self.embed_dim} and model.predictor_embed_dim={self.predictor_embed_dim}"
            )
        return VitArch(
            embed_dim=self.embed_dim,
            depth=self.depth,
            num_heads=self.num_heads,
            mlp_hidden=self.mlp_hidden or 4 * self.embed_dim,
            patch_size=self.patch_size,
            grid=self.img_size // self.patch_size,
        )


@dataclass(frozen=True)
class OptimizationConfig:
    epochs: int = bounded(300, ge=1)  # length of every schedule
    warmup: float = bounded(40, ge=0)  # epochs of linear lr warmup
    start_lr: float = bounded(2e-4, ge=0)
    lr: float = bounded(1e-3, gt=0)
    final_lr: float = bounded(1e-6, ge=0)
    weight_decay: float = bounded(0.04, ge=0)
    final_weight_decay: float = bounded(0.4, ge=0)
    ema: tuple[float, float] = bounded((0.996, 1.0), ge=0, le=1, ascending=True)
    ipe_scale: float = bounded(1.0, gt=0)  # schedules span ipe_scale × epochs
    clip_grad: float | None = bounded(None, gt=0)  # max gradient norm; none officially
    bf16: bool = True  # bf16 autocast on GPU (CPU runs in fp32)
    stop_after: int | None = bounded(None, ge=1)  # end after that epoch; --resume continues


@dataclass(frozen=True)
class EvalConfig:
    """Online k-NN probe of the target encoder's lastPOOL features (rank 0)."""

    every: int = bounded(0, ge=0)  # epochs; 0 = never
    dataset: str | None = None  # default: data.dataset
    root: str | None = None  # default: data.root
    train_split: str = "train"
    test_split: str = "val"
    k: int = bounded(20, ge=1)
    temperature: float = bounded(0.07, gt=0)
    batch_size: int = bounded(256, ge=1)


@dataclass(frozen=True)
class LoggingConfig:
    out: str = "out/pretrain"
    log_every: int = bounded(10, ge=1)  # steps between log.csv rows
    keep_every: int = bounded(50, ge=0)  # also keep ep{N}.pth.tar every N epochs; 0 = only latest


@dataclass(frozen=True)
class PretrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    optimization: OptimizationConfig = field(default_factory=OptimizationConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    seed: int = bounded(0, ge=0)

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts, lists and scalars: safe for YAML and ``torch.load(weights_only=True)``."""
        return _plain(dataclasses.asdict(self))

    def with_overrides(self, overrides: list[str]) -> PretrainConfig:
        return from_dict(merge(self.to_dict(), parse_overrides(overrides)))


def load_config(
    source: str | os.PathLike[str], overrides: list[str] | None = None
) -> PretrainConfig:
    """Read a YAML file (or a preset name such as ``vit_tiny_synth``) and apply overrides."""
    path = resolve_config(source)
    raw = read_yaml(path, "pretraining config") or {}
    if not isinstance(raw, dict):
        raise UserError(f"{path} must hold a mapping of config sections, not {type(raw).__name__}")
    return from_dict(merge(raw, parse_overrides(overrides or [])))


def resolve_config(source: str | os.PathLike[str]) -> Path:
    return find_preset(source, "tasks/pretrain", "config file or preset")


def presets() -> list[str]:
    return preset_names("tasks/pretrain")


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["optimization.lr=1e-3", "seed=1"]`` → a nested dict of YAML-parsed values."""
    return parse_assignments(overrides, "override")


def from_dict(raw: dict[str, Any]) -> PretrainConfig:
    return build(PretrainConfig, raw, unknown=_unknown_key)


def _unknown_key(key: str, known: list[str]) -> str:
    hint = did_you_mean(key, known)
    return f"unknown config key {key!r}" + (f"; did you mean {' or '.join(hint)}?" if hint else "")


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj
