"""The run record: one JSON file per run, with everything needed to trust and redo it.

`RunRecord` is the one class that writes records (`evaluate`) and reads them back (leaderboard,
check). Files live at ``<results>/runs/<task>/<run_id>.json``, written atomically: the file
appears by a hard link from a finished temporary file, which fails rather than overwrite another
run; a failed write raises, it is never a logged warning. Beside a record may sit
``<run_id>.head.safetensors`` (the trained head), ``<run_id>.preds.npz`` (per-item outputs on
the reported split, with the digest of the item ids they follow) and ``<run_id>.examples.npz``
(a few test items to look at: the depth probe's images, ground truth and predictions).

Schema versions: ``ijepa-eval/run/2`` adds ``predictions`` (and ``sweep`` as a named field);
``ijepa-eval/run/1`` records, written before, load unchanged (they have no predictions).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ijepa_eval import atomic
from ijepa_eval.errors import UserError

SCHEMA = "ijepa-eval/run/2"
READABLE_SCHEMAS = ("ijepa-eval/run/1", SCHEMA)


@dataclass(frozen=True)
class ModelId:
    """What makes two runs "the same model": the weights, the network in them, the resolution."""

    sha256: str
    network: str
    resolution: int | None

    @property
    def short_sha(self) -> str:
        return self.sha256[:8]


@dataclass
class RunRecord:
    """One evaluation: its metrics and everything they depend on.

    JSON keys are the field names, except ``model_info`` (stored as ``model``); keys this
    version does not know are kept in ``extra`` and written back unchanged.
    """

    task: str
    metrics: dict[str, float]
    higher_is_better: dict[str, bool]
    model_info: dict[str, Any]
    created: str
    task_version: int | None = None
    run_id: str = ""
    metrics_std: dict[str, float] = field(default_factory=dict)
    # --seeds N: each probe seed's value of each metric, in the order of seeds["probe"]
    metrics_per_seed: dict[str, list[float]] = field(default_factory=dict)
    # 95% bootstrap interval [low, high] over the reported split's items (ijepa_eval.results.stats)
    metrics_ci: dict[str, list[float]] = field(default_factory=dict)
    baselines: dict[str, Any] = field(default_factory=dict)
    # label-free health of the reported split's pooled features (ijepa_eval.health): rankme,
    # near_constant_dims, mean_norm and what they were computed on; empty where nothing was
    # extracted (fine-tuning) and in records made before it existed
    health: dict[str, Any] = field(default_factory=dict)
    chosen: Any = None
    grid: list[dict[str, Any]] = field(default_factory=list)
    seeds: dict[str, Any] = field(default_factory=dict)
    splits: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    features: dict[str, Any] = field(default_factory=dict)
    task_spec: dict[str, Any] = field(default_factory=dict)
    probe_config: dict[str, Any] = field(default_factory=dict)  # every parameter, defaults too
    notes: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    head_weights: str | None = None
    predictions: dict[str, Any] | None = None
    examples: dict[str, Any] | None = None  # split, index (rows), arrays, file
    sweep: dict[str, Any] | None = None
    schema: str = SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False)  # where it was read or written

    # --- identity, for tables and checks ------------------------------------------------------

    @property
    def model(self) -> ModelId:
        info = self.model_info
        return ModelId(info["sha256"], info["network"], info.get("resolution"))

    @property
    def label(self) -> str:
        """The registry name, else the checkpoint spec's last path component."""
        spec = str(self.model_info.get("spec") or "")
        name = self.model_info.get("registry_name") or spec.rstrip("/").rsplit("/", 1)[-1]
        return str(name or self.model.short_sha)

    @property
    def created_at(self) -> dt.datetime:
        when = dt.datetime.fromisoformat(self.created.replace("Z", "+00:00"))
        return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)

    @property
    def order(self) -> tuple[dt.datetime, str]:
        """Sort key for "newest": the ``created`` time, ties broken by file path."""
        return (self.created_at, str(self.path))

    def __getitem__(self, key: str) -> Any:
        """The record read like its JSON file: ``record["metrics"]``, ``record["model"]``."""
        return self.to_json()[key]

    # --- JSON ---------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in ("path", "extra"):
                continue
            value = getattr(self, f.name)
            if value is None and f.name in ("head_weights", "predictions", "examples", "sweep"):
                continue
            if f.name in ("metrics_ci", "metrics_per_seed", "health") and not value:  # not kept
                continue
            out["model" if f.name == "model_info" else f.name] = value
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, raw: Any, path: Path | None = None) -> RunRecord:
        """Validate and read a record; `ValueError` says what is wrong with it."""
        if not isinstance(raw, dict) or raw.get("schema") not in READABLE_SCHEMAS:
            found = raw.get("schema") if isinstance(raw, dict) else type(raw).__name__
            raise ValueError(
                f"not an ijepa-eval run record (schema {found!r}, expected {SCHEMA!r})"
            )
        metrics = _numbers(_need(raw, "metrics", dict), "metrics")
        if not metrics:
            raise ValueError("'metrics' is empty")
        directions = _need(raw, "higher_is_better", dict)
        for name in metrics:
            if not isinstance(directions.get(name), bool):
                raise ValueError(f"'higher_is_better' has no true/false for metric {name!r}")
        model = _need(raw, "model", dict)
        _need(model, "sha256", str, where="model.")
        _need(model, "network", str, where="model.")
        resolution = model.get("resolution")
        if resolution is not None and not isinstance(resolution, int):
            raise ValueError("'model.resolution' must be an integer")
        version = raw.get("task_version")
        known = {f.name for f in dataclasses.fields(cls)} - {"model_info", "path", "extra"}
        values = {k: v for k, v in raw.items() if k in known}
        record = cls(
            **{
                **values,
                "task": _need(raw, "task", str),
                "metrics": metrics,
                "metrics_std": {
                    k: v
                    for k, v in _numbers(raw.get("metrics_std") or {}, "metrics_std").items()
                    if k in metrics
                },
                "metrics_ci": _intervals(raw.get("metrics_ci") or {}, metrics),
                "metrics_per_seed": _per_seed(raw.get("metrics_per_seed") or {}, metrics),
                "health": _health(raw.get("health") or {}),
                "higher_is_better": {name: directions[name] for name in metrics},
                "model_info": model,
                "created": _need(raw, "created", str),
                "task_version": version if isinstance(version, int) else None,
                "run_id": str(raw.get("run_id") or (path.stem if path else "")),
                "notes": list(raw.get("notes") or []),
            },
            extra={k: v for k, v in raw.items() if k not in known and k != "model"},
            path=path,
        )
        try:
            _ = record.created_at
        except ValueError:
            raise ValueError(f"'created' is not an ISO time ({record.created!r})") from None
        return record

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> RunRecord:
        """Parse one record file; `ValueError` says what is wrong with it."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read it ({exc})") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc.msg}, line {exc.lineno})") from None
        return cls.from_json(raw, path)

    def write(self, results_dir: str | os.PathLike[str]) -> Path:
        """Write as ``runs/<task>/<run_id>.json``; never replaces an existing file.

        Refuses a NaN or infinite number anywhere: strict JSON readers reject them.
        """
        if not self.run_id:
            raise ValueError("a record needs a run_id before it is written")
        folder = Path(results_dir) / "runs" / self.task
        folder.mkdir(parents=True, exist_ok=True)
        try:
            text = json.dumps(self.to_json(), indent=2, default=_jsonable, allow_nan=False) + "\n"
        except ValueError:
            bad = [k for k, v in self.metrics.items() if not math.isfinite(v)]
            raise UserError(
                f"run {self.run_id}: not a finite number in the record"
                + (f" (metrics {', '.join(bad)})" if bad else "")
                + "; nothing was written"
            ) from None
        dest = folder / f"{self.run_id}.json"
        try:
            atomic.create_new(dest, text.encode("utf-8"))
        except FileExistsError:
            raise UserError(f"run record {dest} already exists; not overwriting it") from None
        self.path = dest
        return dest

    def sibling(self, suffix: str) -> Path | None:
        """A file written beside this record (``.head.safetensors``, ``.preds.npz``,
        ``.examples.npz``)."""
        return None if self.path is None else self.path.with_name(f"{self.run_id}{suffix}")


def environment(device: str) -> dict[str, Any]:
    import timm
    import torch

    from ijepa_eval import __version__

    return {
        "ijepa_eval": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "platform": platform.platform(),
        "device": device,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def git_commit() -> str | None:
    """The harness's own commit (with ``-dirty`` for local changes), or None outside a checkout."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return commit.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


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


def _intervals(values: Any, metrics: dict[str, float]) -> dict[str, list[float]]:
    """``metrics_ci``: ``{metric: [low, high]}``, kept for the record's metrics only."""
    return _number_lists(values, metrics, "metrics_ci", "[low, high]", length=2)


def _per_seed(values: Any, metrics: dict[str, float]) -> dict[str, list[float]]:
    """``metrics_per_seed``: ``{metric: [value per seed]}``, kept for the record's metrics."""
    return _number_lists(values, metrics, "metrics_per_seed", "a list of numbers")


def _number_lists(
    values: Any, metrics: dict[str, float], key: str, shape: str, *, length: int | None = None
) -> dict[str, list[float]]:
    """``{metric: [numbers]}`` (``length`` of them, or any non-empty number), checked, kept
    for the record's metrics only."""
    if not isinstance(values, dict):
        raise ValueError(f"'{key}' must map metric names to {shape}")
    out = {}
    for name, seq in values.items():
        counted = isinstance(seq, list) and (len(seq) == length if length else len(seq) > 0)
        if not counted or any(isinstance(v, bool) or not isinstance(v, int | float) for v in seq):
            raise ValueError(f"'{key}.{name}' is not {shape} ({seq!r})")
        if name in metrics:
            out[str(name)] = [float(v) for v in seq]
    return out


def _health(values: Any) -> dict[str, Any]:
    """``health``: a mapping whose ``rankme``, ``near_constant_dims`` and ``mean_norm``, where
    present, are numbers."""
    if not isinstance(values, dict):
        raise ValueError("'health' must be a mapping (rankme, near_constant_dims, mean_norm, ...)")
    for name in ("rankme", "near_constant_dims", "mean_norm"):
        value = values.get(name)
        if name in values and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"'health.{name}' is not a number ({value!r})")
    return dict(values)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot record a {type(value).__name__}")
