"""``compare``: is the difference between two runs a difference? Item by item, on the same items.

Each side is a record file, or a run folder (its newest record of each task). For each task both
sides have and each metric, `ijepa_eval.results.stats.paired` gives B − A with its 95% paired
bootstrap interval and a two-sided p-value (McNemar's exact test for 0/1-per-item metrics such as
top-1, the bootstrap z-test otherwise; depth: per image), and a verdict at ``alpha``. Two runs
scored on different test items (their ``item_ids_sha256`` differ), or a record without per-item
predictions, are refused in one line: an unpaired difference is not what this answers. More than
two sides: every pair (a matrix per metric). `run_checkpoints` runs checkpoints through the
feature cache first, for ``compare CKPT_A CKPT_B --tasks ...``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ijepa_eval.errors import UserError
from ijepa_eval.results import stats
from ijepa_eval.results.load import load_records, newest_per_task, record_arrays
from ijepa_eval.tasks.record import RunRecord


@dataclass(frozen=True)
class MetricDifference:
    """One metric of one task: B − A on the same items."""

    task: str
    metric: str
    higher_is_better: bool
    paired: stats.Paired
    alpha: float

    @property
    def verdict(self) -> str:
        return self.paired.verdict(self.alpha, self.higher_is_better)

    @property
    def significant(self) -> bool:
        return self.paired.p_value < self.alpha

    def to_json(self) -> dict[str, Any]:
        p = self.paired
        return {
            "task": self.task,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "a": p.a,
            "b": p.b,
            "difference": p.difference,
            "ci95": [p.low, p.high],
            "p_value": p.p_value,
            "test": p.test,
            "discordant": list(p.discordant) if p.discordant else None,
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class CompareReport:
    a: str  # how each side was named
    b: str
    alpha: float
    rows: tuple[MetricDifference, ...]
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "alpha": self.alpha,
            "comparisons": [r.to_json() for r in self.rows],
            "notes": list(self.notes),
        }


def is_run(source: str | os.PathLike[str]) -> bool:
    """A run record file (``.json``) or a folder of them (``runs/<task>/`` or ``<task>/``),
    rather than a checkpoint."""
    path = Path(source)
    if path.is_file():
        return path.suffix == ".json"
    return path.is_dir() and any(
        p.is_file() for p in (*path.glob("runs/*/*.json"), *path.glob("*/*.json"))
    )


def load_side(source: str | os.PathLike[str]) -> dict[str, RunRecord]:
    """A record file → its task; a run folder → the newest record of each task in it."""
    path = Path(source)
    if path.is_file():
        try:
            record = RunRecord.read(path)
        except ValueError as exc:
            raise UserError(f"{path}: {exc}") from None
        return {record.task: record}
    if path.is_dir():
        return newest_per_task(load_records(path))
    raise UserError(f"{path} is neither a run record nor a results folder")


def read_predictions(record: RunRecord) -> dict[str, np.ndarray]:
    """The record's per-item outputs; a `UserError` (one line) when it has none."""
    arrays = record_arrays(record, record.predictions)
    if arrays is None:
        raise UserError(
            f"{record.path or record.run_id}: this record has no per-item predictions (written "
            "before they were kept, by a probe that keeps none, or moved without its .npz); run "
            "it again to compare item by item"
        )
    return arrays


def same_items(a: RunRecord, b: RunRecord) -> str | None:
    """None when both records' predictions follow the same test items, else why not."""
    da = (a.predictions or {}).get("item_ids_sha256")
    db = (b.predictions or {}).get("item_ids_sha256")
    if da and da == db:
        return None
    return (
        f"{a.task}: the two runs were scored on different test items (item ids sha256 "
        f"{str(da)[:12]} vs {str(db)[:12]}); a paired comparison needs the same items"
    )


def compare_records(
    a: RunRecord,
    b: RunRecord,
    *,
    alpha: float = stats.ALPHA,
    metrics: Iterable[str] | None = None,
    resamples: int = stats.RESAMPLES,
    seed: int = stats.SEED,
) -> list[MetricDifference]:
    """B − A for each metric both records have (or ``metrics``); refuses different items."""
    preds_a, preds_b = read_predictions(a), read_predictions(b)
    reason = same_items(a, b)
    if reason:
        raise UserError(reason)
    rows = []
    names = [m for m in (metrics or a.metrics) if m in a.metrics and m in b.metrics]
    for metric in names:
        got = paired_metric(preds_a, preds_b, metric, resamples=resamples, seed=seed)
        if got is not None:
            rows.append(MetricDifference(a.task, metric, a.higher_is_better[metric], got, alpha))
    return rows


def paired_metric(
    preds_a: Mapping[str, np.ndarray],
    preds_b: Mapping[str, np.ndarray],
    metric: str,
    *,
    resamples: int = stats.RESAMPLES,
    seed: int = stats.SEED,
) -> stats.Paired | None:
    """`stats.paired` of one metric from two predictions files; None when they cannot give it."""
    sa, sb = stats.item_scores(preds_a, metric), stats.item_scores(preds_b, metric)
    if sa is None or sb is None or len(sa) != len(sb) or len(sa) == 0:
        return None
    if sa.groups is not None and not np.array_equal(sa.groups, sb.groups):
        return None  # the same ids with different labels: not the same items
    return stats.paired(sa, sb, resamples=resamples, seed=seed)


def compare(
    a: str | os.PathLike[str],
    b: str | os.PathLike[str],
    *,
    alpha: float = stats.ALPHA,
    tasks: Sequence[str] | None = None,
) -> CompareReport:
    """Compare two record files or run folders, task by task (see the module docstring)."""
    _check_alpha(alpha)
    return compare_many([a, b], alpha=alpha, tasks=tasks)[0]


def compare_many(
    sources: Sequence[str | os.PathLike[str]],
    *,
    alpha: float = stats.ALPHA,
    tasks: Sequence[str] | None = None,
) -> list[CompareReport]:
    """Every pair of ``sources`` (A before B in the order given): the matrix's cells."""
    _check_alpha(alpha)
    if len(sources) < 2:
        raise UserError("compare needs two runs or more (record files or run folders)")
    sides = [load_side(s) for s in sources]
    if all(Path(s).is_file() for s in sources):  # records named one by one: compared as given
        task = next(iter(sides[0]))
        sides = [{task: next(iter(side.values()))} for side in sides]
    return [
        _compare_sides(str(sources[i]), str(sources[j]), sides[i], sides[j], alpha, tasks)
        for i, j in itertools.combinations(range(len(sources)), 2)
    ]


def _compare_sides(
    name_a: str,
    name_b: str,
    side_a: dict[str, RunRecord],
    side_b: dict[str, RunRecord],
    alpha: float,
    tasks: Sequence[str] | None,
) -> CompareReport:
    wanted = list(tasks) if tasks else sorted(set(side_a) | set(side_b))
    notes, rows = [], []
    common = [t for t in wanted if t in side_a and t in side_b]
    for task in wanted:
        if task not in common:
            which = name_b if task in side_a else name_a
            notes.append(f"{task}: no record in {which}; not compared")
    if not common:
        raise UserError(f"{name_a} and {name_b} have no task in common to compare")
    for task in common:
        ra, rb = side_a[task], side_b[task]
        if ra.task_version != rb.task_version:
            notes.append(f"{task}: task version {ra.task_version} in A, {rb.task_version} in B")
        found = compare_records(ra, rb, alpha=alpha)
        skipped = [m for m in ra.metrics if m in rb.metrics and m not in {r.metric for r in found}]
        if skipped:
            notes.append(f"{task}: no per-item form for {', '.join(skipped)}; not compared")
        rows += found
    if not rows:
        raise UserError(f"{name_a} and {name_b} have no metric in common to compare")
    return CompareReport(name_a, name_b, alpha, tuple(rows), tuple(notes))


def run_checkpoints(
    checkpoints: Sequence[str],
    tasks: Sequence[str],
    *,
    results_dir: str | os.PathLike[str] = "results",
    extraction: Any = None,
    device: str | None = None,
    **request: Any,
) -> list[list[Path]]:
    """Run ``tasks`` on each checkpoint (every task checked first, features through the cache)
    and write their records under ``results_dir``: the record files, per checkpoint.
    ``request`` goes to `prepare_tasks` (``data``, ``params`` ...)."""
    from ijepa_eval.models import load_encoder
    from ijepa_eval.tasks.pipeline import ExtractOptions, prepare_tasks, run_job

    jobs = prepare_tasks(list(tasks), **request)
    paths: list[list[Path]] = []
    for ckpt in checkpoints:
        encoder = load_encoder(ckpt)
        paths.append([])
        for job in jobs:
            result = run_job(
                job,
                encoder,
                device=device,
                extraction=extraction or ExtractOptions(progress=False),
                results_dir=results_dir,
            )
            assert result.path is not None
            paths[-1].append(result.path)
    return paths


def compare_checkpoints(
    checkpoints: Sequence[str],
    tasks: Sequence[str],
    *,
    alpha: float = stats.ALPHA,
    results_dir: str | os.PathLike[str] = "results",
    **run: Any,
) -> list[CompareReport]:
    """Run ``tasks`` on every checkpoint (`run_checkpoints`), then compare them pairwise."""
    _check_alpha(alpha)
    if len(checkpoints) < 2:
        raise UserError("compare needs two checkpoints or more")
    paths = run_checkpoints(checkpoints, tasks, results_dir=results_dir, **run)
    sides = [{r.task: r for r in map(RunRecord.read, files)} for files in paths]
    return [
        _compare_sides(checkpoints[i], checkpoints[j], sides[i], sides[j], alpha, None)
        for i, j in itertools.combinations(range(len(checkpoints)), 2)
    ]


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise UserError(f"--alpha must be between 0 and 1, not {alpha}")
