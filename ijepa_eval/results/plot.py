"""Bar charts of the leaderboard, drawn with Pillow (no plotting library to install).

One chart per task, of the task's first metric (its headline number): a horizontal bar per row,
a whisker for the std over seeds, references in grey. ``FILE.png`` stacks the charts in one image;
any other path is a directory that gets one ``<task>.png`` per task. Files are written atomically.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from ijepa_eval import atomic
from ijepa_eval.results.leaderboard import Column, Leaderboard, format_value

WIDTH, ROW, PAD, LABEL_W, VALUE_W = 1000, 26, 12, 400, 120
MEASURED, REFERENCE, INK, GRID = (76, 114, 176), (170, 170, 170), (30, 30, 30), (225, 225, 225)


def plot_leaderboard(board: Leaderboard, dest: str | os.PathLike[str]) -> list[Path]:
    """Draw one chart per task; return the files written."""
    dest = Path(dest)
    charts = {c.task: render_chart(board, c) for c in _headline_columns(board)}
    if dest.suffix.lower() == ".png":
        _save(_stack(list(charts.values())), dest)
        return [dest]
    written = []
    for task, image in charts.items():
        _save(image, dest / f"{task}.png")
        written.append(dest / f"{task}.png")
    return written


def render_chart(board: Leaderboard, column: Column) -> Image.Image:
    """One task's chart: rows that have a value for ``column``, in leaderboard order."""
    font = _font(14)
    values, stds = board.values[column.key], board.stds[column.key]
    shown = [i for i in board.rows.index if pd.notna(values[i])]
    height = PAD * 3 + ROW * (len(shown) + 1)
    image = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    better = "higher" if column.higher_is_better else "lower"
    draw.text((PAD, PAD), f"{column.task}: {column.metric} ({better} is better)", INK, font=font)
    top = PAD * 2 + ROW  # the first bar's top edge
    extent = max([values[i] + (0 if pd.isna(stds[i]) else stds[i]) for i in shown] + [1e-9])
    span = WIDTH - LABEL_W - VALUE_W - 2 * PAD
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
        draw.text((PAD, y + 4), _fit(draw, label, font, LABEL_W - PAD), INK, font=font)
        end = left + max(0.0, value) * scale
        colour = REFERENCE if reference else MEASURED
        draw.rectangle([left, y + 3, max(left + 1, end), y + ROW - 5], colour)
        text_x = end + 6
        if pd.notna(std):
            whisker, mid = end + std * scale, y + ROW // 2 - 1
            draw.line([(left + max(0.0, value - std) * scale, mid), (whisker, mid)], INK, width=2)
            draw.line([(whisker, mid - 5), (whisker, mid + 5)], INK, width=2)
            text_x = whisker + 6
        draw.text((text_x, y + 4), format_value(value, std), INK, font=font)
    return image


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1: a scalable built-in font
    except (TypeError, OSError):  # older Pillow or no FreeType: the small bitmap font
        return ImageFont.load_default()


def _headline_columns(board: Leaderboard) -> list[Column]:
    first: dict[str, Column] = {}
    for column in board.columns:
        first.setdefault(column.task, column)
    return list(first.values())


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """``text``, shortened with "..." to fit ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while len(text) > 1 and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def _stack(images: list[Image.Image]) -> Image.Image:
    out = Image.new("RGB", (WIDTH, sum(im.height for im in images)), "white")
    y = 0
    for im in images:
        out.paste(im, (0, y))
        y += im.height
    return out


def _save(image: Image.Image, dest: Path) -> None:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic.write_bytes(dest, buffer.getvalue())
