"""Fresh networks as the official trainer makes them: fixed sin-cos positions, truncated normals.

The official models' constructors rescale ``attn.proj`` and ``mlp.fc2`` by ``1/sqrt(2·layer)``
(``fix_init_weight``), but ``src/helper.py:init_model`` then re-initialises every Linear with a
plain truncated normal, which overwrites that rescale. The published runs therefore trained
without it, and so do we: Linear and Conv weights ~ N(0, 0.02²) truncated to [-2, 2], biases 0,
LayerNorm 1 and 0, the predictor's mask token ~ N(0, 0.02²).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ijepa_eval.models.arch import VitArch
from ijepa_eval.models.vit import Encoder

INIT_STD = 0.02


def sincos_2d(embed_dim: int, grid: int) -> torch.Tensor:
    """The fixed 2-D sin-cos table ``(grid², embed_dim)`` of I-JEPA (MAE's recipe).

    Patches are numbered row-major. As in the official code, the first half of the channels
    encodes the patch's column and the second half its row; each half is ``[sin(p·ω), cos(p·ω)]``
    with ``ω_i = 10000^(-i / (D/4))``. Computed in float64 like the official numpy code, then cast,
    so the table matches theirs.
    """
    if embed_dim % 4:
        raise ValueError(f"a 2-D sin-cos table needs a width divisible by 4, not {embed_dim}")
    index = np.arange(grid * grid)
    rows, cols = (index // grid).astype(np.float64), (index % grid).astype(np.float64)

    def encode(pos: np.ndarray, dim: int) -> np.ndarray:
        omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2))
        angles = np.outer(pos, omega)
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    table = np.concatenate([encode(cols, embed_dim // 2), encode(rows, embed_dim // 2)], axis=1)
    return torch.from_numpy(table).float()


def init_weights(module: nn.Module) -> None:
    """Official initialisation of every Linear, Conv2d and LayerNorm inside ``module``."""
    for m in module.modules():
        if isinstance(m, nn.Linear | nn.Conv2d):
            nn.init.trunc_normal_(m.weight, std=INIT_STD)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def new_encoder(arch: VitArch) -> Encoder:
    """A freshly initialised I-JEPA encoder with its fixed sin-cos position table."""
    encoder = Encoder(arch)
    init_weights(encoder)
    with torch.no_grad():
        encoder.pos_embed.copy_(sincos_2d(arch.embed_dim, arch.grid).unsqueeze(0))
    return encoder
