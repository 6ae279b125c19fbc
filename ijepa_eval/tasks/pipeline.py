"""``evaluate``: one task on one checkpoint, as a straight pipeline.

    resolve the task, its probe and the data → validate every parameter  (`prepare`, no work yet)
    → load the encoder → plan the splits and extract every declared input through the cache
    → probe.run → RunRecord + per-item predictions → write             (`run_job`)

Everything that can be wrong with a request (a task, a probe parameter, a dataset spec, a
missing subset file) is found by `prepare`, before the encoder loads or anything is extracted.
Nothing here knows one probe from another: a probe declares what it reads (see
`ijepa_eval.probes.base`) and the pipeline provides it. The probe never sees the reported
split's targets until its configuration is fixed: selection uses a separate split or a held-out
part of train, carved here once, the same way for every probe (stratified by class, seeded).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hashlib
import io
import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ijepa_eval import atomic
from ijepa_eval.data import available_splits, load_dataset
from ijepa_eval.data.spec import parse_spec
from ijepa_eval.errors import UserError, collect_warnings
from ijepa_eval.health import feature_health
from ijepa_eval.preprocess import Preprocess
from ijepa_eval.probes.base import (
    EXAMPLE_SIDE,
    Part,
    Probe,
    ProbeInputs,
    ProbeResult,
    find_probe,
    joined,
)
from ijepa_eval.probes.common import note, resolve_device
from ijepa_eval.probes.split import stratified_split
from ijepa_eval.results import stats
from ijepa_eval.schema import did_you_mean
from ijepa_eval.settings import data_root, require_data_root
from ijepa_eval.tasks.record import RunRecord, environment
from ijepa_eval.tasks.registry import get_task
from ijepa_eval.tasks.spec import DataSpec, MetricSpec, TaskSpec, ViewsSpec, blocks_of, parse_views

if TYPE_CHECKING:  # timm and the model code load when a job runs, not when it is checked
    from ijepa_eval.features.store import FeatureSet
    from ijepa_eval.models.vit import Encoder


@dataclass(frozen=True)
class ExtractOptions:
    """How features are computed and where they are kept; none of it changes a number."""

    cache_dir: str | os.PathLike[str] | None = None
    batch_size: int | None = None
    workers: int | None = None
    store_dtype: str = "float16"
    progress: bool = True
    refresh: bool = False  # extract again, replacing the cache (each dataset once per command)
    refreshed: set[str] = field(default_factory=set, repr=False)  # datasets already redone


@dataclass
class SplitPlan:
    """Which split trains, which selects (a split or a held-out part of train), which reports."""

    train: str
    test: str
    select: str | None = None
    holdout: float | None = None


@dataclass(frozen=True)
class Draw:
    """One training set: the train split itself, its subset-file part, or a k-shot draw."""

    label: str  # "train", or "train_2shot_seed1"
    subset: dict[str, Any] = field(default_factory=dict)  # load_dataset's subset arguments
    shots: int | None = None
    seed: int | None = None  # a k-shot draw's seed also carves its selection part


@dataclass(frozen=True)
class Job:
    """A task made concrete and checked: nothing has been computed yet."""

    spec: TaskSpec
    probe: type[Probe]
    config: Any
    adapter: str
    root: str
    options: dict[str, Any]  # dataset adapter options
    plan: SplitPlan
    draws: tuple[Draw, ...]
    preprocess: dict[str, Any] = field(default_factory=dict)  # the task's geometry, then the user's
    seeds: tuple[int, ...] = ()  # probe seeds of a --seeds run (empty: the config's own seed)

    def with_representations(self, names: Sequence[str]) -> Job:
        """The same job reading other representations (the layer sweep's ``block<N>``)."""
        probe = replace(self.spec.probe, representations=tuple(names))
        return replace(self, spec=replace(self.spec, probe=probe))


@dataclass
class RunResult:
    record: RunRecord
    path: Path | None = None  # None when the record was not written


class RecordNotWritten(UserError):
    """The run finished but its record could not be written (a full disk, say); ``result``
    still holds its numbers, so they can be shown instead of lost."""

    def __init__(self, message: str, result: RunResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class Inputs:
    """What extraction produced for a job: the probe inputs per draw, and what it cost."""

    per_draw: list[tuple[Draw, ProbeInputs]]
    blocks: tuple[int, ...]
    entries: list[dict[str, Any]]
    datasets: dict[str, dict[str, Any]]
    test_ids_sha256: str
    extract_s: float
    health: dict[str, Any] = field(default_factory=dict)  # `ijepa_eval.health` of the test split
    test_dataset: Any = None  # the reported split, for its class names and examples' images


# --- resolve and validate -----------------------------------------------------------------------


def prepare(
    task: str | TaskSpec,
    *,
    data: str | None = None,
    params: Mapping[str, Any] | None = None,
    shots: Iterable[int] | None = None,
    subset_file: str | os.PathLike[str] | None = None,
    data_options: Mapping[str, Any] | None = None,
    skip_bad_images: bool = False,
    include_paths: Iterable[str | os.PathLike[str]] = (),
    preprocess: Mapping[str, Any] | None = None,
    views: str | ViewsSpec | None = None,
    seeds: int | None = None,
) -> Job:
    """Resolve ``task`` into a `Job`, checking every parameter: the step that fails fast.

    ``preprocess`` (``resize``, ``crop_pct``, ``interpolation``) wins over the task's own, and
    ``views`` (``none``, ``hflip``, ``random:K``) over its training views. ``seeds`` = N trains
    the probe N times, from its seed and the N − 1 after it (initialisation and batch order),
    and reports the mean, the standard deviation and every seed's value.
    """
    spec = task if isinstance(task, TaskSpec) else get_task(task, include_paths)
    if views is not None:  # the record's task spec then says which views were used
        spec = replace(spec, views=parse_views(views) if isinstance(views, str) else views)
    if shots is not None:  # the metrics follow the shots asked for
        shots = tuple(shots)
        metrics = tuple(MetricSpec(f"top1_{k}shot") for k in shots)
        spec = replace(spec, dataset=replace(spec.dataset, shots=shots), metrics=metrics)
    params = {**spec.probe.params, **(params or {})}
    probe = find_probe(spec.probe.type)
    config = probe.parse(params)
    spec = replace(spec, probe=replace(spec.probe, params=params))
    _check_metrics(spec, probe, config)
    adapter, root = _resolve_data(spec, data)
    options = {**spec.dataset.options, **(data_options or {})}
    if skip_bad_images:
        options["skip_bad_images"] = True
    plan = plan_splits(spec.dataset, available_splits(adapter, root))
    if spec.views.kind != "none" and not probe.trains_on_views:
        raise UserError(
            f"task {spec.name}: the {probe.name} probe does not train on augmented views, so "
            f"views {spec.views.label()} would be ignored; use views none"
        )
    if not probe.selects and spec.dataset.select not in ("auto", "none"):
        raise UserError(
            f"task {spec.name}: the {probe.name} probe chooses nothing, so 'select: "
            f"{spec.dataset.select}' would be ignored; use 'select: none'"
        )
    geometry = {
        **spec.preprocess.overrides(),
        **{k: v for k, v in (preprocess or {}).items() if v is not None},
    }
    try:
        Preprocess().with_overrides(**geometry)
    except (TypeError, ValueError) as exc:
        raise UserError(f"task {spec.name}: preprocessing {geometry}: {exc}") from None
    draws = _draws(spec, subset_file)
    job = Job(spec, probe, config, adapter, root, options, plan, draws, geometry)
    return replace(job, seeds=probe_seeds(job, seeds))


def probe_seeds(job: Job, count: int | None) -> tuple[int, ...]:
    """The seeds of a ``--seeds count`` run: the probe's own and the ones after it."""
    if count is None or count == 1:
        return ()
    if count < 1:
        raise UserError(f"--seeds must be >= 1, not {count}")
    first = job.probe.seed_of(job.config)
    if first is None:
        raise UserError(
            f"task {job.spec.name}: the {job.probe.name} probe is deterministic (it has no "
            "seed), so --seeds would repeat one number; drop --seeds for it"
        )
    return tuple(range(first, first + count))


def task_encoder(encoder: Encoder, geometry: Mapping[str, Any]) -> Encoder:
    """``encoder`` seeing images the task's way: the same weights (a shallow copy) with the
    task's preprocessing, which its features' cache key and the record then carry."""
    prep = encoder.preprocess.with_overrides(**geometry)
    if prep == encoder.preprocess:
        return encoder
    twin = copy.copy(encoder)
    twin.preprocess = prep
    twin.info = replace(encoder.info, preprocess=prep.to_dict())
    return twin


def prepare_tasks(
    tasks: Iterable[str | TaskSpec],
    *,
    params: Mapping[str, Any] | None = None,
    include_paths: Iterable[str | os.PathLike[str]] = (),
    **request: Any,
) -> list[Job]:
    """`prepare` for several tasks, every one checked before any work (the ``run`` command).

    A parameter ``KEY`` goes to each task whose probe declares it, and is an error if none
    does; ``TASK.KEY`` or ``PROBE.KEY`` (``linprobe.min_steps``, ``linear.min_steps``) goes to
    those tasks only. ``request`` is passed to `prepare` for every task.
    """
    include_paths = tuple(include_paths)
    specs = [t if isinstance(t, TaskSpec) else get_task(t, include_paths) for t in tasks]
    per_task = scope_params(specs, params or {})
    seeds = request.pop("seeds", None)
    jobs = [
        prepare(s, params=per_task[s.name], include_paths=include_paths, **request) for s in specs
    ]
    several = len(jobs) > 1  # then --seeds goes to the tasks whose probe has a seed
    takes = [not several or job.probe.seed_of(job.config) is not None for job in jobs]
    if seeds is not None and not any(takes):
        raise UserError("--seeds: none of these tasks' probes has a seed (all are deterministic)")
    return [
        replace(job, seeds=probe_seeds(job, seeds)) if ok else job
        for job, ok in zip(jobs, takes, strict=True)
    ]


def scope_params(specs: Sequence[TaskSpec], params: Mapping[str, Any]) -> dict[str, dict]:
    """Which task gets which probe parameter (see `prepare_tasks`)."""
    probes = {s.name: find_probe(s.probe.type) for s in specs}
    scoped: dict[str, dict[str, Any]] = {s.name: {} for s in specs}
    for key, value in params.items():
        targets = [s.name for s in specs if key in (s.name, s.probe.type)]
        if targets and isinstance(value, Mapping):
            for name in targets:
                scoped[name].update(value)
            continue
        takers = [s.name for s in specs if key in probes[s.name].parameters()]
        if not takers:
            known = sorted({p for probe in probes.values() for p in probe.parameters()})
            close = did_you_mean(key, known + [s.name for s in specs])
            hint = f"did you mean {' or '.join(map(repr, close))}?" if close else ""
            which = ", ".join(f"{s.name} ({s.probe.type})" for s in specs)
            raise UserError(
                f"unknown probe parameter '{key}' for {which}; "
                + (hint or f"they take: {', '.join(known)}")
            )
        for name in takers:
            scoped[name][key] = value
    return scoped


def _check_metrics(spec: TaskSpec, probe: type[Probe], config: Any) -> None:
    """The task's metrics are ones its probe reports with these parameters (when it can say)."""
    names = probe.metric_names(config)
    if names is None:
        return
    if spec.dataset.shots:
        names = tuple(f"{name}_{k}shot" for name in names for k in spec.dataset.shots)
    missing = [m.name for m in spec.metrics if m.name not in names]
    if missing:
        raise UserError(
            f"task {spec.name} declares metrics {missing} that its {spec.probe.type} probe does "
            f"not produce with these parameters (it gives {', '.join(names)})"
        )


def plan_splits(data: DataSpec, available: list[str]) -> SplitPlan:
    """Turn the spec's selection rule into concrete splits (see `DataSpec`)."""
    if data.select == "auto":
        if "test" in available:
            return SplitPlan(
                data.train,
                data.test or "test",
                select="val" if "val" in available else None,
                holdout=None if "val" in available else data.holdout,
            )
        return SplitPlan(data.train, data.test or "val", holdout=data.holdout)
    test = data.test or ("test" if "test" in available else "val")
    if data.select == "none":
        return SplitPlan(data.train, test)
    if data.select == "holdout":
        return SplitPlan(data.train, test, holdout=data.holdout)
    return SplitPlan(data.train, test, select=data.select)


def _resolve_data(spec: TaskSpec, data: str | None) -> tuple[str, str]:
    """``(adapter, root)`` from ``--data`` or the configured location, by the one parser."""
    if data is None:
        key = spec.dataset.root_key
        if key is None:
            raise UserError(f"task {spec.name} needs --data (it names no default location)")
        data = require_data_root(key, f"task {spec.name}'s dataset")
    return parse_spec(data, adapter=spec.dataset.adapter, who=f"task {spec.name}")


def _draws(spec: TaskSpec, subset_file: str | os.PathLike[str] | None) -> tuple[Draw, ...]:
    if spec.dataset.shots:
        if not spec.dataset.seeds:
            raise UserError(f"task {spec.name} asks for shots but names no seeds to draw them")
        return tuple(
            Draw(f"train_{k}shot_seed{s}", {"shots": k, "seed": s}, shots=k, seed=s)
            for k in spec.dataset.shots
            for s in spec.dataset.seeds
        )
    key = spec.dataset.subset_file_key
    if key is None and subset_file is None:
        return (Draw("train"),)
    chosen = subset_file or data_root(key)
    if chosen is None:
        require_data_root(key, f"task {spec.name}'s subset file (or pass --subset-file)")
    if not Path(chosen).expanduser().is_file():
        raise UserError(f"task {spec.name}: subset file {chosen} does not exist")
    return (Draw("train", {"subset_file": chosen}),)


# --- run ----------------------------------------------------------------------------------------


def evaluate(
    task: str | TaskSpec,
    *,
    ckpt: str | os.PathLike[str] | None = None,
    encoder: Encoder | None = None,
    which: str | None = None,
    data: str | None = None,
    params: Mapping[str, Any] | None = None,
    shots: Iterable[int] | None = None,
    subset_file: str | os.PathLike[str] | None = None,
    data_options: Mapping[str, Any] | None = None,
    skip_bad_images: bool = False,
    include_paths: Iterable[str | os.PathLike[str]] = (),
    views: str | ViewsSpec | None = None,
    seeds: int | None = None,
    device: str | None = None,
    extraction: ExtractOptions = ExtractOptions(),
    results_dir: str | os.PathLike[str] | None = "results",
) -> RunResult:
    """Run ``task`` on a checkpoint (``ckpt``) or a loaded ``encoder``; write and return its record.

    ``params`` override the task's probe parameters, ``data_options`` its dataset adapter's,
    ``views`` its training views (``none``, ``hflip``, ``random:K``); ``seeds`` = N trains the
    probe N times and averages (see `prepare`); ``results_dir=None`` returns the record without
    writing anything.
    """
    job = prepare(
        task,
        data=data,
        params=params,
        shots=shots,
        subset_file=subset_file,
        data_options=data_options,
        skip_bad_images=skip_bad_images,
        include_paths=include_paths,
        views=views,
        seeds=seeds,
    )
    said: list[str] = []
    if encoder is None:
        if ckpt is None:
            raise UserError("evaluate needs ckpt= or encoder=")
        from ijepa_eval.models import load_encoder

        with collect_warnings() as said:
            encoder = load_encoder(ckpt, which)
    return run_job(
        job, encoder, device=device, extraction=extraction, results_dir=results_dir, notes=said
    )


def run_job(
    job: Job,
    encoder: Encoder,
    *,
    device: str | None = None,
    extraction: ExtractOptions = ExtractOptions(),
    results_dir: str | os.PathLike[str] | None = "results",
    notes: Sequence[str] = (),
    sweep: dict[str, Any] | None = None,
) -> RunResult:
    """Extract the job's inputs through the cache, run its probe, record and write the run."""
    started = time.perf_counter()
    encoder = task_encoder(encoder, job.preprocess)
    with collect_warnings() as said:
        blocks = needed_blocks(job, encoder)
        if job.probe.inputs == "images":  # the probe reads images itself (fine-tuning)
            inputs = image_inputs(job, encoder)
        else:
            inputs = extract_inputs(job, encoder, extraction, blocks)
        probe_started = time.perf_counter()
        result = run_probe(job, inputs, device)
        probe_s = time.perf_counter() - probe_started
        result.examples = with_images(result.examples, inputs.test_dataset)
    timings = {
        "extract_s": round(inputs.extract_s, 3),
        "probe_s": round(probe_s, 3),
        "total_s": round(time.perf_counter() - started, 3),
    }
    record = make_record(job, encoder, inputs, result, [*notes, *said], timings, device)
    record.sweep = sweep
    ci_started = time.perf_counter()
    record.metrics_ci = metric_intervals(record.metrics, result.predictions)
    record.timings["ci_s"] = round(time.perf_counter() - ci_started, 3)
    if record.metrics_ci:
        record.seeds["bootstrap"] = {"seed": stats.SEED, "resamples": stats.RESAMPLES}
    if results_dir is None or not _is_main_process():  # under torchrun, rank 0 writes
        return RunResult(record)
    try:
        return RunResult(record, write_run(record, result, results_dir))
    except OSError as exc:
        raise RecordNotWritten(
            f"the run finished but nothing could be written under {results_dir} "
            f"({exc.strerror or exc}); free some space (or fix --results) and rerun: the "
            "features are cached",
            RunResult(record),
        ) from None


def metric_intervals(
    metrics: Mapping[str, float], predictions: Mapping[str, np.ndarray]
) -> dict[str, list[float]]:
    """The 95% bootstrap interval of each metric the per-item predictions can give (see
    `ijepa_eval.results.stats`: seeded, 1,000 resamples of the reported split's items; k-shot:
    the interval of the mean over draws, draws held fixed)."""
    if not predictions:
        return {}
    return stats.intervals(predictions, list(metrics))


def with_images(examples: Mapping[str, np.ndarray], ds: Any) -> dict[str, np.ndarray]:
    """A probe's examples with each one's input image (``<n>/image``: RGB uint8, at most
    `EXAMPLE_SIDE` pixels on its long side), read from the reported split ``ds``."""
    out = dict(examples)
    for n, row in enumerate(examples.get("index", ())):
        try:
            image = ds.load_image(ds.items[int(row)]).convert("RGB")
        except (OSError, UserError) as exc:  # examples are never scored: the run goes on
            note(f"example {n} is kept without its image, which could not be read again: {exc}")
            continue
        image.thumbnail((EXAMPLE_SIDE, EXAMPLE_SIDE))
        out[f"{n}/image"] = np.asarray(image)
    return out


def needed_blocks(job: Job, encoder: Encoder) -> tuple[int, ...]:
    """The blocks the job's representations read; the probe checks it can use them."""
    depth = len(encoder.blocks)
    names = job.spec.probe.representations
    blocks = tuple(sorted({i for name in names for i in blocks_of(name, depth)}))
    job.probe.check(names, blocks)
    if "concatPOOL4" in names and depth < 4:
        note(f"concatPOOL4 uses the last {depth} blocks: the encoder has only {depth}")
    return blocks


def datasets_of(job: Job) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(label, split, subset)`` of every dataset the job reads, in the order it reads them."""
    for draw in job.draws:
        yield draw.label, job.plan.train, draw.subset
    if job.probe.selects and job.plan.select is not None:
        yield "select", job.plan.select, {}
    yield "test", job.plan.test, {}


def extract_features(
    job: Job, encoder: Encoder, extraction: ExtractOptions, blocks: tuple[int, ...]
) -> Iterator[tuple[str, Any, Any, dict[str | None, Any], float]]:
    """``(label, dataset, features, views, seconds)`` for each dataset the job reads, through
    the cache. ``views`` maps each training view (`ViewsSpec.names`) of a split the probe
    trains on to its features: one more cache entry per view (the view is in its key)."""
    from ijepa_eval.features import extract

    for label, split, subset in datasets_of(job):
        ds = load_dataset(job.adapter, job.root, split, **subset, **job.options)
        started = time.perf_counter()
        trains = label != "test" and job.spec.views.kind != "none"
        names = job.spec.views.names() if trains else ()
        got = {}
        for view in dict.fromkeys((None, *names)):
            which = json.dumps(
                [job.adapter, job.root, split, subset, job.options, view], default=str
            )
            refresh = extraction.refresh and which not in extraction.refreshed
            if refresh:
                extraction.refreshed.add(which)
            got[view] = extract(
                encoder if view is None else task_encoder(encoder, {"view": view}),
                ds,
                layers=list(blocks),
                tokens="all" if job.probe.inputs == "tokens" else "none",
                cache_dir=extraction.cache_dir,
                batch_size=extraction.batch_size,
                workers=extraction.workers,
                progress=extraction.progress,
                store_dtype=extraction.store_dtype,
                refresh=refresh,
            )
        views = {view: got[view] for view in names}
        yield label, ds, got[None], views, time.perf_counter() - started


def extract_inputs(
    job: Job, encoder: Encoder, extraction: ExtractOptions, blocks: tuple[int, ...]
) -> Inputs:
    """Every declared input of every split, through the cache; the selection part carved."""
    spent = 0.0
    entries: list[dict[str, Any]] = []
    info: dict[str, dict[str, Any]] = {}
    parts: dict[str, Part] = {}
    test_ids = ""
    test_ds = None
    num_classes = None
    found_health: dict[str, Any] = {}
    names = job.spec.probe.representations
    for label, ds, features, views, seconds in extract_features(job, encoder, extraction, blocks):
        spent += seconds
        entries.append({"split": label, **_entry(features)})
        for view, got in views.items():
            if view is not None:
                entries.append({"split": label, "view": view, **_entry(got)})
        info[label] = _describe(ds)
        trained: dict[str, torch.Tensor] | None = None
        if job.probe.inputs == "tokens":
            x: Any = features.tokens()
        elif views:  # (N, V, D) per representation
            per_view = [representations(v.pooled(), blocks, names, encoder) for v in views.values()]
            trained = {name: torch.stack([v[name] for v in per_view], dim=1) for name in names}
            if None in views:  # the plain image is a view (hflip): share its memory
                x = {name: t[:, list(views).index(None)] for name, t in trained.items()}
            else:
                x = representations(features.pooled(), blocks, names, encoder)
        else:
            x = representations(features.pooled(), blocks, names, encoder)
        parts[label] = Part(x, _targets(job, ds, encoder, native=label == "test"), trained)
        if label == "test":
            test_ids = hashlib.sha256("\n".join(ds.ids()).encode()).hexdigest()
            test_ds = ds
            found_health = feature_health(features, job.plan.test)
        if ds.num_classes is not None:
            num_classes = ds.num_classes
    per_draw = []
    for draw in job.draws:
        train = parts[draw.label]
        fit, select = _fit_and_select(job, draw, train, parts.get("select"))
        if select is not None and "select" in parts:
            train = joined(fit, select)
        per_draw.append(
            (
                draw,
                ProbeInputs(
                    fit=fit,
                    select=select,
                    test=parts["test"],
                    train=train,
                    num_classes=num_classes,
                    representations=job.spec.probe.representations,
                    blocks=blocks,
                    num_heads=encoder.arch.num_heads,
                    grid=encoder.grid,
                ),
            )
        )
    return Inputs(per_draw, blocks, entries, info, test_ids, spent, found_health, test_ds)


def image_inputs(job: Job, encoder: Encoder) -> Inputs:
    """The inputs of a probe that reads images: every split as its (untransformed) dataset,
    nothing extracted, and the encoder."""
    parts: dict[str, Part] = {}
    info: dict[str, dict[str, Any]] = {}
    test_ids, num_classes = "", None
    for label, split, subset in datasets_of(job):
        ds = load_dataset(job.adapter, job.root, split, **subset, **job.options)
        info[label] = _describe(ds)
        parts[label] = Part(ds, _targets(job, ds, encoder, native=label == "test"))
        if label == "test":
            test_ids = hashlib.sha256("\n".join(ds.ids()).encode()).hexdigest()
        num_classes = ds.num_classes if ds.num_classes is not None else num_classes
    per_draw = [
        (
            draw,
            ProbeInputs(
                fit=parts[draw.label],
                select=None,
                test=parts["test"],
                train=parts[draw.label],
                num_classes=num_classes,
                representations=job.spec.probe.representations,
                blocks=(),
                num_heads=encoder.arch.num_heads,
                grid=encoder.grid,
                encoder=encoder,
            ),
        )
        for draw in job.draws
    ]
    return Inputs(per_draw, (), [], info, test_ids, 0.0, test_dataset=parts["test"].x)


def _is_main_process() -> bool:
    from ijepa_eval.dist import world

    return world().is_main


def representations(
    pooled: torch.Tensor, blocks: tuple[int, ...], names: Iterable[str], encoder: Encoder
) -> dict[str, torch.Tensor]:
    """Each named representation from per-block pooled features ``(N, L, D)`` (see `blocks_of`)."""
    x = pooled.float()
    depth = len(encoder.blocks)
    return {
        name: torch.cat([x[:, blocks.index(i)] for i in blocks_of(name, depth)], dim=1)
        for name in names
    }


def _targets(job: Job, ds: Any, encoder: Encoder, *, native: bool = False) -> Any:
    """Class labels; or depth maps aligned with the encoder's view of each image for training
    and selection, and at their own resolution for the reported split (``native``), where the
    field scores them."""
    if job.probe.targets == "classes":
        if ds.targets is None:
            raise UserError(f"task {job.spec.name} needs class labels; {job.adapter} has none")
        return torch.as_tensor(np.asarray(ds.targets, dtype=np.int64))
    if native:
        if encoder.preprocess.resize != "resize":
            raise UserError(
                f"task {job.spec.name} scores depth at the maps' own resolution, so the encoder "
                "must see the whole frame: preprocess 'resize: resize' (not a centre crop)"
            )
        return NativeMaps(ds)
    to_target = encoder.preprocess.depth_transform()
    size = encoder.preprocess.img_size
    maps = torch.empty((len(ds), size, size))  # filled in place: no second copy
    for i, item in enumerate(ds.items):
        maps[i] = to_target(ds.load_target(item))
    return maps


class NativeMaps:
    """A split's depth maps at their own resolution, read a chunk of rows at a time: NYU's 654
    test maps at 480×640 would hold 0.8 GB in memory."""

    def __init__(self, ds: Any) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, rows: np.ndarray) -> list[torch.Tensor]:
        load = lambda i: self.ds.load_target(self.ds.items[int(i)])  # noqa: E731
        return [torch.as_tensor(np.asarray(load(i), dtype=np.float32)) for i in rows]


def _fit_and_select(
    job: Job, draw: Draw, train: Part, select: Part | None
) -> tuple[Part, Part | None]:
    """The part that fits and the part that selects: a separate split, or a held-out part of
    train — stratified by class for labels, a seeded random part for dense targets. The seed is
    the task's, or a k-shot draw's own (each draw is an independent small training set)."""
    if not job.probe.selects:
        return train, None
    if select is not None:
        return train, select
    fraction = job.plan.holdout or job.spec.dataset.holdout
    seed = job.spec.dataset.seed if draw.seed is None else draw.seed
    if job.probe.targets == "classes":
        if int(torch.bincount(train.y).max()) < 2:
            return train, None  # every class has one item: nothing can be held out
        fit_rows, select_rows = stratified_split(train.y, fraction, seed)
    else:
        order = np.random.default_rng(seed).permutation(len(train))
        cut = max(1, round(len(order) * fraction))
        select_rows, fit_rows = np.sort(order[:cut]), np.sort(order[cut:])
    return train.rows(fit_rows), train.rows(select_rows)


def run_probe(job: Job, inputs: Inputs, device: str | None) -> ProbeResult:
    """``probe.run`` on each training draw, once per probe seed of a ``--seeds`` run; several
    runs (k-shot draws, seeds) are averaged per shot count."""
    probe = job.probe()
    seeds: tuple[int | None, ...] = job.seeds or (None,)
    runs = [
        (draw, seed, probe.run(x, _seeded(job, seed), device))
        for draw, x in inputs.per_draw
        for seed in seeds
    ]
    if len(runs) == 1 and runs[0][0].shots is None:
        return runs[0][2]
    metrics, stds, per_seed = {}, {}, {}
    for k in dict.fromkeys(d.shots for d, _, _ in runs):
        group = [(s, r) for d, s, r in runs if d.shots == k]
        for name in group[0][1].metrics:
            key = name if k is None else f"{name}_{k}shot"
            values = [r.metrics[name] for _, r in group]
            metrics[key], stds[key] = float(np.mean(values)), float(np.std(values))
            if job.seeds:  # each seed's value (its mean over the draws, for k-shot)
                per_seed[key] = [
                    float(np.mean([r.metrics[name] for s, r in group if s == seed]))
                    for seed in job.seeds
                ]
    named = {run_label(d, s): r for d, s, r in runs}
    first = runs[0][2]
    return ProbeResult(
        metrics=metrics,
        metrics_std=stds,
        metrics_per_seed=per_seed,
        chosen={label: {**r.metrics, **(r.chosen or {})} for label, r in named.items()},
        grid=[{**_run_keys(d, s), **row} for d, s, r in runs for row in r.grid],
        predictions={  # the test items are the same for every run: one target array
            **{
                f"{label}/{k}": v
                for label, r in named.items()
                for k, v in r.predictions.items()
                if k != "target"
            },
            **{k: v for k, v in first.predictions.items() if k == "target"},
        },
        artifacts=first.artifacts if len(inputs.per_draw) == 1 else {},  # the first seed's head
        splits={
            **{d.label: len(x.fit) + len(x.select or ()) for d, x in inputs.per_draw},
            "test": len(inputs.per_draw[0][1].test),
        },
        seeds={
            **({} if job.seeds else first.seeds),  # a probe's own seed, superseded by --seeds
            **({"draws": list(job.spec.dataset.seeds)} if runs[0][0].shots is not None else {}),
            **({"probe": list(job.seeds)} if job.seeds else {}),
        },
        record=_per_seed_sections(job, named),
        examples=first.examples,  # the first run's, as its head
    )


def _seeded(job: Job, seed: int | None) -> Any:
    return job.config if seed is None else job.probe.with_seed(job.config, seed)


def _run_keys(draw: Draw, seed: int | None) -> dict[str, Any]:
    """What tells one run's rows apart: its k-shot draw and its probe seed."""
    keys: dict[str, Any] = {}
    if draw.shots is not None:
        keys["draw"] = draw.label.removeprefix("train_")
    if seed is not None:
        keys["probe_seed"] = seed
    return keys


def run_label(draw: Draw, seed: int | None) -> str:
    """A run's name and its predictions' prefix: ``2shot_seed1`` (a k-shot draw),
    ``probe_seed2`` (a seed of ``--seeds``), or both joined by ``/``."""
    keys = _run_keys(draw, seed)
    return "/".join(f"probe_seed{v}" if k == "probe_seed" else v for k, v in keys.items())


def _per_seed_sections(job: Job, named: Mapping[str, ProbeResult]) -> dict:
    """Record sections a probe adds (fine-tuning's ``finetune``): as they are with one seed,
    one per run (by its label) with several."""
    if not job.seeds:
        return {k: v for r in named.values() for k, v in r.record.items()}
    sections: dict[str, dict[str, Any]] = {}
    for label, r in named.items():
        for k, v in r.record.items():
            sections.setdefault(k, {})[label] = v
    return sections


def make_record(
    job: Job,
    encoder: Encoder,
    inputs: Inputs,
    result: ProbeResult,
    notes: Sequence[str],
    timings: dict[str, float],
    device: str | None,
) -> RunRecord:
    spec = job.spec
    missing = [m.name for m in spec.metrics if m.name not in result.metrics]
    if missing:
        raise UserError(
            f"task {spec.name} declares metrics {missing} that its probe does not produce "
            f"(it gives {', '.join(result.metrics)})"
        )
    model = (encoder.info.sha256 if encoder.info else "model")[:8]
    now = dt.datetime.now(dt.timezone.utc)
    return RunRecord(
        task=spec.name,
        task_version=spec.version,
        run_id=f"{now:%Y%m%dT%H%M%SZ}-{model}-{uuid.uuid4().hex[:6]}",
        metrics={m.name: result.metrics[m.name] for m in spec.metrics},
        metrics_std={
            m.name: result.metrics_std[m.name] for m in spec.metrics if m.name in result.metrics_std
        },
        metrics_per_seed={
            m.name: result.metrics_per_seed[m.name]
            for m in spec.metrics
            if m.name in result.metrics_per_seed
        },
        higher_is_better={m.name: m.higher_is_better for m in spec.metrics},
        baselines=result.baselines,
        chosen=result.chosen,
        grid=result.grid,
        seeds={"selection_split": spec.dataset.seed, **result.seeds},
        splits=result.splits or {k: d["items"] for k, d in inputs.datasets.items()},
        timings=timings,
        model_info=encoder.info.to_dict() if encoder.info else {},
        data={
            "adapter": job.adapter,
            "root": str(Path(job.root).expanduser().resolve()),
            "plan": dataclasses.asdict(job.plan),
            "datasets": inputs.datasets,
        },
        features={
            "layers": list(inputs.blocks),
            "representations": list(spec.probe.representations),
            "entries": inputs.entries,
        },
        task_spec=spec.to_dict(),
        probe_config=dataclasses.asdict(job.config),
        extra=dict(result.record),
        notes=list(notes),
        environment=environment(str(resolve_device(device))),
        created=now.isoformat(timespec="seconds"),
        predictions=_predictions_entry(job, inputs, result),
        examples=_examples_entry(job, result),
        health=inputs.health,
    )


def _predictions_entry(job: Job, inputs: Inputs, result: ProbeResult) -> dict[str, Any] | None:
    if not result.predictions:
        return None
    classes = getattr(inputs.test_dataset, "classes", None)
    return {
        "split": job.plan.test,
        "items": len(inputs.per_draw[0][1].test),
        "item_ids_sha256": inputs.test_ids_sha256,
        "arrays": sorted(result.predictions),
        **({"classes": list(classes)} if classes else {}),  # names of the target indices
    }


def _examples_entry(job: Job, result: ProbeResult) -> dict[str, Any] | None:
    if not result.examples:
        return None
    return {
        "split": job.plan.test,
        "index": [int(i) for i in result.examples["index"]],
        "arrays": sorted(result.examples),
    }


def write_run(record: RunRecord, result: ProbeResult, results_dir: str | os.PathLike[str]) -> Path:
    """The head weights and predictions beside the record, then the record itself (last, so a
    record that exists always has its files)."""
    from safetensors.torch import save_file

    folder = Path(results_dir) / "runs" / record.task
    written: list[Path] = []
    try:
        if result.artifacts:
            head = folder / f"{record.run_id}.head.safetensors"
            with atomic.atomic_path(head) as tmp:
                tensors = {k: v.detach().cpu().contiguous() for k, v in result.artifacts.items()}
                save_file(tensors, str(tmp))
            written.append(head)
            record.head_weights = head.name
        for entry, arrays, suffix in (
            (record.predictions, result.predictions, ".preds.npz"),
            (record.examples, result.examples, ".examples.npz"),
        ):
            if entry is not None:
                dest = folder / f"{record.run_id}{suffix}"
                buffer = io.BytesIO()
                np.savez_compressed(buffer, **arrays)
                atomic.write_bytes(dest, buffer.getvalue())
                written.append(dest)
                entry["file"] = dest.name
        return record.write(results_dir)
    except BaseException:
        for path in written:  # files of a record that does not exist are litter
            path.unlink(missing_ok=True)
        raise


def _entry(features: FeatureSet) -> dict[str, Any]:
    """A record's note of one cache entry it read: its key, whether it was a hit, and the
    numerics its features were computed in, as the cache key names them (``float32``;
    ``bfloat16``: matrix products under autocast; ``bfloat16-weights``: the whole model cast).
    The default differs between CPU and GPU, so a record says which."""
    fields = features.manifest.get("key_fields") or {}
    return {
        "key": features.key,
        "cache_hit": features.hit,
        "compute_dtype": fields.get("compute_dtype"),
    }


def _describe(ds: Any) -> dict[str, Any]:
    """The dataset part of the record: what was read, and fingerprints to tell it again."""
    targets = getattr(ds, "targets", None)
    labels = None
    if targets is not None:
        labels = hashlib.sha256(np.asarray(targets, dtype=np.int64).tobytes()).hexdigest()
    return {
        "split": ds.split,
        "items": len(ds),
        # the images' fingerprint is the one extraction just computed (memoised): no second
        # pass over the files; the labels are hashed on their own
        "fingerprint": ds.fingerprint(images_only=True),
        "labels_sha256": labels,
        "selection": ds.selection,
        "skipped": len(ds.skipped),
    }


__all__ = [
    "ExtractOptions",
    "Job",
    "RecordNotWritten",
    "RunResult",
    "SplitPlan",
    "evaluate",
    "plan_splits",
    "prepare",
    "prepare_tasks",
    "run_job",
]
