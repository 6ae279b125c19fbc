"""The shape of an I-JEPA ViT, read from its weights or its config.

Native checkpoints carry no config, so the architecture is inferred from tensor shapes. The one
thing shapes cannot tell is the number of attention heads; the I-JEPA family uses a fixed
width → heads table, and anything else must be told (``heads=``, ``--heads``). A Hugging Face
``config.json`` states the shape too (`HfArchConfig`); it is checked, never trusted blindly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch

from ijepa_eval.errors import CheckpointError, UserError
from ijepa_eval.schema import bounded, build

# width → (name, heads); the ViT sizes I-JEPA (and timm) use.
WIDTHS: dict[int, tuple[str, int]] = {
    192: ("tiny", 3),
    384: ("small", 6),
    768: ("base", 12),
    1024: ("large", 16),
    1280: ("huge", 16),
    1408: ("giant", 16),
}

_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.")


@dataclass(frozen=True)
class VitArch:
    """Everything needed to build the encoder; ``grid`` is the checkpoint's patch grid side."""

    embed_dim: int = bounded(ge=1)
    depth: int = bounded(ge=1)
    num_heads: int = bounded(ge=1)
    mlp_hidden: int = bounded(ge=1)
    patch_size: int = bounded(ge=1)
    grid: int = bounded(ge=1)
    in_chans: int = bounded(3, ge=1)
    qkv_bias: bool = True
    norm_eps: float = bounded(1e-6, gt=0)

    @property
    def resolution(self) -> int:
        return self.grid * self.patch_size

    @property
    def name(self) -> str:
        size = WIDTHS.get(self.embed_dim, (f"d{self.embed_dim}", 0))[0]
        return f"vit_{size}_patch{self.patch_size}_{self.resolution}"

    def to_dict(self) -> dict:
        return asdict(self)


def heads_for_width(embed_dim: int, heads: int | None, told_by: str = "--heads") -> int:
    """``heads`` if it divides the width, else the I-JEPA table's; ``told_by`` names who said it."""
    if heads is not None:
        if heads <= 0 or embed_dim % heads:
            raise CheckpointError(
                f"{told_by} {heads} does not divide the embedding width {embed_dim}"
            )
        return heads
    if embed_dim not in WIDTHS:
        known = ", ".join(f"{w}→{h}" for w, (_, h) in WIDTHS.items())
        raise CheckpointError(
            f"embedding width {embed_dim} is not a standard I-JEPA size (width→heads: {known}); "
            "say how many attention heads it has with --heads N (heads=N in Python)"
        )
    return WIDTHS[embed_dim][1]


def infer_arch(state_dict: Mapping[str, torch.Tensor], heads: int | None = None) -> VitArch:
    """Read the architecture off a state dict in the timm/native layout (no ``module.``)."""
    needed = ("patch_embed.proj.weight", "pos_embed", "blocks.0.mlp.fc1.weight")
    missing = [k for k in needed if k not in state_dict]
    if missing:
        raise CheckpointError(f"not a ViT encoder state dict: missing {', '.join(missing)}")
    for key, ndim in (
        ("patch_embed.proj.weight", 4),
        ("pos_embed", 3),
        ("blocks.0.mlp.fc1.weight", 2),
    ):
        if state_dict[key].ndim != ndim:
            shape = tuple(state_dict[key].shape)
            raise CheckpointError(f"{key} has shape {shape}, expected {ndim} dimensions")
    proj = state_dict["patch_embed.proj.weight"]
    embed_dim, in_chans, patch, patch_w = proj.shape
    if patch != patch_w:
        raise CheckpointError(f"non-square patches ({patch}×{patch_w}) are not supported")
    num_patches = state_dict["pos_embed"].shape[-2]
    grid = math.isqrt(num_patches)
    if grid * grid != num_patches:
        raise CheckpointError(f"pos_embed has {num_patches} positions, not a square patch grid")
    depth = 1 + max(int(m.group(1)) for k in state_dict if (m := _BLOCK_RE.match(k)))
    return VitArch(
        embed_dim=embed_dim,
        depth=depth,
        num_heads=heads_for_width(embed_dim, heads),
        mlp_hidden=state_dict["blocks.0.mlp.fc1.weight"].shape[0],
        patch_size=patch,
        grid=grid,
        in_chans=in_chans,
        qkv_bias="blocks.0.attn.qkv.bias" in state_dict,
    )


# VitArch field → the config.json key that states it (``grid`` is stated as the image size).
HF_CONFIG_KEYS = {
    "embed_dim": "hidden_size",
    "depth": "num_hidden_layers",
    "num_heads": "num_attention_heads",
    "mlp_hidden": "intermediate_size",
    "patch_size": "patch_size",
    "grid": "image_size",
    "in_chans": "num_channels",
    "qkv_bias": "qkv_bias",
    "norm_eps": "layer_norm_eps",
}


@dataclass(frozen=True)
class HfArchConfig:
    """The keys of a Hugging Face ``config.json`` that fix the encoder's shape (None: not said).

    Other keys of the file (``architectures``, ``torch_dtype``, …) are not ours to judge.
    """

    hidden_size: int | None = bounded(None, ge=1)
    num_hidden_layers: int | None = bounded(None, ge=1)
    num_attention_heads: int | None = bounded(None, ge=1)
    intermediate_size: int | None = bounded(None, ge=1)
    image_size: int | None = bounded(None, ge=1)
    patch_size: int | None = bounded(None, ge=1)
    num_channels: int | None = bounded(None, ge=1)
    qkv_bias: bool = True
    layer_norm_eps: float = bounded(1e-12, gt=0)  # transformers' default

    @classmethod
    def read(cls, config: Mapping[str, object], where: str) -> HfArchConfig:
        """Check the shape keys of ``config`` (types, ranges, agreement with each other)."""
        keys = set(HF_CONFIG_KEYS.values())
        try:
            hf = build(cls, {k: v for k, v in config.items() if k in keys})
        except UserError as exc:
            raise CheckpointError(f"{where}: {exc}") from None
        width, heads = hf.hidden_size, hf.num_attention_heads
        if width is not None and heads is not None and width % heads:
            raise CheckpointError(
                f"{where}: num_attention_heads {heads} does not divide hidden_size {width}"
            )
        image, patch = hf.image_size, hf.patch_size
        if image is not None and patch is not None and image % patch:
            raise CheckpointError(
                f"{where}: image_size {image} is not a multiple of patch_size {patch}"
            )
        return hf

    def stated(self) -> dict[str, tuple[str, object, object]]:
        """VitArch field → (config key, value in the config, value as a VitArch field), for
        the fields the file states."""
        out: dict[str, tuple[str, object, object]] = {}
        for name, key in HF_CONFIG_KEYS.items():
            value = getattr(self, key)
            if value is None or (name == "grid" and self.patch_size is None):
                continue
            out[name] = (key, value, value // self.patch_size if name == "grid" else value)
        return out
