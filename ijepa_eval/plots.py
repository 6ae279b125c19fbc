"""The charts ijepa-eval writes as PNG files, drawn by `ijepa_eval.results.figures`.

- `plot_leaderboard`: a bar chart per task of a leaderboard (``ijepa-eval leaderboard --plot``);
- `sweep_plot`: one metric against the block, for the layer sweep (``sweep.png``);
- `plot_curves`: a pretraining or fine-tuning run's ``log.csv`` as small panels
  (``curves.png``), and the metrics of a series of checkpoints against their epoch
  (``ijepa-eval curve``).

The report (`ijepa-eval report`) draws the same figures with the same code, so a chart looks
the same in a file and on the page. Each file is written atomically, so that a reader never sees
half an image. matplotlib is imported when a chart is drawn, not when this module is: importing
the trainer or the leaderboard stays quick.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from PIL import Image

from ijepa_eval import atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ijepa_eval.results.leaderboard import Column, Leaderboard

PANELS = (("loss", "loss"), ("lr", "learning rate"), ("wd", "weight decay"),
          ("momentum", "EMA momentum"), ("knn_top1", "k-NN top-1"))  # fmt: skip


def sweep_plot(
    path: str | os.PathLike[str],
    blocks: Sequence[int],
    values: Sequence[float],
    *,
    metric: str,
    higher_is_better: bool,
    depth: int | None,
    title: str,
    intervals: Sequence[Sequence[float] | None] | None = None,
) -> Path:
    """``metric`` of the probe trained on each of ``blocks`` alone, the best block ringed;
    ``intervals``, each block's 95% interval where every block has one, as a band."""
    from ijepa_eval.results import figures

    if not blocks or len(blocks) != len(values):
        raise ValueError(
            f"need as many blocks as values, at least one; got {len(blocks)} and {len(values)}"
        )
    band = intervals if intervals and all(intervals) else None
    line = figures.Series(
        title,
        list(blocks),
        list(values),
        [ci[0] for ci in band] if band else None,
        [ci[1] for ci in band] if band else None,
    )
    fig = figures.sweep_figure(
        [line], metric=metric, higher_is_better=higher_is_better, depth=depth, title=title
    )
    return figures.save_png(fig, path)


def plot_curves(
    log_csv: str | os.PathLike[str],
    png: str | os.PathLike[str],
    panels: Sequence[tuple[str, str]] = PANELS,
    *,
    x: str = "step",
) -> Path:
    """One small line chart per column of a CSV (``panels``: ``(column, title)``; a pretraining
    run's ``log.csv`` with its loss, lr, wd, momentum, k-NN top-1 by default) against its column
    ``x``, three panels to a row, as one PNG; a column the CSV lacks says "no data"."""
    from ijepa_eval.results import figures

    table = pd.read_csv(log_csv).apply(pd.to_numeric, errors="coerce")
    return figures.save_png(figures.panels_figure(table, x, panels), png)


def plot_leaderboard(board: Leaderboard, dest: str | os.PathLike[str]) -> list[Path]:
    """One bar chart per task, of its headline metric (`headline`): a horizontal bar per row, a
    whisker for its ±, references in grey. ``FILE.png`` stacks the charts in one image; any
    other path is a directory that gets one ``<task>.png`` per task. Returns the files
    written."""
    from ijepa_eval.results import figures
    from ijepa_eval.results.leaderboard import headline

    dest = Path(dest)
    charts = {c.task: _bar_chart(board, c) for c in headline(board).columns}
    if not charts:
        return []
    if dest.suffix.lower() == ".png":
        pngs = [Image.open(io.BytesIO(figures.png_bytes(fig))) for fig in charts.values()]
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic.atomic_path(dest) as tmp:
            _stack(pngs).save(tmp, format="PNG")
        return [dest]
    return [figures.save_png(fig, dest / f"{task}.png") for task, fig in charts.items()]


def _bar_chart(board: Leaderboard, column: Column) -> Figure:
    """One task's chart: rows that have a value for ``column``, in leaderboard order."""
    from ijepa_eval.results import figures
    from ijepa_eval.results.leaderboard import format_value

    values, stds = board.values[column.key], board.stds[column.key]
    bars = []
    for i in board.rows.index:
        if pd.isna(values[i]):
            continue
        row = board.rows.loc[i]
        details = ", ".join(x for x in (row["network"], row["sha256"]) if x)
        value, std = float(values[i]), float(stds[i])
        bars.append(
            figures.Bar(
                f"{row['model']} ({details})",
                value,
                std,
                row["kind"] == "reference",
                format_value(value, std),
            )
        )
    better = "higher" if column.higher_is_better else "lower"
    return figures.bars_figure(bars, title=f"{column.task}: {column.metric} ({better} is better)")


def _stack(images: list[Image.Image]) -> Image.Image:
    """The images one below the other, on white, left-aligned."""
    size = (max(im.width for im in images), sum(im.height for im in images))
    out = Image.new("RGB", size, "white")
    y = 0
    for im in images:
        out.paste(im.convert("RGB"), (0, y))
        y += im.height
    return out
