"""A small line plot drawn with Pillow: matplotlib is not a dependency, and a sweep needs one.

Axes, nice ticks, light grid lines, the points joined by a line, the best point marked with its
value; written atomically so a reader never sees half an image.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ijepa_eval import atomic

INK, GRID, LINE, BEST = (30, 30, 30), (225, 225, 225), (31, 119, 180), (214, 39, 40)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 x 10^k) covering [lo, hi] with about `count` ticks."""
    if hi <= lo:
        lo, hi = lo - 1, hi + 1
    raw = (hi - lo) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks, value = [], first
    while value < hi + step * 0.999:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.1e}"


def line_plot(
    path: str | os.PathLike[str],
    xs: Sequence[float],
    ys: Sequence[float],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    higher_is_better: bool = True,
    size: tuple[int, int] = (760, 460),
) -> Path:
    """Draw ys against xs (integer x ticks when xs are integers) and save a PNG at `path`."""
    if not xs or len(xs) != len(ys):
        raise ValueError(f"need as many x as y values, at least one; got {len(xs)} and {len(ys)}")
    width, height = size
    left, right, top, bottom = 78, 24, 46, 62
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    font, small = _font(16), _font(13)

    yticks = nice_ticks(min(ys), max(ys))
    y0, y1 = yticks[0], yticks[-1]
    x0, x1 = (min(xs), max(xs)) if min(xs) < max(xs) else (xs[0] - 1, xs[0] + 1)
    pad = 0.04 * (x1 - x0)

    def px(x: float) -> float:
        return left + (x - x0 + pad) / (x1 - x0 + 2 * pad) * (width - left - right)

    def py(y: float) -> float:
        return height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)

    for y in yticks:
        draw.line([(left, py(y)), (width - right, py(y))], fill=GRID)
        draw.text((left - 8, py(y)), _label(y), fill=INK, font=small, anchor="rm")
    integers = all(float(x).is_integer() for x in xs)
    xticks = sorted(set(xs)) if integers else nice_ticks(x0, x1)
    every = max(1, math.ceil(len(xticks) / 16))  # keep labels apart on deep encoders
    for i, x in enumerate(xticks):
        if x0 <= x <= x1:
            draw.line([(px(x), height - bottom), (px(x), height - bottom + 5)], fill=INK)
            if i % every == 0:
                text = str(int(x)) if integers else _label(x)
                draw.text((px(x), height - bottom + 8), text, fill=INK, font=small, anchor="mt")
    draw.line([(left, top), (left, height - bottom), (width - right, height - bottom)], fill=INK)

    points = [(px(x), py(y)) for x, y in sorted(zip(xs, ys, strict=True))]
    if len(points) > 1:
        draw.line(points, fill=LINE, width=3, joint="curve")
    for x, y in points:
        draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=LINE)
    best = (max if higher_is_better else min)(range(len(ys)), key=lambda i: ys[i])
    bx, by = px(xs[best]), py(ys[best])
    draw.ellipse([bx - 6, by - 6, bx + 6, by + 6], outline=BEST, width=2)
    draw.text((bx, by - 10), f"{ys[best]:.4g}", fill=BEST, font=small, anchor="mb")

    draw.text((width / 2, 14), title, fill=INK, font=font, anchor="mt")
    draw.text(((left + width - right) / 2, height - 12), xlabel, fill=INK, font=font, anchor="mb")
    box = draw.textbbox((0, 0), ylabel, font=font)
    tag = Image.new("RGB", (box[2] - box[0] + 4, box[3] - box[1] + 6), "white")
    ImageDraw.Draw(tag).text((2 - box[0], 3 - box[1]), ylabel, fill=INK, font=font)
    tag = tag.rotate(90, expand=True)
    img.paste(tag, (8, int((top + height - bottom) / 2 - tag.height / 2)))

    path = Path(path)
    with atomic.atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path
