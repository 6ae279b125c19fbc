"""Every chart ijepa-eval draws, with Pillow: matplotlib is not a dependency.

- `plot_leaderboard`: a bar chart per task of a leaderboard (``ijepa-eval leaderboard --plot``);
- `line_plot`: one metric against the block, for the layer sweep;
- `plot_curves`: a pretraining run's ``log.csv`` as small panels (``curves.png``), and the
  metrics of a series of checkpoints against their epoch (``ijepa-eval curve``).

They share one font helper (`font`), one tick helper (`nice_ticks`, `tick_label`), one way to
draw a line chart in a box (`draw_line_chart`: the sweep plot is one big such chart, the training
curves are five small ones) and one PNG writer (`save_png`), atomic so that a reader never sees
half an image. No torch here: ``leaderboard`` stays quick to start.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from ijepa_eval import atomic

if TYPE_CHECKING:
    from ijepa_eval.results.leaderboard import Column, Leaderboard

INK, GRID, LINE, BEST = (30, 30, 30), (225, 225, 225), (31, 119, 180), (214, 39, 40)
MEASURED, REFERENCE = (76, 114, 176), (170, 170, 170)  # leaderboard bars: ours, published

Box = tuple[float, float, float, float]  # left, top, right, bottom in pixels


# ---- shared helpers --------------------------------------------------------------------------


def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font at ``size`` pixels (Pillow >= 10.1 with FreeType), else the small
    fixed bitmap font."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # older Pillow or no FreeType
        return ImageFont.load_default()


def save_png(image: Image.Image, dest: str | os.PathLike[str]) -> Path:
    """Write ``image`` as a PNG at ``dest`` atomically (parents created); return the path."""
    dest = Path(dest)
    with atomic.atomic_path(dest) as tmp:
        image.save(tmp, format="PNG")
    return dest


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


def tick_label(value: float, integer: bool = False) -> str:
    """A tick's text: ``12`` for integer axes, else short (``0.25``, ``3.0e-04``)."""
    if integer:
        return str(int(value))
    return f"{value:g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.1e}"


def draw_line_chart(
    draw: ImageDraw.ImageDraw,
    box: Box,
    xs: Sequence[float],
    ys: Sequence[float],
    *,
    labels: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    xticks: Sequence[float] | None = None,
    best: str | None = None,
    width: int = 3,
    dot: int = 4,
    max_xlabels: int = 16,
) -> None:
    """ys against xs inside ``box`` (the plotting area; tick labels go outside it).

    Y: round ticks with light grid lines; x: ``xticks`` (default round ones) with a label on at
    most ``max_xlabels`` of them, integers printed as such when every x is an integer. The points
    are joined by a line of ``width`` and marked with dots of radius ``dot`` (0: none, unless
    there is one point); ``best`` = ``"max"`` or ``"min"`` rings that point and writes its value.
    No points: the axes alone.
    """
    left, top, right, bottom = box
    if len(xs) != len(ys):
        raise ValueError(f"need as many x as y values; got {len(xs)} and {len(ys)}")
    if not xs:
        draw.line([(left, top), (left, bottom), (right, bottom)], fill=INK)
        return
    yticks = nice_ticks(min(ys), max(ys))
    y0, y1 = yticks[0], yticks[-1]
    x0, x1 = (min(xs), max(xs)) if min(xs) < max(xs) else (xs[0] - 1, xs[0] + 1)
    pad = 0.04 * (x1 - x0)

    def px(x: float) -> float:
        return left + (x - x0 + pad) / (x1 - x0 + 2 * pad) * (right - left)

    def py(y: float) -> float:
        return bottom - (y - y0) / (y1 - y0) * (bottom - top)

    for y in yticks:
        draw.line([(left, py(y)), (right, py(y))], fill=GRID)
        draw.text((left - 8, py(y)), tick_label(y), fill=INK, font=labels, anchor="rm")
    integers = all(float(x).is_integer() for x in xs)
    xticks = nice_ticks(x0, x1) if xticks is None else xticks
    every = max(1, math.ceil(len(xticks) / max_xlabels))  # keep labels apart
    for i, x in enumerate(xticks):
        if x0 <= x <= x1:
            draw.line([(px(x), bottom), (px(x), bottom + 5)], fill=INK)
            if i % every == 0:
                text = tick_label(x, integers and float(x).is_integer())
                draw.text((px(x), bottom + 8), text, fill=INK, font=labels, anchor="mt")
    draw.line([(left, top), (left, bottom), (right, bottom)], fill=INK)

    points = [(px(x), py(y)) for x, y in sorted(zip(xs, ys, strict=True))]
    if len(points) > 1:
        draw.line(points, fill=LINE, width=width, joint="curve")
    if dot or len(points) == 1:  # a lone point is always marked
        r = max(dot, 2)
        for x, y in points:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=LINE)
    if best is not None:
        i = (max if best == "max" else min)(range(len(ys)), key=lambda i: ys[i])
        bx, by, ring = px(xs[i]), py(ys[i]), dot + 2
        draw.ellipse([bx - ring, by - ring, bx + ring, by + ring], outline=BEST, width=2)
        draw.text((bx, by - ring - 4), f"{ys[i]:.4g}", fill=BEST, font=labels, anchor="mb")


# ---- the layer sweep -------------------------------------------------------------------------


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
    """Draw ys against xs (a tick per x when xs are integers), ring the best point, save a PNG."""
    if not xs or len(xs) != len(ys):
        raise ValueError(f"need as many x as y values, at least one; got {len(xs)} and {len(ys)}")
    width, height = size
    left, right, top, bottom = 78, 24, 46, 62
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    big = font(16)
    integers = all(float(x).is_integer() for x in xs)
    draw_line_chart(
        draw,
        (left, top, width - right, height - bottom),
        xs,
        ys,
        labels=font(13),
        xticks=sorted(set(xs)) if integers else None,
        best="max" if higher_is_better else "min",
    )
    draw.text((width / 2, 14), title, fill=INK, font=big, anchor="mt")
    draw.text(((left + width - right) / 2, height - 12), xlabel, fill=INK, font=big, anchor="mb")
    box = draw.textbbox((0, 0), ylabel, font=big)
    tag = Image.new("RGB", (box[2] - box[0] + 4, box[3] - box[1] + 6), "white")
    ImageDraw.Draw(tag).text((2 - box[0], 3 - box[1]), ylabel, fill=INK, font=big)
    tag = tag.rotate(90, expand=True)
    img.paste(tag, (8, int((top + height - bottom) / 2 - tag.height / 2)))
    return save_png(img, path)


# ---- training curves -------------------------------------------------------------------------

PANELS = (("loss", "loss"), ("lr", "learning rate"), ("wd", "weight decay"),
          ("momentum", "EMA momentum"), ("knn_top1", "k-NN top-1"))  # fmt: skip
PANEL_W, PANEL_H = 360, 220


def plot_curves(
    log_csv: str | os.PathLike[str],
    png: str | os.PathLike[str],
    panels: Sequence[tuple[str, str]] = PANELS,
    *,
    x: str = "step",
    dot: int = 0,
) -> Path:
    """One small line chart per column of a CSV (``panels``: ``(column, title)``; a pretraining
    run's ``log.csv`` with its loss, lr, wd, momentum, k-NN top-1 by default) against its column
    ``x``, three panels to a row (at least two rows), as one PNG. ``dot``: the points' radius
    (0: a bare line, for thousands of steps)."""
    log = pd.read_csv(log_csv)
    rows = max(2, math.ceil(len(panels) / 3))
    canvas = Image.new("RGB", (PANEL_W * 3, PANEL_H * rows), "white")
    draw, title_font, labels = ImageDraw.Draw(canvas), font(13), font(11)
    for i, (column, title) in enumerate(panels):
        got = log[[x, column]].dropna().astype(float) if column in log else None
        xs, ys = ([], []) if got is None else (got[x].tolist(), got[column].tolist())
        x0, y0 = (i % 3) * PANEL_W, (i // 3) * PANEL_H
        draw.text((x0 + 62, y0 + 6), title, fill=INK, font=title_font)
        box = (x0 + 62, y0 + 30, x0 + PANEL_W - 16, y0 + PANEL_H - 40)
        draw_line_chart(draw, box, xs, ys, labels=labels, width=2, dot=dot, max_xlabels=5)
        if not xs:
            draw.text((box[0] + 8, box[1] + 8), "no data", fill="gray", font=labels)
        centre = ((box[0] + box[2]) / 2, y0 + PANEL_H - 4)
        draw.text(centre, x, fill=INK, font=labels, anchor="mb")
    return save_png(canvas, png)


# ---- leaderboard bar charts ------------------------------------------------------------------

BAR_WIDTH, ROW, PAD, LABEL_W, VALUE_W = 1000, 26, 12, 400, 120


def plot_leaderboard(board: Leaderboard, dest: str | os.PathLike[str]) -> list[Path]:
    """One bar chart per task, of its headline metric (`headline`): a horizontal bar per row, a
    whisker for the std over seeds, references in grey. ``FILE.png`` stacks the charts in one
    image; any other path is a directory that gets one ``<task>.png`` per task. Returns the
    files written."""
    from ijepa_eval.results.leaderboard import headline

    dest = Path(dest)
    charts = {c.task: _bar_chart(board, c) for c in headline(board).columns}
    if dest.suffix.lower() == ".png":
        return [save_png(_stack(list(charts.values())), dest)]
    return [save_png(image, dest / f"{task}.png") for task, image in charts.items()]


def _bar_chart(board: Leaderboard, column: Column) -> Image.Image:
    """One task's chart: rows that have a value for ``column``, in leaderboard order."""
    from ijepa_eval.results.leaderboard import format_value

    text_font = font(14)
    values, stds = board.values[column.key], board.stds[column.key]
    shown = [i for i in board.rows.index if pd.notna(values[i])]
    height = PAD * 3 + ROW * (len(shown) + 1)
    image = Image.new("RGB", (BAR_WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    better = "higher" if column.higher_is_better else "lower"
    draw.text((PAD, PAD), f"{column.task}: {column.metric} ({better} is better)", INK, text_font)
    top = PAD * 2 + ROW  # the first bar's top edge
    extent = max([values[i] + (0 if pd.isna(stds[i]) else stds[i]) for i in shown] + [1e-9])
    span = BAR_WIDTH - LABEL_W - VALUE_W - 2 * PAD
    scale = span / (extent * 1.05) if extent > 0 else 0.0
    left = PAD + LABEL_W
    draw.line([(left, top), (left, top + ROW * len(shown))], GRID)
    for n, i in enumerate(shown):
        value, std = float(values[i]), float(stds[i])
        row = board.rows.loc[i]
        reference = row["kind"] == "reference"
        details = ", ".join(x for x in (row["network"], row["sha256"]) if x)
        label = f"{row['model']} ({details})" + (" [ref]" if reference else "")
        y = top + ROW * n
        draw.text((PAD, y + 4), _fit(draw, label, text_font, LABEL_W - PAD), INK, text_font)
        end = left + max(0.0, value) * scale
        colour = REFERENCE if reference else MEASURED
        draw.rectangle([left, y + 3, max(left + 1, end), y + ROW - 5], colour)
        text_x = end + 6
        if pd.notna(std):
            whisker, mid = end + std * scale, y + ROW // 2 - 1
            draw.line([(left + max(0.0, value - std) * scale, mid), (whisker, mid)], INK, width=2)
            draw.line([(whisker, mid - 5), (whisker, mid + 5)], INK, width=2)
            text_x = whisker + 6
        draw.text((text_x, y + 4), format_value(value, std), INK, text_font)
    return image


def _fit(draw: ImageDraw.ImageDraw, text: str, text_font, width: int) -> str:
    """``text``, shortened with "..." to fit ``width`` pixels."""
    if draw.textlength(text, font=text_font) <= width:
        return text
    while len(text) > 1 and draw.textlength(text + "...", font=text_font) > width:
        text = text[:-1]
    return text + "..."


def _stack(images: list[Image.Image]) -> Image.Image:
    out = Image.new("RGB", (BAR_WIDTH, sum(im.height for im in images)), "white")
    y = 0
    for im in images:
        out.paste(im, (0, y))
        y += im.height
    return out
