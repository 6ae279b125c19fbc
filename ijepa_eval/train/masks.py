"""Multi-block masks: I-JEPA's context and target blocks, with every row and column reachable.

Per batch, one target block size and one context block size are drawn; per image, ``num_targets``
target blocks and ``num_context`` context blocks are placed, and the target patches are removed
from the context. When a context block keeps fewer than ``min_keep`` patches after 20 placements,
the removal constraints are relaxed one target block at a time. Every image in the batch is then
truncated to the smallest kept count, so the masks stack into ``(B, K)`` index tensors. All of
this follows ``src/masks/multiblock.py`` of facebookresearch/ijepa, with two differences:

- **The placement fix.** The official sampler draws the top-left corner with
  ``randint(0, H - h)``, whose upper bound is exclusive, so no block ever touches the last row or
  column of the grid: on ViT-H/14's 16×16 grid, 31 of the 256 patches are never predicted, and the
  15×15 context block is always pinned to the top-left corner. We draw from ``[0, H - h]``
  inclusive, so every position a block fits in is possible.
- **Seeding.** Sizes and positions come from one generator seeded by ``(seed, rank, step)``,
  drawn in the training process. The masks of a step are the same whatever the number of data
  workers, and a resumed run draws exactly the masks the uninterrupted run drew.

Kept from the official sampler: the block scale and aspect ratio come from the same uniform draw
(so within a batch they move together), a block never spans the full height or width, and a
block is valid only when it keeps strictly more than ``min_keep`` patches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ijepa_eval.errors import UserError
from ijepa_eval.schema import bounded

_TRIES_PER_RELAXATION = 20


@dataclass(frozen=True)
class MaskConfig:
    """The multi-block recipe; defaults are the official configs' (``mask:`` section)."""

    num_targets: int = bounded(4, ge=1)  # num_pred_masks
    # pred_mask_scale
    target_scale: tuple[float, float] = bounded((0.15, 0.2), gt=0, le=1, ascending=True)
    # of target blocks; context blocks are square
    aspect_ratio: tuple[float, float] = bounded((0.75, 1.5), gt=0, ascending=True)
    num_context: int = bounded(1, ge=1)  # num_enc_masks
    # enc_mask_scale
    context_scale: tuple[float, float] = bounded((0.85, 1.0), gt=0, le=1, ascending=True)
    min_keep: int = bounded(10, ge=0)
    allow_overlap: bool = False  # let context blocks keep target patches


class MultiBlockMasks:
    """Draws the context and target masks of one batch: ``masks(batch_size, step)``."""

    def __init__(self, grid: int, config: MaskConfig, *, seed: int = 0, rank: int = 0) -> None:
        self.height = self.width = grid
        self.config = config
        self.seed = seed
        self.rank = rank
        self._check_feasible()

    def __call__(self, batch_size: int, step: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``(masks_context, masks_target)``: lists of ``(batch_size, K)`` int64 patch indices."""
        cfg = self.config
        rng = np.random.default_rng([self.seed, self.rank, step])
        target_size = self._size_at(rng.random(), cfg.target_scale, cfg.aspect_ratio)
        context_size = self._size_at(rng.random(), cfg.context_scale, (1.0, 1.0))
        targets, contexts = [], []
        for _ in range(batch_size):
            blocks = [self._place(rng, target_size) for _ in range(cfg.num_targets)]
            targets.append([np.flatnonzero(b) for b in blocks])
            allowed = None if cfg.allow_overlap else [~b for b in blocks]
            contexts.append(
                [
                    np.flatnonzero(self._place(rng, context_size, allowed))
                    for _ in range(cfg.num_context)
                ]
            )
        return _stack(contexts), _stack(targets)

    def _size_at(
        self, u: float, scale: tuple[float, float], aspect: tuple[float, float]
    ) -> tuple[int, int]:
        """Block ``(h, w)`` for the uniform draw ``u``: area ``scale·N``, ratio ``h/w = aspect``."""
        area = int(self.height * self.width * (scale[0] + u * (scale[1] - scale[0])))
        ratio = aspect[0] + u * (aspect[1] - aspect[0])
        h = round(math.sqrt(area * ratio))
        w = round(math.sqrt(area / ratio))
        return min(h, self.height - 1), min(w, self.width - 1)

    def _place(
        self,
        rng: np.random.Generator,
        size: tuple[int, int],
        allowed: list[np.ndarray] | None = None,
    ) -> np.ndarray:
        """A boolean ``(H, W)`` block of ``size`` at a random position, minus disallowed patches."""
        h, w = size
        regions, relaxed, tries = allowed or [], 0, 0
        while True:
            top = rng.integers(0, self.height - h + 1)  # inclusive: the last row is reachable
            left = rng.integers(0, self.width - w + 1)
            block = np.zeros((self.height, self.width), dtype=bool)
            block[top : top + h, left : left + w] = True
            for region in regions[: len(regions) - relaxed]:
                block &= region
            if block.sum() > self.config.min_keep:
                return block
            tries += 1
            if tries == _TRIES_PER_RELAXATION:  # give up one constraint and try again
                relaxed, tries = relaxed + 1, 0

    def _check_feasible(self) -> None:
        """Fail now, not mid-training, when a block can be too small to ever keep min_keep."""
        cfg = self.config
        for name, scale, aspect in (
            ("target", cfg.target_scale, cfg.aspect_ratio),
            ("context", cfg.context_scale, (1.0, 1.0)),
        ):
            h, w = min(
                (self._size_at(u, scale, aspect) for u in np.linspace(0, 1, 1001)),
                key=lambda s: s[0] * s[1],
            )
            if h * w <= cfg.min_keep:
                raise UserError(
                    f"mask.min_keep={cfg.min_keep} is too large for {name} blocks of {h}×{w} on "
                    f"a {self.height}×{self.width} patch grid (a block must keep more than "
                    f"min_keep patches); lower mask.min_keep below {h * w}"
                )


def _stack(per_image: list[list[np.ndarray]]) -> list[torch.Tensor]:
    """Truncate every mask to the batch's smallest, then one ``(B, K)`` tensor per mask slot."""
    keep = min(len(m) for masks in per_image for m in masks)
    slots = zip(*per_image, strict=True)
    return [torch.from_numpy(np.stack([m[:keep] for m in slot])).long() for slot in slots]
