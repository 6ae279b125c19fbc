"""Suites: a named list of tasks run as one command, e.g. the I-JEPA paper's whole evaluation.

A suite is a YAML file (``name``, ``description``, ``tasks``); the bundled ones live in
``tasks/suites/``, a user's in ``<include path>/suites/`` or at any path. ``run --suite``:

1. checks every task before any work, and lists the tasks whose dataset is not configured
   or not on disk (a suite reads each task's configured location, never ``--data``); they are
   left out, or, with ``strict``, nothing runs;
2. loads the checkpoint once and runs the rest, features shared through the cache;
3. skips a task that already has a finished record in the results folder for the same
   checkpoint (sha256 and network), task version and settings (``skip_existing``, on by
   default for suites), so a rerun after a crash or with a dataset added does only what is
   left. A record is written last and atomically, so one that exists is finished.

A suite may also say how its results are laid out (``tables``: a title and the tasks of each
table, optionally only the models pretrained, or not, on given data), which the leaderboard's
``--layout paper`` follows. Reading a suite imports no torch, so the leaderboard stays quick.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ijepa_eval.errors import UserError
from ijepa_eval.paths import find_preset
from ijepa_eval.schema import build, unknown_key
from ijepa_eval.settings import data_root, env_name
from ijepa_eval.tasks.registry import get_task
from ijepa_eval.tasks.spec import TaskSpec
from ijepa_eval.yaml_file import read_yaml

if TYPE_CHECKING:
    from ijepa_eval.tasks.pipeline import Job

FOLDER = "tasks/suites"


@dataclass(frozen=True)
class SuiteTable:
    """One table of a suite's results: its title, its tasks (one column each, in this order),
    and which models' rows it shows: only those pretrained on ``pretrained_on``, or all but
    those pretrained on ``not_pretrained_on`` (the pretraining data the checkpoint registry
    names; a model it does not know counts as pretrained on neither)."""

    title: str
    tasks: tuple[str, ...]
    pretrained_on: tuple[str, ...] = ()
    not_pretrained_on: tuple[str, ...] = ()

    def shows(self, pretrain_data: str | None) -> bool:
        """Whether a model pretrained on ``pretrain_data`` (None: unknown) has a row here."""
        if self.pretrained_on and pretrain_data not in self.pretrained_on:
            return False
        return pretrain_data is None or pretrain_data not in self.not_pretrained_on


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    tasks: tuple[str, ...]
    description: str = ""
    tables: tuple[SuiteTable, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(self.tasks))
        if not self.tasks:
            raise UserError(f"suite {self.name} lists no tasks")
        placed = {task for table in self.tables for task in table.tasks}
        unplaced = [task for task in self.tasks if self.tables and task not in placed]
        if unplaced:
            raise UserError(f"suite {self.name}: task {unplaced[0]} is in none of its tables")


@dataclass
class SuitePlan:
    """What a suite will do: the jobs to run, and the tasks left out with the reason."""

    suite: SuiteSpec
    jobs: list[Job]
    missing: dict[str, str] = field(default_factory=dict)
    own_folders: set[str] = field(default_factory=set)  # fine-tuning folders the suite names


def find_suite(source: str, include_paths: Iterable[str | os.PathLike[str]] = ()) -> Path:
    """A suite file, a suite in an include path's ``suites/``, or a bundled one."""
    for folder in include_paths:
        candidate = Path(folder).expanduser() / "suites" / f"{source}.yaml"
        if candidate.is_file():
            return candidate
    return find_preset(source, FOLDER, "suite or suite file")


def load_suite(source: str, include_paths: Iterable[str | os.PathLike[str]] = ()) -> SuiteSpec:
    path = find_suite(source, include_paths)
    raw = read_yaml(path, "suite")
    return build(SuiteSpec, raw, unknown=unknown_key(f"suite key in {path}"), error=UserError)


def missing_data(spec: TaskSpec) -> str | None:
    """Why the task's configured dataset (and subset file) cannot be used, or None."""
    from ijepa_eval.data.spec import parse_spec

    key = spec.dataset.root_key
    if key is None:
        return "it names no configured dataset location; run it with --tasks and --data"
    location = data_root(key)
    if location is None:
        return f"no location configured ({env_name(key)})"
    try:
        _, root = parse_spec(location, adapter=spec.dataset.adapter, who=f"task {spec.name}")
    except UserError as exc:
        return str(exc)
    if not Path(root).expanduser().exists():
        return f"{env_name(key)} = {location} does not exist"
    file_key = spec.dataset.subset_file_key
    if file_key is not None:
        listed = data_root(file_key)
        if listed is None or not Path(listed).expanduser().is_file():
            return f"no subset file ({env_name(file_key)}{' = ' + listed if listed else ''})"
    return None


def plan_suite(
    suite: SuiteSpec,
    *,
    params: Mapping[str, Any] | None = None,
    include_paths: Sequence[str | os.PathLike[str]] = (),
    results_dir: str | os.PathLike[str] = "results",
    **request: Any,
) -> SuitePlan:
    """Every task checked (its parameters as `prepare_tasks` checks them), those without
    their data set aside. A fine-tuning task gets its checkpoint folder under the results
    folder unless ``params`` name one (``<results>/finetune/<task>``, then the model's sha)."""
    from ijepa_eval.tasks.pipeline import prepare_tasks

    specs = [get_task(name, include_paths) for name in suite.tasks]
    missing = {s.name: why for s in specs if (why := missing_data(s)) is not None}
    present = [s for s in specs if s.name not in missing]
    scoped = {**(params or {})}
    own = set()
    for spec in present:
        if spec.probe.type == "finetune" and "out" not in scoped.get(spec.name, {}):
            out = str(Path(results_dir) / "finetune" / spec.name)
            scoped[spec.name] = {**scoped.get(spec.name, {}), "out": out}
            own.add(spec.name)
    jobs = (
        prepare_tasks(present, params=scoped, include_paths=include_paths, **request)
        if present
        else []
    )
    return SuitePlan(suite, jobs, missing, own)


def for_model(job: Job, sha256: str) -> Job:
    """The fine-tuning job with a folder of this checkpoint's own (runs never share one)."""
    return replace(job, config=replace(job.config, out=f"{job.config.out}-{sha256[:8]}"))


def finished_record(job: Job, encoder: Any, results_dir: str | os.PathLike[str]) -> Path | None:
    """A record under ``results_dir`` of this job already run: same checkpoint (sha256,
    network), task version, task settings, probe parameters, probe seeds, data location and
    preprocessing. Unreadable records are not finished runs."""
    from ijepa_eval.tasks.pipeline import task_encoder
    from ijepa_eval.tasks.record import RunRecord

    info = task_encoder(encoder, job.preprocess).info
    want = {
        "sha256": info.sha256,
        "network": info.network,
        "task_version": job.spec.version,
        "task_spec": _canonical(job.spec.to_dict()),
        "probe_config": _canonical(dataclasses.asdict(job.config)),
        "probe_seeds": list(job.seeds) or None,
        "adapter": job.adapter,
        "root": str(Path(job.root).expanduser().resolve()),
        "preprocess": _canonical(info.preprocess),
    }
    for path in sorted((Path(results_dir) / "runs" / job.spec.name).glob("*.json")):
        try:
            record = RunRecord.read(path)
        except ValueError:
            continue
        seeds = record.seeds.get("probe")
        have = {
            "sha256": record.model_info.get("sha256"),
            "network": record.model_info.get("network"),
            "task_version": record.task_version,
            "task_spec": _canonical(record.task_spec),
            "probe_config": _canonical(record.probe_config),
            "probe_seeds": seeds if isinstance(seeds, list) else None,
            "adapter": record.data.get("adapter"),
            "root": record.data.get("root"),
            "preprocess": _canonical(record.model_info.get("preprocess")),
        }
        if have == want:
            return path
    return None


def _canonical(value: Any) -> str:
    """One spelling of a settings value, as its JSON (tuples and lists alike)."""
    return json.dumps(value, sort_keys=True, default=str)


@dataclass
class SuiteResult:
    """What ``run_suite`` did: the runs made, the tasks skipped (their finished record), and
    the tasks left out (why)."""

    suite: SuiteSpec
    runs: list[Any] = field(default_factory=list)  # RunResult
    skipped: dict[str, Path] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)


def check_plan(plan: SuitePlan, *, strict: bool) -> None:
    """Refuse before any work: under ``strict`` when a dataset is missing; always when none is
    there at all."""
    if plan.missing and (strict or not plan.jobs):
        listed = "; ".join(f"{name}: {why}" for name, why in plan.missing.items())
        reason = "--strict" if plan.jobs else "no task of it has its data"
        raise UserError(f"suite {plan.suite.name} not run ({reason}); missing: {listed}")


def run_suite(
    plan: SuitePlan,
    encoder: Any,
    *,
    results_dir: str | os.PathLike[str] = "results",
    skip_existing: bool = True,
    on_start: Callable[[Job], None] | None = None,
    on_run: Callable[[str, Any], None] | None = None,
    **run_options: Any,
) -> SuiteResult:
    """Run a checked plan (`plan_suite`) on a loaded encoder. ``on_start(job)`` is called
    before each task, ``on_run(name, outcome)`` after it (its `RunResult`, or the finished
    record's path when skipped); ``run_options`` go to `run_job` (device, extraction)."""
    from ijepa_eval.tasks.pipeline import run_job

    result = SuiteResult(plan.suite, missing=dict(plan.missing))
    for job in plan.jobs:
        if job.spec.name in plan.own_folders:
            job = for_model(job, encoder.info.sha256)
        if on_start:
            on_start(job)
        done = finished_record(job, encoder, results_dir) if skip_existing else None
        if done is not None:
            result.skipped[job.spec.name] = done
            if on_run:
                on_run(job.spec.name, done)
            continue
        run = run_job(job, encoder, results_dir=results_dir, **run_options)
        result.runs.append(run)
        if on_run:
            on_run(job.spec.name, run)
    return result
