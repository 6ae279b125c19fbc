"""The one encoder implementation: timm's VisionTransformer configured as I-JEPA.

I-JEPA's ViT is timm's with no class token, a fixed 2-D sin-cos position embedding stored in the
checkpoint, LayerNorm eps 1e-6, qkv bias and average pooling (``vit_huge_patch14_gap_224``), so
native, HF and timm weights all load into this class after one key mapping.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from ijepa_eval.models.arch import VitArch

if TYPE_CHECKING:
    from ijepa_eval.models.info import EncoderInfo
    from ijepa_eval.preprocess import Preprocess


def _mlp_ratio(arch: VitArch) -> float:
    """A ratio for which timm's ``int(dim * ratio)`` gives exactly ``mlp_hidden``."""
    ratio = arch.mlp_hidden / arch.embed_dim
    if int(arch.embed_dim * ratio) != arch.mlp_hidden:
        ratio = (arch.mlp_hidden + 0.5) / arch.embed_dim
    return ratio


class Encoder(VisionTransformer):
    """An I-JEPA ViT whose forward returns the final-LayerNorm patch tokens ``(B, N, D)``.

    ``info`` (what was loaded) and ``preprocess`` (how to prepare pixels) are attached by
    `ijepa_eval.load_encoder`; an encoder built directly has neither.
    """

    info: EncoderInfo | None
    preprocess: Preprocess | None

    def __init__(
        self, arch: VitArch, img_size: int | None = None, *, drop_path_rate: float = 0.0
    ) -> None:
        super().__init__(
            img_size=img_size or arch.resolution,
            patch_size=arch.patch_size,
            in_chans=arch.in_chans,
            num_classes=0,
            global_pool="avg",
            embed_dim=arch.embed_dim,
            depth=arch.depth,
            num_heads=arch.num_heads,
            mlp_ratio=_mlp_ratio(arch),
            qkv_bias=arch.qkv_bias,
            class_token=False,
            fc_norm=False,
            norm_layer=partial(nn.LayerNorm, eps=arch.norm_eps),
            drop_path_rate=drop_path_rate,  # stochastic depth, for fine-tuning only
            weight_init="skip",
        )
        self.arch = arch
        self.pos_embed.requires_grad_(False)  # I-JEPA's sin-cos table is fixed, never trained
        self.info = None
        self.preprocess = None

    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        """timm's, made contiguous. The patch embedding hands over a transposed ``(B, N, D)``
        view, and ``x + f(x)`` keeps its first operand's layout, so without this the whole
        residual stream stays transposed and every block pays for copies and strided adds: in
        a ViT-B/16 forward on a CPU they took 248 ms of 2.1 s, 65 ms once contiguous
        (benchmarks/RESULTS.md)."""
        return super()._pos_embed(x).contiguous()

    @property
    def grid(self) -> tuple[int, int]:
        return tuple(self.patch_embed.grid_size)

    def forward(self, x: torch.Tensor, masks: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """Final-normed tokens; with ``masks`` (I-JEPA's context masks) only the kept ones.

        Each mask is a ``(B, K)`` tensor of patch indices; as in the official encoder, position
        embeddings are added first and the kept tokens of every mask are stacked along the batch
        (mask-major), giving ``(len(masks) * B, K, D)``.
        """
        if masks is None:
            return self.forward_features(x)
        x = self._pos_embed(self.patch_embed(x))
        x = self.blocks(apply_masks(x, masks))
        return self.norm(x)

    def forward_blocks(self, x: torch.Tensor, indices: Sequence[int]) -> list[torch.Tensor]:
        """Outputs of the given blocks (negative counts from the end), each through the final norm.

        One forward serves every requested block; it stops after the deepest one.
        """
        depth = len(self.blocks)
        wanted = [i + depth if i < 0 else i for i in indices]
        bad = [i for i, w in zip(indices, wanted, strict=True) if not 0 <= w < depth]
        if bad:
            raise IndexError(f"block indices {bad} are out of range for depth {depth}")
        x = self.norm_pre(self.patch_drop(self._pos_embed(self.patch_embed(x))))
        taken: dict[int, torch.Tensor] = {}
        for i, block in enumerate(self.blocks[: max(wanted) + 1]):
            x = block(x)
            if i in wanted:
                taken[i] = self.norm(x)
        return [taken[w] for w in wanted]


def apply_masks(x: torch.Tensor, masks: Sequence[torch.Tensor]) -> torch.Tensor:
    """Keep, per mask, the tokens it indexes; stack the results along the batch (mask-major)."""
    kept = [torch.gather(x, 1, m.unsqueeze(-1).expand(-1, -1, x.size(-1))) for m in masks]
    return torch.cat(kept, dim=0)


def resample_pos_embed(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """Bicubic resize of a square, class-token-free ``(1, N, D)`` position table to ``grid × grid``.

    All N rows are patch positions (I-JEPA has no class token). This is what transformers'
    ``IJepaEmbeddings.interpolate_pos_encoding`` does (``F.interpolate`` to a target size,
    bicubic, align_corners off, no antialias; a test checks equal outputs). The official code
    (``VisionTransformer.interpolate_pos_encoding`` in facebookresearch/ijepa
    ``src/models/vision_transformer.py``) cannot do it: written for a table with a class row, it
    sets row 0 aside and reshapes the other N - 1 rows into a square, which fails for I-JEPA's
    N = g × g table, so the official encoder runs only at its training resolution. Applied to a
    table with a class row prepended, its bicubic ``scale_factor`` resize gives these same rows
    (tested), so ours is the interpolation it would do if it could.
    """
    old = round(pos_embed.shape[1] ** 0.5)
    if old == grid:
        return pos_embed
    table = pos_embed.reshape(1, old, old, -1).permute(0, 3, 1, 2).float()
    table = F.interpolate(table, size=(grid, grid), mode="bicubic", align_corners=False)
    return table.permute(0, 2, 3, 1).reshape(1, grid * grid, -1).to(pos_embed.dtype)
