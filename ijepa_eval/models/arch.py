"""The shape of an I-JEPA ViT, read from its weights or its config.

Native checkpoints carry no config, so the architecture is inferred from tensor shapes. The one
thing shapes cannot tell is the number of attention heads; the I-JEPA family uses a fixed
width → heads table, and anything else must be told (``heads=``, ``--heads``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch

from ijepa_eval.errors import CheckpointError

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

    embed_dim: int
    depth: int
    num_heads: int
    mlp_hidden: int
    patch_size: int
    grid: int
    in_chans: int = 3
    qkv_bias: bool = True
    norm_eps: float = 1e-6

    @property
    def resolution(self) -> int:
        return self.grid * self.patch_size

    @property
    def name(self) -> str:
        size = WIDTHS.get(self.embed_dim, (f"d{self.embed_dim}", 0))[0]
        return f"vit_{size}_patch{self.patch_size}_{self.resolution}"

    def to_dict(self) -> dict:
        return asdict(self)


def heads_for_width(embed_dim: int, heads: int | None) -> int:
    if heads is not None:
        if heads <= 0 or embed_dim % heads:
            raise CheckpointError(
                f"--heads {heads} does not divide the embedding width {embed_dim}"
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
