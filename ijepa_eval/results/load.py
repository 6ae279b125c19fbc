"""Reading run records back: validate each file, skip the ones that are not ours, pick the newest.

A results directory holds ``runs/<task>/<run_id>.json`` (see `ijepa_eval.tasks.record`). A file
that is not valid JSON, or is JSON of another schema, is skipped with a `RecordWarning` naming it:
one bad file must not hide every good one. No usable record at all is a `UserError`.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ijepa_eval.errors import UserError
from ijepa_eval.tasks.record import ModelId, RunRecord

__all__ = [
    "RecordWarning",
    "file_beside",
    "load_records",
    "newest",
    "newest_per_task",
    "record_arrays",
]


class RecordWarning(UserWarning):
    """A file under the results directory that was skipped, and why."""


def load_records(results_dir: str | os.PathLike[str]) -> list[RunRecord]:
    """Every valid run record in ``results_dir/runs/<task>/`` (or ``results_dir/<task>/``).

    Records come oldest first. Only that depth is read, so a baseline kept inside the results
    folder (``results/baseline/runs/...``) is never mistaken for current results. Raises
    `UserError` when the directory is missing or holds no valid record.
    """
    root = Path(results_dir)
    if root.exists() and not root.is_dir():
        raise UserError(f"{root} is a file; name the results folder (it holds runs/<task>/)")
    if not root.is_dir():
        raise UserError(f"results directory {root} does not exist")
    runs = root / "runs" if (root / "runs").is_dir() else root
    records = []
    for path in sorted(runs.glob("*/*.json")):
        if path.name.startswith("."):
            continue
        try:
            records.append(read_record(path))
        except ValueError as exc:
            warnings.warn(f"skipped {path}: {exc}", RecordWarning, stacklevel=2)
    if not records:
        raise UserError(
            f"no run records under {runs} (expected runs/<task>/<run_id>.json; "
            "`ijepa-eval run --ckpt ... --tasks ...` writes them)"
        )
    return sorted(records, key=lambda r: r.order)


def newest(records: list[RunRecord]) -> dict[tuple[ModelId, str], RunRecord]:
    """The newest record of each (model, task): several runs of one pair → the latest wins.

    Layer-sweep runs (``ijepa-eval sweep``) are left out: each scores one block, not the
    task's protocol, so none stands for the model in a leaderboard, report or model card.
    """
    latest: dict[tuple[ModelId, str], RunRecord] = {}
    for record in sorted((r for r in records if not r.sweep), key=lambda r: r.order):
        latest[(record.model, record.task)] = record
    return latest


def newest_per_task(records: list[RunRecord]) -> dict[str, RunRecord]:
    """The newest record of each task, whatever the model (what `check` compares)."""
    latest: dict[str, RunRecord] = {}
    for record in sorted(records, key=lambda r: r.order):
        latest[record.task] = record
    return latest


def read_record(path: Path) -> RunRecord:
    """Parse and validate one run record; `ValueError` says what is wrong with it."""
    return RunRecord.read(path)


def file_beside(record: RunRecord, entry: dict[str, Any] | None) -> Path | None:
    """The file an entry of the record names (``predictions``, ``examples``), where it lies
    beside the record; None when the entry names none or the file is not there."""
    if not entry or record.path is None or not entry.get("file"):
        return None
    path = record.path.with_name(str(entry["file"]))
    return path if path.is_file() else None


def record_arrays(record: RunRecord, entry: dict[str, Any] | None) -> dict[str, np.ndarray] | None:
    """The arrays of the ``.npz`` an entry of the record names (None where there is none); a
    damaged file is a one-line `UserError` naming it."""
    path = file_beside(record, entry)
    if path is None:
        return None
    try:
        with np.load(path) as found:
            return {k: found[k] for k in found.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # damaged or cut short
        raise UserError(f"{record.path or record.run_id}: cannot read {path} ({exc})") from None
