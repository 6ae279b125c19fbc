"""``curve``: a series of checkpoints through the same tasks, each metric and RankMe by epoch.

A pretraining run writes ``ep{N}.pth.tar`` every ``logging.keep_every`` epochs; ``curve`` loads
each checkpoint in turn (one at a time: a ViT-H is 2.5 GB), runs every task on it through the
feature cache (a second ``curve`` over the same checkpoints extracts nothing), writes each run's
record as ``run`` would, and gathers one row per checkpoint into a table: its epoch, each task's
metrics, and each task's label-free health (`ijepa_eval.health`: ``rankme``,
``near_constant_dims``, ``mean_norm``). The table is written as CSV and drawn as a PNG (a panel
per metric and per task's RankMe, against the epoch), so one can see when a run stopped
improving.

The epoch is the one a native checkpoint stores (`EncoderInfo.epoch`); if any checkpoint stores
none (or two store the same), every checkpoint is placed by its position in the list instead
(1, 2, ...) and the x column is named ``position``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ijepa_eval import atomic
from ijepa_eval.errors import UserError
from ijepa_eval.tasks.pipeline import ExtractOptions, Job, RunResult, prepare_tasks, run_job
from ijepa_eval.tasks.spec import TaskSpec

HEALTH_COLUMNS = ("rankme", "near_constant_dims", "mean_norm")
_EPOCH_FILE = re.compile(r"^ep(\d+)\.pth\.tar$")


@dataclass
class CurveResult:
    """One row per checkpoint (sorted by ``x``), the files written, and every run."""

    table: pd.DataFrame
    x: str  # "epoch", or "position" where the checkpoints do not all say their epoch
    csv: Path | None
    png: Path | None
    runs: list[list[RunResult]] = field(default_factory=list)  # per checkpoint, per task
    notes: list[str] = field(default_factory=list)


def run_checkpoints(specs: Iterable[str | os.PathLike[str]]) -> list[str]:
    """The checkpoints named: a pretraining run folder becomes its ``ep*.pth.tar`` files in
    epoch order; anything else (a file, an HF model folder, a registry name) stays as it is."""
    out: list[str] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_dir() and not (path / "config.json").is_file():
            found = [
                (int(m.group(1)), p) for p in path.iterdir() if (m := _EPOCH_FILE.match(p.name))
            ]
            if not found:
                raise UserError(
                    f"{path} holds no ep*.pth.tar checkpoints; a pretraining run keeps them with "
                    "logging.keep_every > 0 (or name checkpoint files instead)"
                )
            out += [str(p) for _, p in sorted(found)]
        else:
            out.append(str(spec))
    if not out:
        raise UserError("curve needs at least one checkpoint (files or a pretraining run folder)")
    return out


def curve(
    tasks: Sequence[str | TaskSpec] | Sequence[Job],
    checkpoints: Sequence[str | os.PathLike[str]],
    *,
    which: str | None = None,
    load_options: Mapping[str, Any] | None = None,
    data: str | None = None,
    params: Mapping[str, Any] | None = None,
    include_paths: Iterable[str | os.PathLike[str]] = (),
    device: str | None = None,
    extraction: ExtractOptions = ExtractOptions(),
    results_dir: str | os.PathLike[str] | None = "results",
    out: str | os.PathLike[str] | None = None,
    on_checkpoint: Callable[[str, list[RunResult]], None] | None = None,
) -> CurveResult:
    """Run ``tasks`` on each of ``checkpoints`` (files, or run folders: `run_checkpoints`) and
    tabulate each metric and each task's health by epoch (see the module doc).

    ``tasks`` may be prepared `Job` s (the CLI's, with its data options). ``load_options`` go to
    `load_encoder` (``heads``, ``img_size``, ``preprocess``, ``source_norm``). The CSV and PNG go
    to ``out`` (a folder: ``curve.csv``, ``curve.png``), by default
    ``<results>/curves/<name>-<time>/``; none when ``out`` and ``results_dir`` are both None.
    ``on_checkpoint(spec, runs)`` is called after each checkpoint (the CLI prints progress).
    """
    from ijepa_eval.models import load_encoder

    paths = run_checkpoints(checkpoints)
    if tasks and all(isinstance(t, Job) for t in tasks):
        jobs = list(tasks)
    else:
        jobs = prepare_tasks(tasks, params=params, include_paths=include_paths, data=data)
    if not jobs:
        raise UserError("curve needs at least one task (`ijepa-eval tasks` lists them)")
    rows: list[dict[str, Any]] = []
    runs: list[list[RunResult]] = []
    epochs: list[int | None] = []
    for spec in paths:
        encoder = load_encoder(spec, which, **(load_options or {}))
        epochs.append(encoder.info.epoch if encoder.info else None)
        done = [
            run_job(job, encoder, device=device, extraction=extraction, results_dir=results_dir)
            for job in jobs
        ]
        del encoder
        row: dict[str, Any] = {"checkpoint": spec}
        for job, run in zip(jobs, done, strict=True):
            record = run.record
            row["sha256"] = record.model_info.get("sha256")
            for name, value in record.metrics.items():
                row[f"{job.spec.name}.{name}"] = value
            for name in HEALTH_COLUMNS:
                if name in record.health:
                    row[f"{job.spec.name}.{name}"] = record.health[name]
        rows.append(row)
        runs.append(done)
        if on_checkpoint is not None:
            on_checkpoint(spec, done)

    notes = []
    if all(e is not None for e in epochs) and len(set(epochs)) == len(epochs):
        x, xs = "epoch", epochs
    else:
        x, xs = "position", list(range(1, len(paths) + 1))
        notes.append(
            "not every checkpoint stores a distinct epoch: they are placed by their position in "
            "the list (1, 2, ...)"
        )
    table = pd.DataFrame([{x: value, **row} for value, row in zip(xs, rows, strict=True)])
    order = sorted(range(len(rows)), key=lambda i: xs[i])
    table = table.iloc[order].reset_index(drop=True)
    runs = [runs[i] for i in order]

    folder = _out_folder(out, results_dir, checkpoints, paths)
    csv = png = None
    if folder is not None:
        csv = folder / "curve.csv"
        atomic.write_bytes(csv, table.to_csv(index=False).encode("utf-8"))
        png = _plot(table, x, jobs, csv, folder / "curve.png")
    return CurveResult(table, x, csv, png, runs, notes)


def _plot(table: pd.DataFrame, x: str, jobs: Sequence[Job], csv: Path, png: Path) -> Path:
    """A panel per task metric and per task's RankMe (once where tasks read the same features),
    against ``x``."""
    from ijepa_eval.plots import plot_curves

    panels: list[tuple[str, str]] = []
    for job in jobs:
        for metric in job.spec.metrics:
            worse = "" if metric.higher_is_better else " (lower is better)"
            panels.append(
                (f"{job.spec.name}.{metric.name}", f"{job.spec.name}: {metric.name}{worse}")
            )
        column = f"{job.spec.name}.rankme"
        shown = [c for c, _ in panels if c.endswith(".rankme")]
        if column in table and not any(table[column].equals(table[c]) for c in shown):
            panels.append((column, f"{job.spec.name}: RankMe"))
    return plot_curves(csv, png, panels, x=x)


def _out_folder(
    out: str | os.PathLike[str] | None,
    results_dir: str | os.PathLike[str] | None,
    given: Sequence[str | os.PathLike[str]],
    paths: Sequence[str],
) -> Path | None:
    if out is not None:
        return Path(out)
    if results_dir is None:
        return None
    first = Path(given[0]).expanduser()
    name = first.name if len(given) == 1 and first.is_dir() else Path(paths[0]).name
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name.removesuffix(".pth.tar")) or "curve"
    stamp = f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}"
    return Path(results_dir) / "curves" / f"{name}-{stamp}"


__all__ = ["CurveResult", "curve", "run_checkpoints"]
