"""The layer sweep: one task's probe on every block of an encoder, and a plot of the metric.

``sweep`` extracts all requested blocks in one forward per split first (one cache entry per
split), then runs the task's pipeline once per block with the representation ``block<N>``:
every run is a cache hit on that entry, writes its own run record (with ``"sweep": {"block": N,
"of": depth}``) and the figure shows the task's first metric against block depth. The probe is
the task's own, if it reads one block at a time (``Probe.sweepable``).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ijepa_eval.errors import UserError
from ijepa_eval.features.spec import parse_layers
from ijepa_eval.models import load_encoder
from ijepa_eval.models.vit import Encoder
from ijepa_eval.plots import sweep_plot
from ijepa_eval.probes.base import Probe, find_probe, probe_registry
from ijepa_eval.tasks.pipeline import (
    ExtractOptions,
    Job,
    RunResult,
    extract_features,
    prepare,
    run_job,
    task_encoder,
)
from ijepa_eval.tasks.registry import get_task
from ijepa_eval.tasks.spec import TaskSpec


def _check_sweepable(spec: TaskSpec, probe: type[Probe]) -> None:
    if not probe.sweepable:
        probes = probe_registry()
        sweepable = [name for name in probes.names() if probes.get(name).sweepable]
        raise UserError(
            f"task {spec.name} uses the {spec.probe.type} probe, which cannot be swept block by "
            f"block; the sweep runs tasks whose probe is one of {', '.join(sweepable)}"
        )


@dataclass
class SweepResult:
    """One run per block, the swept metric's values in block order, and the figure."""

    task: str
    metric: str
    blocks: list[int]
    values: list[float]
    runs: list[RunResult]
    plot: Path | None


def sweep(
    task: str | TaskSpec | Job,
    *,
    ckpt: str | os.PathLike[str] | None = None,
    encoder: Encoder | None = None,
    which: str | None = None,
    layers: str | Sequence[int] = "all",
    data: str | None = None,
    params: Mapping[str, Any] | None = None,
    results_dir: str | os.PathLike[str] | None = "results",
    plot: str | os.PathLike[str] | None = None,
    include_paths: Sequence[str | os.PathLike[str]] = (),
    device: str | None = None,
    extraction: ExtractOptions = ExtractOptions(),
    views: str | None = None,
) -> SweepResult:
    """Run ``task``'s probe on each block in ``layers`` (``all``, ``last4``, ``0,5,11``).

    ``task`` may be a prepared `Job` (the CLI's, with its data options); ``views`` overrides
    the task's training views. The plot goes to
    ``plot``, or by default ``<results>/sweeps/<task>-<model>-<time>.png`` (none when both
    ``results_dir`` and ``plot`` are None).
    """
    if isinstance(task, Job):
        job = task
        _check_sweepable(job.spec, job.probe)
    else:  # refused before prepare's other checks, which could not pass for a wrong probe
        spec = task if isinstance(task, TaskSpec) else get_task(task, include_paths)
        _check_sweepable(spec, find_probe(spec.probe.type))
        job = prepare(spec, data=data, params=params, include_paths=include_paths, views=views)
    spec = job.spec
    if encoder is None:
        if ckpt is None:
            raise UserError("sweep needs ckpt= or encoder=")
        encoder = load_encoder(ckpt, which)
    encoder = task_encoder(encoder, job.preprocess)  # the task's view of the images, once
    depth = len(encoder.blocks)
    blocks = list(parse_layers(layers, depth))

    # one forward per image for all blocks: every per-block run below is a cache hit
    every_block = job.with_representations([f"block{b}" for b in blocks])
    for _ in extract_features(every_block, encoder, extraction, tuple(blocks)):
        pass  # only filling the cache
    runs = [
        run_job(
            job.with_representations([f"block{block}"]),
            encoder,
            device=device,
            extraction=extraction,
            results_dir=results_dir,
            sweep={"block": block, "of": depth, "blocks": blocks},
        )
        for block in blocks
    ]
    metric = spec.metrics[0]
    values = [run.record.metrics[metric.name] for run in runs]
    if plot is None and results_dir is not None:
        model = (encoder.info.sha256 if encoder.info else "model")[:8]
        stamp = f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}"
        plot = Path(results_dir) / "sweeps" / f"{spec.name}-{model}-{stamp}.png"
    if plot is not None:
        name = encoder.info.arch if encoder.info else "encoder"
        plot = sweep_plot(
            plot,
            blocks,
            values,
            metric=metric.name,
            higher_is_better=metric.higher_is_better,
            depth=depth,
            title=f"{spec.name}: {metric.name} by block ({name}, {spec.probe.type} probe)",
            intervals=[run.record.metrics_ci.get(metric.name) for run in runs],
        )
    return SweepResult(spec.name, metric.name, blocks, values, runs, plot)
