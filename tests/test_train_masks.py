"""Multi-block mask statistics over many draws, the last-row/column fix, and seeding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ijepa_eval.errors import UserError
from ijepa_eval.train.masks import MaskConfig, MultiBlockMasks


def _boxes(mask: torch.Tensor, width: int) -> list[tuple[int, int, int, int, int]]:
    """Per image: (top, left, height, width, count) of the mask's bounding box."""
    out = []
    for idx in mask.tolist():
        rows, cols = np.divmod(np.array(idx), width)
        out.append((rows.min(), cols.min(), np.ptp(rows) + 1, np.ptp(cols) + 1, len(set(idx))))
    return out


def test_block_sizes_follow_scale_and_aspect_ranges():
    """On a fine 64×64 grid (rounding ≤ 3 %), target blocks are full rectangles whose area and
    aspect ratio stay within the configured ranges and span them; context blocks are square."""
    grid, cfg = 64, MaskConfig()
    masks = MultiBlockMasks(grid, cfg, seed=0)
    scales, aspects = [], []
    for step in range(60):
        context, targets = masks(4, step)
        for target in targets:
            for _, _, h, w, count in _boxes(target, grid):
                assert count == h * w  # an intact rectangle: targets are never truncated
                scales.append(h * w / grid**2)
                aspects.append(h / w)
    lo, hi = cfg.target_scale
    assert lo * 0.97 <= min(scales) < lo * 1.05 and hi * 0.95 < max(scales) <= hi * 1.03
    lo, hi = cfg.aspect_ratio
    assert lo * 0.97 <= min(aspects) < lo * 1.05 and hi * 0.95 < max(aspects) <= hi * 1.03
    # Context blocks, seen whole (no targets removed, one image so nothing is truncated): square,
    # 85 % of the grid or more, capped one patch short of the full side as the official sampler is.
    whole = MultiBlockMasks(grid, MaskConfig(allow_overlap=True), seed=0)
    for step in range(30):
        ((_, _, h, w, count),) = _boxes(whole(1, step)[0][0], grid)
        assert h == w and count == h * w
        assert count / grid**2 >= 0.85 * 0.97 and h <= grid - 1


def test_targets_never_overlap_the_context_and_context_keeps_enough():
    grid, cfg = 14, MaskConfig()  # ViT-H/14 at 224 px, the official recipe
    masks = MultiBlockMasks(grid, cfg, seed=1)
    for step in range(200):
        context, targets = masks(8, step)
        assert len(context) == cfg.num_context and len(targets) == cfg.num_targets
        assert context[0].shape[1] > cfg.min_keep
        for i in range(8):
            kept = set(context[0][i].tolist())
            assert len(kept) == context[0].shape[1]  # no duplicate patches
            for target in targets:
                assert kept.isdisjoint(target[i].tolist())


@pytest.mark.parametrize("grid", [8, 14, 16])
def test_every_row_and_column_is_covered(grid):
    """The official sampler never reaches the last row or column; ours covers all of them."""
    cfg = MaskConfig(min_keep=4) if grid == 8 else MaskConfig()
    masks = MultiBlockMasks(grid, cfg, seed=2)
    rows, cols = np.zeros(grid, int), np.zeros(grid, int)
    for step in range(150):
        _, targets = masks(4, step)
        for target in targets:
            r, c = np.divmod(target.numpy(), grid)
            rows += np.bincount(r.ravel(), minlength=grid) > 0
            cols += np.bincount(c.ravel(), minlength=grid) > 0
    assert rows.all() and cols.all(), (rows, cols)
    assert rows[-1] > 0.1 * rows.max() and cols[-1] > 0.1 * cols.max()


def test_masks_are_seeded_by_seed_rank_and_step():
    draw = MultiBlockMasks(14, MaskConfig(), seed=3)
    same = MultiBlockMasks(14, MaskConfig(), seed=3)
    for a, b in zip(draw(4, 7), same(4, 7), strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    other_rank = MultiBlockMasks(14, MaskConfig(), seed=3, rank=1)
    assert not torch.equal(draw(4, 7)[1][0], other_rank(4, 7)[1][0])
    assert not torch.equal(draw(4, 7)[1][0], draw(4, 8)[1][0])
    context, targets = draw(4, 7)
    assert context[0].dtype == targets[0].dtype == torch.int64


def test_impossible_min_keep_is_refused():
    with pytest.raises(UserError, match=r"mask.min_keep=10 is too large for target blocks"):
        MultiBlockMasks(8, MaskConfig())
