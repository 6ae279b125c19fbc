"""The training log: ``log.csv`` (one row every few steps) echoed to the console.

Columns (pretraining's; another loop, such as fine-tuning, names its own): step, epoch,
loss (mean since the previous row), lr, wd, momentum, knn_top1 (on rows
that ended an evaluated epoch), time (seconds of training so far). On resume, rows past the
checkpoint's step are dropped, since those steps are about to be run again.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from rich.console import Console

from ijepa_eval.atomic import write_text
from ijepa_eval.errors import writing

COLUMNS = ("step", "epoch", "loss", "lr", "wd", "momentum", "knn_top1", "time")


class TrainLog:
    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        resume_step: int | None,
        console: Console,
        columns: tuple[str, ...] = COLUMNS,
    ) -> None:
        self.path = Path(path)
        self.console = console
        self.columns = columns
        kept = []
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline="") as f:
                rows = csv.DictReader(f)  # a row cut by a crash (no step number) is dropped
                kept = [r for r in rows if (r.get("step") or "").isdigit()]
                kept = [r for r in kept if int(r["step"]) <= resume_step]
        lines = [",".join(columns)] + [",".join(r.get(c) or "" for c in columns) for r in kept]
        with writing("the training log", self.path):
            write_text(self.path, "\n".join(lines) + "\n")

    def write(self, **row: float | int | None) -> None:
        values = [_cell(row.get(c)) for c in self.columns]
        with writing("the training log", self.path), open(self.path, "a") as f:
            f.write(",".join(values) + "\n")
        if self.columns != COLUMNS:  # another loop's log (fine-tuning): every value given
            shown = "  ".join(
                f"{c} {_cell(row[c])}"
                for c in self.columns
                if c not in ("step", "epoch", "time") and row.get(c) is not None
            )
            self.console.print(
                f"[bold]epoch {row['epoch']} step {row['step']}[/]  {shown}  "
                f"[dim]{row['time']:.0f}s[/]",
                highlight=False,
            )
            return
        knn = "" if row.get("knn_top1") is None else f"  [green]knn top-1 {row['knn_top1']:.4g}[/]"
        self.console.print(
            f"[bold]epoch {row['epoch']} step {row['step']}[/]  loss {row['loss']:.4f}  "
            f"lr {row['lr']:.3e}  wd {row['wd']:.3f}  momentum {row['momentum']:.5f}{knn}  "
            f"[dim]{row['time']:.0f}s[/]",
            highlight=False,
        )


def _cell(value: float | int | None) -> str:
    if value is None:
        return ""
    return str(value) if isinstance(value, int) else f"{value:.6g}"
