"""The I-JEPA predictor: a narrow ViT that guesses target-block features from the context.

Same state-dict keys as the official ``VisionTransformerPredictor`` (``predictor_embed``,
``mask_token``, ``predictor_pos_embed``, ``predictor_blocks.N.*``, ``predictor_norm``,
``predictor_proj``), so either implementation loads the other's weights with ``strict=True``.
The blocks are timm's, whose parameter names are the official ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import torch
from timm.models.vision_transformer import Block
from torch import nn

from ijepa_eval.models.vit import apply_masks
from ijepa_eval.train.init import INIT_STD, init_weights, sincos_2d


class Predictor(nn.Module):
    """Maps context tokens plus target positions to predicted target tokens.

    Widths: ``embed_dim`` is the encoder's, ``predictor_embed_dim`` the predictor's own (384 in
    every official config); the heads are the encoder's.
    """

    def __init__(
        self,
        num_patches: int,
        embed_dim: int,
        predictor_embed_dim: int = 384,
        depth: int = 6,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        grid = math.isqrt(num_patches)
        if grid * grid != num_patches:
            raise ValueError(f"{num_patches} patches do not form a square grid")
        norm = partial(nn.LayerNorm, eps=norm_eps)
        self.predictor_embed = nn.Linear(embed_dim, predictor_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, predictor_embed_dim))
        self.predictor_pos_embed = nn.Parameter(
            sincos_2d(predictor_embed_dim, grid).unsqueeze(0), requires_grad=False
        )
        self.predictor_blocks = nn.ModuleList(
            Block(predictor_embed_dim, num_heads, mlp_ratio, qkv_bias=qkv_bias, norm_layer=norm)
            for _ in range(depth)
        )
        self.predictor_norm = norm(predictor_embed_dim)
        self.predictor_proj = nn.Linear(predictor_embed_dim, embed_dim)
        init_weights(self)
        nn.init.trunc_normal_(self.mask_token, std=INIT_STD)

    def forward(
        self,
        x: torch.Tensor,
        masks_x: Sequence[torch.Tensor],
        masks: Sequence[torch.Tensor],
    ) -> torch.Tensor:
        """Predict the tokens at ``masks`` (targets) from ``x``, the encoded ``masks_x`` (context).

        ``x`` is ``(len(masks_x) * B, K_ctx, D)`` as the masked encoder returns it; the result is
        ``(len(masks) * len(masks_x) * B, K_tgt, D)``, ordered (target mask, context mask, image).
        """
        batch = x.size(0) // len(masks_x)
        positions = self.predictor_pos_embed.expand(batch, -1, -1)
        x = self.predictor_embed(x) + apply_masks(positions, masks_x)
        n_context = x.size(1)
        # One query per target patch: the learned mask token at that patch's position.
        queries = self.mask_token + repeat_interleave_batch(
            apply_masks(positions, masks), batch, len(masks_x)
        )
        x = torch.cat([x.repeat(len(masks), 1, 1), queries], dim=1)
        for block in self.predictor_blocks:
            x = block(x)
        x = self.predictor_norm(x)
        return self.predictor_proj(x[:, n_context:])


def repeat_interleave_batch(x: torch.Tensor, batch: int, repeat: int) -> torch.Tensor:
    """Repeat each group of ``batch`` rows ``repeat`` times: ``[a, b] → [a, a, b, b]``."""
    groups = x.reshape(-1, 1, batch, *x.shape[1:])
    return groups.expand(-1, repeat, *groups.shape[2:]).reshape(-1, *x.shape[1:])
