"""Training curves as one PNG, drawn with PIL (no plotting library needed).

One small panel per column of ``log.csv`` (loss, lr, wd, momentum, k-NN top-1) against the step,
with the value range written on the axis: enough to see a run's shape at a glance.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from ijepa_eval.atomic import atomic_path

PANELS = (("loss", "loss"), ("lr", "learning rate"), ("wd", "weight decay"),
          ("momentum", "EMA momentum"), ("knn_top1", "k-NN top-1"))  # fmt: skip
_W, _H, _PAD = 360, 220, 44


def plot_curves(log_csv: str | os.PathLike[str], png: str | os.PathLike[str]) -> Path:
    log = pd.read_csv(log_csv)
    canvas = Image.new("RGB", (_W * 3, _H * 2), "white")
    for i, (column, title) in enumerate(PANELS):
        rows = log[["step", column]].dropna() if column in log else log.iloc[:0]
        _panel(canvas, (i % 3) * _W, (i // 3) * _H, title, rows)
    with atomic_path(png) as tmp:
        canvas.save(tmp, format="PNG")
    return Path(png)


def _panel(canvas: Image.Image, x0: int, y0: int, title: str, rows: pd.DataFrame) -> None:
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    left, top, right, bottom = x0 + _PAD + 16, y0 + 24, x0 + _W - 12, y0 + _H - 28
    draw.text((x0 + _PAD + 16, y0 + 6), title, fill="black", font=font)
    draw.rectangle((left, top, right, bottom), outline="gray")
    if rows.empty:
        draw.text((left + 8, top + 8), "no data", fill="gray", font=font)
        return
    xs, ys = rows.iloc[:, 0].to_numpy(float), rows.iloc[:, 1].to_numpy(float)
    (xa, xb), (ya, yb) = (xs.min(), xs.max()), (ys.min(), ys.max())
    xspan, yspan = (xb - xa) or 1.0, (yb - ya) or abs(yb) or 1.0
    points = [
        (left + (x - xa) / xspan * (right - left), bottom - (y - ya) / yspan * (bottom - top))
        for x, y in zip(xs, ys, strict=True)
    ]
    if len(points) > 1:
        draw.line(points, fill=(31, 119, 180), width=2)
    else:
        draw.ellipse((points[0][0] - 2, points[0][1] - 2, points[0][0] + 2, points[0][1] + 2))
    draw.text((x0 + 4, top), f"{yb:.3g}", fill="black", font=font)
    draw.text((x0 + 4, bottom - 10), f"{ya:.3g}", fill="black", font=font)
    draw.text((left, bottom + 6), f"step {xa:.0f}", fill="black", font=font)
    draw.text((right - 70, bottom + 6), f"step {xb:.0f}", fill="black", font=font)
