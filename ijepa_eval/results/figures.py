"""Every chart ijepa-eval draws, with matplotlib: the report's, and the PNG files of `plots`.

Each function takes numbers already read from run records or logs. The report's return a
`Drawn`: a URI an ``<img>`` can show with nothing else on disk or on the network (vector SVG for
charts, PNG where the figure is mostly pixels: depth maps, a confusion matrix of hundreds of
classes) and the width it was drawn for, so the page shows every figure at the same scale. The
charts that are also written as files (`sweep_figure`, `panels_figure`, `bars_figure`) return
the `Figure`, for `to_uri` or `save_png`; so a layer sweep looks the same in ``sweep.png`` and in
the report. Only the object API is used (`matplotlib.figure.Figure`: no pyplot, no backend
switched, no display); the SVG carries no date and salts its ids with a constant, so the same
records give the same bytes. matplotlib is imported here only, and this module only where a
chart is drawn: ``leaderboard`` and ``--help`` never load it.
"""

from __future__ import annotations

import base64
import io
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from ijepa_eval import atomic

STYLE = {
    "font.family": "DejaVu Sans",  # shipped with matplotlib: the same glyphs everywhere
    "font.size": 9,
    "axes.titlesize": 9.5,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#444444",
    "xtick.color": "#333333",
    "ytick.color": "#333333",
    "svg.hashsalt": "ijepa-eval",  # stable ids: identical input, identical SVG
    "svg.fonttype": "path",  # text as outlines: no font needed where the page is opened
}
LINE, BEST, MUTED = "#1f77b4", "#d62728", "#8c8c8c"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
ANNOTATE_UP_TO = 12  # cells per row (heat map) or classes (confusion) that get their number


@dataclass(frozen=True)
class Drawn:
    """A figure as a ``data:`` URI, and its width in CSS pixels (96 to the inch)."""

    uri: str
    width: int


DPI = 144  # PNGs at 1.5 CSS pixels per pixel: sharp on high-density screens


def to_uri(fig: Figure, *, raster: bool = False) -> Drawn:
    """``fig`` as an SVG (or, ``raster``, a PNG) ``data:`` URI, with the width it reads at."""
    data = png_bytes(fig) if raster else _svg_bytes(fig)
    if raster:  # the PNG header's width, in pixels
        width = int.from_bytes(data[16:20], "big") * 96 / DPI
    else:  # matplotlib sizes its SVG in points
        width = float(re.search(rb'width="([\d.]+)pt"', data)[1]) * 96 / 72
    kind = "png" if raster else "svg+xml"
    return Drawn(f"data:image/{kind};base64,{base64.b64encode(data).decode('ascii')}", round(width))


def save_png(fig: Figure, dest: str | os.PathLike[str]) -> Path:
    """``fig`` as a PNG file at ``dest``, written atomically: a reader never sees half an
    image."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(dest) as tmp:
        tmp.write_bytes(png_bytes(fig))
    return dest


def png_bytes(fig: Figure) -> bytes:
    """``fig`` as PNG bytes at `DPI`, cropped to what is drawn."""
    buffer = io.BytesIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={})
    return buffer.getvalue()


def _svg_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    return buffer.getvalue()


def _figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(STYLE):
        return Figure(figsize=(width, height), layout="constrained")


def number(value: float) -> str:
    """Two decimals, three below 1 (the leaderboard's rule), for labels inside figures."""
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"


# ---- the hyper-parameter grid ----------------------------------------------------------------


@dataclass(frozen=True)
class Heatmap:
    """A grid's validation metric: ``values[row, column]`` (NaN: not trained or diverged)."""

    values: np.ndarray
    columns: list[float]  # the swept hyper-parameter's values (lr, or C)
    column_label: str
    rows: list[str]  # one per combination of every other setting that varies
    chosen: tuple[int, int] | None  # the cell the probe chose


def grid_heatmap(heatmap: Heatmap, metric: str, higher_is_better: bool) -> Drawn:
    """Validation ``metric`` over the grid, the chosen cell outlined; brighter is better."""
    with matplotlib.rc_context(STYLE):
        n_rows, n_cols = heatmap.values.shape
        annotate = n_cols <= ANNOTATE_UP_TO
        fig = _figure(
            min(9.0, 2.2 + (0.7 if annotate else 0.16) * n_cols), max(1.4, 0.9 + 0.28 * n_rows)
        )
        ax = fig.add_subplot()
        cmap = matplotlib.colormaps["viridis" if higher_is_better else "viridis_r"]
        masked = np.ma.masked_invalid(heatmap.values)
        mesh = ax.pcolormesh(masked, cmap=cmap, edgecolors="white", linewidth=1.0)
        labelled = _labelled(heatmap.columns)
        ax.set_xticks(labelled + 0.5, [f"{heatmap.columns[i]:g}" for i in labelled])
        ax.set_yticks(np.arange(n_rows) + 0.5, heatmap.rows)
        ax.invert_yaxis()
        ax.set_xlabel(heatmap.column_label)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        if annotate:
            lo, hi = np.nanmin(heatmap.values), np.nanmax(heatmap.values)
            for (r, c), value in np.ndenumerate(heatmap.values):
                if np.isnan(value):
                    ax.text(c + 0.5, r + 0.5, "–", ha="center", va="center", color=MUTED)
                    continue
                light = (value - lo) / (hi - lo) if hi > lo else 0.5
                light = light if higher_is_better else 1 - light
                ink = "black" if light > 0.6 else "white"
                ax.text(c + 0.5, r + 0.5, number(value), ha="center", va="center", color=ink)
        if heatmap.chosen is not None:
            r, c = heatmap.chosen
            box = Rectangle((c + 0.04, r + 0.06), 0.92, 0.88, fill=False, ec=BEST, lw=2.2)
            ax.add_patch(box)
        bar = fig.colorbar(mesh, ax=ax, shrink=0.9, pad=0.02, aspect=max(8, 4 * n_rows))
        bar.set_label(
            f"validation {metric} ({'higher' if higher_is_better else 'lower'} is better)"
        )
        bar.outline.set_visible(False)
        return to_uri(fig)


# ---- confusion matrix --------------------------------------------------------------------------


def _labelled(columns: Sequence[float]) -> np.ndarray:
    """Which columns get a tick label: all of a dozen or fewer, else the powers of ten of a
    log-spaced grid (C from 1e-6 to 1e5), else every k-th."""
    n = len(columns)
    if n <= ANNOTATE_UP_TO:
        return np.arange(n)
    decades = [i for i, v in enumerate(columns) if v > 0 and math.log10(v).is_integer()]
    if len(decades) >= 3:
        return np.asarray(decades)
    return np.arange(0, n, math.ceil(n / ANNOTATE_UP_TO))


def confusion_matrix(counts: np.ndarray, classes: Sequence[str]) -> Drawn:
    """Rows: the true class; columns: the predicted one. Colour: the share of the row (recall
    on the diagonal); counts written in when there are few classes."""
    with matplotlib.rc_context(STYLE):
        n = len(classes)
        totals = counts.sum(axis=1, keepdims=True)
        share = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
        side = min(6.2, 1.5 + 0.3 * n)
        fig = _figure(side + 0.9, side)
        ax = fig.add_subplot()
        image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
        if n <= 40:
            ticks = np.arange(n)
            labels = [_short(str(c)) for c in classes]
            ax.set_xticks(ticks, labels, rotation=90 if max(map(len, labels)) > 3 else 0)
            ax.set_yticks(ticks, labels)
        ax.tick_params(length=0, labelsize=8 if n <= 15 else 6)
        for spine in ax.spines.values():
            spine.set_visible(False)
        if n <= ANNOTATE_UP_TO:
            for (r, c), count in np.ndenumerate(counts):
                if count:
                    ink = "white" if share[r, c] > 0.55 else "#222222"
                    ax.text(c, r, str(int(count)), ha="center", va="center", color=ink, size=7.5)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        bar = fig.colorbar(image, ax=ax, shrink=0.8, pad=0.02)
        bar.set_label("share of the true class")
        bar.outline.set_visible(False)
        return to_uri(fig, raster=n > 40)


def _short(text: str, width: int = 22) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# ---- depth examples ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DepthExample:
    row: int  # the item's row in the reported split
    image: np.ndarray | None  # (H, W, 3) uint8
    target: np.ndarray  # (h, w) metres, NaN where not scored
    prediction: np.ndarray  # (h, w) metres


def depth_examples(examples: Sequence[DepthExample]) -> Drawn:
    """A row per example: image, ground truth, prediction (one depth scale for all) and the
    absolute error on the scored pixels."""
    with matplotlib.rc_context(STYLE):
        targets = [e.target.astype(np.float32) for e in examples]
        errors = [
            np.abs(e.prediction.astype(np.float32) - t)
            for e, t in zip(examples, targets, strict=True)
        ]
        every = np.concatenate([t[np.isfinite(t)] for t in targets] or [np.zeros(1)])
        lo, hi = (float(np.min(every)), float(np.max(every))) if every.size else (0.0, 1.0)
        worst = [e[np.isfinite(e)] for e in errors]
        top = float(np.percentile(np.concatenate(worst), 99)) if any(w.size for w in worst) else 1
        fig = _figure(7.4, 1.6 * len(examples) + 0.3)
        axes = fig.subplots(len(examples), 4, squeeze=False)
        titles = ("image", "ground truth", "prediction", "|error|")
        depth_cmap = matplotlib.colormaps["turbo"].with_extremes(bad="#dddddd")
        error_cmap = matplotlib.colormaps["magma"].with_extremes(bad="#dddddd")
        depth_image = error_image = None
        for i, (example, target, error) in enumerate(zip(examples, targets, errors, strict=True)):
            row = axes[i]
            if example.image is not None:
                row[0].imshow(example.image)
            else:
                row[0].text(0.5, 0.5, "no image", ha="center", va="center", color=MUTED)
            depth_image = row[1].imshow(target, cmap=depth_cmap, vmin=lo, vmax=hi)
            row[2].imshow(example.prediction.astype(np.float32), cmap=depth_cmap, vmin=lo, vmax=hi)
            error_image = row[3].imshow(error, cmap=error_cmap, vmin=0, vmax=top)
            scored = np.isfinite(error)
            rmse = float(np.sqrt(np.mean(error[scored] ** 2))) if scored.any() else float("nan")
            row[3].set_xlabel(f"RMSE {number(rmse)} m", labelpad=2)
            row[0].set_ylabel(f"test item {example.row}")
            for j, ax in enumerate(row):
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(False)
                if i == 0:
                    ax.set_title(titles[j])
        if depth_image is not None:
            bar = fig.colorbar(depth_image, ax=axes[:, 1:3], shrink=0.7, pad=0.01, aspect=30)
            bar.set_label("depth (m)")
            bar.outline.set_visible(False)
            bar = fig.colorbar(error_image, ax=axes[:, 3], shrink=0.7, pad=0.03, aspect=30)
            bar.set_label("absolute error (m), grey: not scored")
            bar.outline.set_visible(False)
        return to_uri(fig, raster=True)


# ---- lines: layer sweeps, training curves --------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One line: ``ys`` against ``xs``, with optional 95% interval ends."""

    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    lows: Sequence[float] | None = None
    highs: Sequence[float] | None = None


def sweep_figure(
    series: Sequence[Series],
    *,
    metric: str,
    higher_is_better: bool,
    depth: int | None,
    title: str | None = None,
) -> Figure:
    """The metric by block, a line per model, its 95% interval as a band; each line's best
    block ringed and labelled."""
    with matplotlib.rc_context(STYLE):
        fig = _figure(6.4, 3.1)
        ax = fig.add_subplot()
        if title:
            ax.set_title(title, loc="left")
        for colour, s in zip(_colours(len(series)), series, strict=True):
            ax.plot(s.xs, s.ys, marker="o", markersize=4, color=colour, label=s.label, lw=1.8)
            if s.lows is not None and s.highs is not None:
                ax.fill_between(s.xs, s.lows, s.highs, color=colour, alpha=0.15, linewidth=0)
            best = (np.nanargmax if higher_is_better else np.nanargmin)(np.asarray(s.ys))
            ax.scatter([s.xs[best]], [s.ys[best]], s=90, facecolors="none", edgecolors=BEST)
            ax.annotate(
                number(s.ys[best]), (s.xs[best], s.ys[best]), xytext=(0, 8),
                textcoords="offset points", ha="center", color=BEST,
            )  # fmt: skip
        blocks = sorted({x for s in series for x in s.xs})
        ax.set_xticks(blocks, [str(int(b)) for b in blocks])
        last = f", {depth - 1} = last" if depth else ""
        ax.set_xlabel(f"block (0 = first{last})")
        ax.set_ylabel(f"{metric} ({'higher' if higher_is_better else 'lower'} is better)")
        ax.grid(axis="y", color="#e6e6e6")
        ax.set_axisbelow(True)
        if len(series) > 1:
            ax.legend(frameon=False, fontsize=8)
        return fig


def panels_figure(
    table: Mapping[str, Sequence[float]], x: str, shown: Sequence[tuple[str, str]]
) -> Figure:
    """Small line charts, three to a row: each ``(column, title)`` of ``shown`` against ``x``
    (a training log's step, a curve's epoch), missing values skipped; a column the table lacks
    or holds no value in says so in its panel."""
    with matplotlib.rc_context(STYLE):
        rows = math.ceil(len(shown) / 3)
        fig = _figure(9.0, 2.15 * rows)
        axes = fig.subplots(rows, 3, squeeze=False).ravel()
        xs_all = np.asarray(table[x], dtype=float)
        for ax, (column, title) in zip(axes, shown, strict=False):
            missing = np.full(len(xs_all), np.nan)
            ys = np.asarray(table[column], dtype=float) if column in table else missing
            keep = np.isfinite(ys) & np.isfinite(xs_all)
            xs, ys = xs_all[keep], ys[keep]
            few = len(xs) <= 30
            ax.plot(xs, ys, color=LINE, lw=1.5, marker="o" if few else None, markersize=3)
            if not len(xs):
                ax.text(0.5, 0.5, "no data", ha="center", va="center", color=MUTED,
                        transform=ax.transAxes)  # fmt: skip
            ax.set_title(title, loc="left", fontsize=8.5)
            ax.set_xlabel(x)
            whole = bool(np.all(xs_all[np.isfinite(xs_all)] % 1 == 0))  # steps, epochs
            ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=whole))  # labels apart
            ax.grid(color="#ececec")
            ax.set_axisbelow(True)
            ax.tick_params(labelsize=7.5)
        for ax in axes[len(shown) :]:
            ax.set_visible(False)
        return fig


# ---- leaderboard bars --------------------------------------------------------------------------


MEASURED, REFERENCE = "#4c72b0", "#aaaaaa"  # our runs, published rows


@dataclass(frozen=True)
class Bar:
    """One leaderboard row's value of a metric, with its ± (NaN: none)."""

    label: str
    value: float
    spread: float
    reference: bool
    text: str  # the value as the leaderboard prints it


def bars_figure(bars: Sequence[Bar], *, title: str) -> Figure:
    """A horizontal bar per row, in the given order (top first): ours in blue, published rows in
    grey, the ± as a whisker, the value written at the end of the bar."""
    with matplotlib.rc_context(STYLE):
        fig = _figure(7.5, 0.8 + 0.32 * max(1, len(bars)))
        ax = fig.add_subplot()
        ys = np.arange(len(bars))
        values = [b.value for b in bars]
        spreads = [0.0 if math.isnan(b.spread) else b.spread for b in bars]
        colours = [REFERENCE if b.reference else MEASURED for b in bars]
        ax.barh(ys, values, color=colours, height=0.62)
        if any(spreads):
            ax.errorbar(values, ys, xerr=spreads, fmt="none", ecolor="#222222", capsize=3, lw=1)
        right = max([v + s for v, s in zip(values, spreads, strict=True)] + [1e-9])
        for y, value, spread, bar in zip(ys, values, spreads, bars, strict=True):
            ax.text(value + spread + 0.01 * right, y, f" {bar.text}", va="center", size=8)
        ax.set_yticks(ys, [b.label + (" [ref]" if b.reference else "") for b in bars])
        ax.set_xlim(min([0.0, *values]), right * 1.18)
        ax.invert_yaxis()
        ax.set_title(title, loc="left")
        ax.grid(axis="x", color="#ececec")
        ax.set_axisbelow(True)
        ax.tick_params(axis="y", length=0)
        return fig


def _colours(n: int) -> list[str]:
    return [PALETTE[i % len(PALETTE)] for i in range(n)]
