"""Regression check: the newest records against a committed baseline, metric by metric.

For each task in the baseline, the newest baseline record is compared with the newest current
record of that task (whatever its model: a CI job gates its own checkpoint). For each metric,
``gain`` is the change in the good direction (``now - baseline`` when higher is better,
``baseline - now`` when lower is better, e.g. RMSE). Then:

- ``regressed``: gain < -tolerance (or the current value is not a finite number) → fails;
- ``missing``: the baseline has the task or metric, the current results do not → fails;
- ``improved``: gain > tolerance → passes (time to refresh the baseline);
- ``ok``: otherwise → passes.

With ``statistical=True`` (``check --statistical [--alpha 0.01]``) a drop beyond the tolerance
fails only when it is also significant at ``alpha``: a paired test on the same test items, from
the per-item predictions stored beside both records (McNemar's exact test for 0/1-per-item
metrics such as top-1 and top-5, the paired bootstrap z-test for mean per-class accuracy, k-shot
means and per-image depth metrics; see `ijepa_eval.results.stats`). Such a drop that is not
significant is ``noise`` and passes. Where either side has no predictions, or they follow
different test items, the plain rule applies and a note says so.

A tolerance is absolute, in the metric's own units (``0.5``: half a percentage point of
accuracy), or relative to the baseline value (``"2%"``). The default, 1% of the baseline, fits
any scale: 0.8 points of an 80% accuracy, 4 mm of a 0.41 m RMSE. The most specific one wins:
``tolerances.yaml``'s metric entry, then its task entry (a value, or the ``default`` of a task's
mapping), then ``--tolerance``, then the file's ``default``, then `DEFAULT_TOLERANCE`::

    default: 1%
    tasks:
      clevr_count: 1.0              # every metric of the task, in points
      imagenet_kshot:
        top1_1shot: 2.0             # one metric
        default: 1.0                # the task's other metrics
      depth_synth: {rmse: 5%}
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ijepa_eval.errors import UserError
from ijepa_eval.results.load import load_records, newest_per_task
from ijepa_eval.tasks.record import RunRecord
from ijepa_eval.yaml_file import read_yaml

DEFAULT_TOLERANCE = "1%"
TOLERANCES_FILE = "tolerances.yaml"
FAILING = ("regressed", "missing")
STATISTICAL_ALPHA = 0.01


@dataclass(frozen=True)
class Comparison:
    task: str
    metric: str
    higher_is_better: bool
    baseline: float
    now: float | None  # None: no current record or metric
    tolerance: float  # the change allowed in the bad direction, in the metric's units
    tolerance_spec: str  # as configured: "0.5" or "1%"
    status: str  # ok | improved | regressed | missing | noise (statistical: not significant)
    p_value: float | None = None  # statistical: the paired test's two-sided p-value
    test: str | None = None  # statistical: "mcnemar" or "bootstrap"

    @property
    def delta(self) -> float | None:
        return None if self.now is None else self.now - self.baseline

    @property
    def tolerance_text(self) -> str:
        exact = f"{self.tolerance:.4g}"
        return exact if exact == self.tolerance_spec else f"{exact} = {self.tolerance_spec}"

    @property
    def failed(self) -> bool:
        return self.status in FAILING

    def show(self, value: float | None, signed: bool = False) -> str:
        """As the leaderboard shows numbers: two decimals, three for a baseline below 1."""
        if value is None:
            return "—"
        digits = 2 if abs(self.baseline) >= 1 else 3
        return f"{value:{'+' if signed else ''}.{digits}f}"

    def describe(self) -> str:
        """One line naming the task, metric, both values and the change."""
        arrow = "↑" if self.higher_is_better else "↓"
        head = f"{self.task} {self.metric} {arrow}: baseline {self.show(self.baseline)}"
        if self.now is None:
            return f"{head}, now missing"
        tested = "" if self.p_value is None else f", {self.test} {format_p(self.p_value)}"
        return (
            f"{head}, now {self.show(self.now)}, delta {self.show(self.delta, signed=True)} "
            f"(tolerance {self.tolerance_text}{tested})"
        )


@dataclass(frozen=True)
class CheckReport:
    comparisons: tuple[Comparison, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return not any(c.failed for c in self.comparisons)

    @property
    def failures(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.failed]


def check(
    baseline_dir: str | os.PathLike[str],
    results_dir: str | os.PathLike[str],
    *,
    tolerance: float | str | None = None,
    statistical: bool = False,
    alpha: float = STATISTICAL_ALPHA,
) -> CheckReport:
    """Compare the newest records under ``results_dir`` with the baseline in ``baseline_dir``.

    ``tolerance`` (``0.5`` or ``"2%"``) applies to the metrics ``tolerances.yaml`` does not name;
    ``statistical`` also asks a drop to be significant at ``alpha`` (module docstring).
    """
    if statistical and not 0 < alpha < 1:
        raise UserError(f"--alpha must be between 0 and 1, not {alpha}")
    override = None if tolerance is None else Tolerance.parse(tolerance, "--tolerance")
    tolerances = Tolerances.read(Path(baseline_dir) / TOLERANCES_FILE, override)
    baseline = newest_per_task(load_records(baseline_dir))
    current = newest_per_task(load_records(results_dir))
    comparisons: list[Comparison] = []
    notes: list[str] = []
    for task in sorted(baseline):
        base, now = baseline[task], current.get(task)
        preds = None
        if now is not None:
            notes += _differences(base, now)
            if statistical:
                preds, why = _paired_predictions(base, now)
                if why:
                    notes.append(f"{task}: {why}; the plain tolerance rule applies")
        for metric, value in base.metrics.items():
            if not math.isfinite(value):
                raise UserError(f"baseline {base.path}: {task} {metric} is {value}, not a number")
            found = compare(
                task,
                metric,
                base.higher_is_better[metric],
                value,
                None if now is None else now.metrics.get(metric),
                tolerances.get(task, metric),
            )
            if preds is not None and found.now is not None:
                found = _tested(found, preds, alpha, notes)
            comparisons.append(found)
    extra = sorted(set(current) - set(baseline))
    if extra:
        notes.append(f"not in the baseline (not checked): {', '.join(extra)}")
    return CheckReport(tuple(comparisons), tuple(notes))


def compare(
    task: str,
    metric: str,
    higher_is_better: bool,
    baseline: float,
    now: float | None,
    tolerance: Tolerance,
) -> Comparison:
    """Classify one metric; see the module docstring for the rules."""
    allowed = tolerance.allowed(baseline)
    slack = allowed + 1e-9 * max(1.0, abs(baseline))  # a change of exactly the tolerance passes
    if now is None:
        status = "missing"
    elif not math.isfinite(now):
        status = "regressed"
    else:
        gain = (now - baseline) if higher_is_better else (baseline - now)
        status = "regressed" if gain < -slack else "improved" if gain > slack else "ok"
    return Comparison(
        task, metric, higher_is_better, baseline, now, allowed, str(tolerance), status
    )


def _paired_predictions(base: RunRecord, now: RunRecord) -> tuple[Any, str | None]:
    """Both records' per-item predictions, or None and why they cannot be paired."""
    from ijepa_eval.results.compare import read_predictions, same_items

    for side, record in (("baseline", base), ("current", now)):
        if not (record.predictions or {}).get("file"):
            return None, f"the {side} record {record.path} has no per-item predictions"
    if same_items(base, now):
        return None, "baseline and current predictions follow different test items"
    try:
        return (read_predictions(base), read_predictions(now)), None
    except UserError as exc:
        return None, str(exc)


def _tested(found: Comparison, preds: Any, alpha: float, notes: list[str]) -> Comparison:
    """``found`` with its paired test; a drop beyond the tolerance that is not significant at
    ``alpha`` becomes ``noise`` (passes)."""
    from ijepa_eval.results.compare import paired_metric

    got = paired_metric(preds[0], preds[1], found.metric)
    if got is None:
        notes.append(
            f"{found.task} {found.metric}: no per-item form in the predictions; plain rule"
        )
        return found
    status = found.status
    if status == "regressed" and math.isfinite(found.now) and not got.p_value < alpha:
        status = "noise"
    return replace(found, status=status, p_value=got.p_value, test=got.test)


def format_p(p: float) -> str:
    """A p-value as reports print it: ``p < 0.001`` below that, else ``p = 0.123``."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _differences(base: RunRecord, now: RunRecord) -> list[str]:
    notes = []
    if base.task_version != now.task_version:
        notes.append(
            f"{base.task}: task version {base.task_version} in the baseline, {now.task_version} "
            "now; if the change is intended, regenerate the baseline"
        )
    if base.model != now.model:
        notes.append(
            f"{base.task}: baseline model {base.label} ({base.model.short_sha}, "
            f"{base.model.network}), now {now.label} ({now.model.short_sha}, {now.model.network})"
        )
    return notes


@dataclass(frozen=True)
class Tolerance:
    """An allowed change: ``amount`` in the metric's units, or percent of the baseline value."""

    amount: float
    relative: bool = False

    @classmethod
    def parse(cls, value: Any, where: str) -> Tolerance:
        """``0.5``, ``"0.5"`` or ``"2%"``; anything else (or below 0) is a `UserError`."""
        text = str(value).strip()
        relative = text.endswith("%")
        try:
            if isinstance(value, bool):
                raise ValueError
            amount = float(text.removesuffix("%"))
        except ValueError:
            amount = float("nan")
        if not amount >= 0 or not math.isfinite(amount):
            raise UserError(
                f"{where} must be a number ≥ 0 (0.5) or a percentage (2%), not {value!r}"
            )
        return cls(amount, relative)

    def allowed(self, baseline: float) -> float:
        return self.amount / 100 * abs(baseline) if self.relative else self.amount

    def __str__(self) -> str:
        return f"{self.amount:g}%" if self.relative else f"{self.amount:g}"


@dataclass(frozen=True)
class Tolerances:
    """Per-task and per-metric tolerances, with the fallback chain described above."""

    fallback: Tolerance
    tasks: dict[str, Tolerance | dict[str, Tolerance]]

    @classmethod
    def read(cls, path: Path, override: Tolerance | None = None) -> Tolerances:
        raw: Any = {}
        if path.is_file():
            raw = read_yaml(path, "tolerance file") or {}
        if not isinstance(raw, dict) or set(raw) - {"default", "tasks"}:
            raise UserError(f"{path}: use the keys 'default' and 'tasks' (see `check --help`)")
        default = Tolerance.parse(raw.get("default", DEFAULT_TOLERANCE), f"{path}: 'default'")
        entries = raw.get("tasks") or {}
        if not isinstance(entries, dict):
            raise UserError(f"{path}: 'tasks' must map task names to a tolerance or to metrics")
        tasks: dict[str, Tolerance | dict[str, Tolerance]] = {}
        for task, entry in entries.items():
            where = f"{path}: 'tasks.{task}"
            if isinstance(entry, dict):
                tasks[task] = {m: Tolerance.parse(v, f"{where}.{m}'") for m, v in entry.items()}
            else:
                tasks[task] = Tolerance.parse(entry, f"{where}'")
        return cls(override or default, tasks)

    def get(self, task: str, metric: str) -> Tolerance:
        entry = self.tasks.get(task, self.fallback)
        if isinstance(entry, dict):
            return entry.get(metric, entry.get("default", self.fallback))
        return entry
