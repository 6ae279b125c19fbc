"""Reading run records back: validate each file, skip the ones that are not ours, pick the newest.

A results directory holds ``runs/<task>/<run_id>.json`` (see `ijepa_eval.tasks.record`). A file
that is not valid JSON, or is JSON of another schema, is skipped with a `RecordWarning` naming it:
one bad file must not hide every good one. No usable record at all is a `UserError`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ijepa_eval.errors import UserError
from ijepa_eval.tasks.record import SCHEMA


class RecordWarning(UserWarning):
    """A file under the results directory that was skipped, and why."""


@dataclass(frozen=True)
class ModelId:
    """What makes two runs "the same model": the weights, the network in them, the resolution."""

    sha256: str
    network: str
    resolution: int | None

    @property
    def short_sha(self) -> str:
        return self.sha256[:8]


@dataclass(frozen=True)
class Record:
    """The parts of a run record that tables and checks need, plus where it came from."""

    path: Path
    task: str
    task_version: int | None
    metrics: dict[str, float]
    metrics_std: dict[str, float]
    higher_is_better: dict[str, bool]
    model: ModelId
    label: str  # registry name, else the checkpoint spec's last path component
    created: dt.datetime
    run_id: str
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def order(self) -> tuple[dt.datetime, str]:
        """Sort key for "newest": the ``created`` time, ties broken by file path."""
        return (self.created, str(self.path))


def load_records(results_dir: str | os.PathLike[str]) -> list[Record]:
    """Every valid run record in ``results_dir/runs/<task>/`` (or ``results_dir/<task>/``).

    Records come oldest first. Only that depth is read, so a baseline kept inside the results
    folder (``results/baseline/runs/...``) is never mistaken for current results. Raises
    `UserError` when the directory is missing or holds no valid record.
    """
    root = Path(results_dir)
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


def newest(records: list[Record]) -> dict[tuple[ModelId, str], Record]:
    """The newest record of each (model, task): several runs of one pair → the latest wins."""
    latest: dict[tuple[ModelId, str], Record] = {}
    for record in sorted(records, key=lambda r: r.order):
        latest[(record.model, record.task)] = record
    return latest


def newest_per_task(records: list[Record]) -> dict[str, Record]:
    """The newest record of each task, whatever the model (what `check` compares)."""
    latest: dict[str, Record] = {}
    for record in sorted(records, key=lambda r: r.order):
        latest[record.task] = record
    return latest


def read_record(path: Path) -> Record:
    """Parse and validate one run record; `ValueError` says what is wrong with it."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read it ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
        found = raw.get("schema") if isinstance(raw, dict) else type(raw).__name__
        raise ValueError(f"not an ijepa-eval run record (schema {found!r}, expected {SCHEMA!r})")
    task = _need(raw, "task", str)
    metrics = _numbers(_need(raw, "metrics", dict), "metrics")
    if not metrics:
        raise ValueError("'metrics' is empty")
    stds = _numbers(raw.get("metrics_std") or {}, "metrics_std")
    directions = _need(raw, "higher_is_better", dict)
    for name in metrics:
        if not isinstance(directions.get(name), bool):
            raise ValueError(f"'higher_is_better' has no true/false for metric {name!r}")
    model = _need(raw, "model", dict)
    sha = _need(model, "sha256", str, where="model.")
    network = _need(model, "network", str, where="model.")
    resolution = model.get("resolution")
    if resolution is not None and not isinstance(resolution, int):
        raise ValueError("'model.resolution' must be an integer")
    spec = str(model.get("spec") or "")
    label = model.get("registry_name") or spec.rstrip("/").rsplit("/", 1)[-1] or sha[:8]
    version = raw.get("task_version")
    return Record(
        path=path,
        task=task,
        task_version=version if isinstance(version, int) else None,
        metrics=metrics,
        metrics_std={k: v for k, v in stds.items() if k in metrics},
        higher_is_better={name: directions[name] for name in metrics},
        model=ModelId(sha, network, resolution),
        label=str(label),
        created=_timestamp(_need(raw, "created", str)),
        run_id=str(raw.get("run_id") or path.stem),
        raw=raw,
    )


def _need(raw: dict[str, Any], key: str, kind: type, where: str = "") -> Any:
    value = raw.get(key)
    if not isinstance(value, kind) or (kind is str and not value):
        raise ValueError(f"missing or malformed field '{where}{key}'")
    return value


def _numbers(values: dict[str, Any], key: str) -> dict[str, float]:
    out = {}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"'{key}.{name}' is not a number ({value!r})")
        out[str(name)] = float(value)
    return out


def _timestamp(text: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"'created' is not an ISO time ({text!r})") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
