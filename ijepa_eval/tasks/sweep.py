"""The layer sweep: one task's probe on every block of an encoder, and a plot of the metric.

``sweep`` extracts all requested blocks in one forward per split first (one cache entry per
split), then runs `evaluate` once per block with the representation ``block<N>``: every run is a
cache hit on that entry, writes its own run record (with ``"sweep": {"block": N, "of": depth}``)
and the figure shows the task's first metric against block depth. The probe is the task's own:
linear, logistic regression, k-NN or attentive (which reads that block's patch tokens).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ijepa_eval.data import available_splits, load_dataset
from ijepa_eval.errors import UserError
from ijepa_eval.features import extract
from ijepa_eval.features.spec import parse_layers
from ijepa_eval.models import load_encoder
from ijepa_eval.models.vit import Encoder
from ijepa_eval.plots import line_plot
from ijepa_eval.settings import data_root, require_data_root
from ijepa_eval.tasks.registry import get_task
from ijepa_eval.tasks.runner import RunResult, SplitPlan, evaluate, plan_splits, resolve_data
from ijepa_eval.tasks.spec import TaskSpec

SWEEPABLE = ("linear", "logreg", "knn", "attentive")  # probes that read one block's features


@dataclass
class SweepResult:
    """One run per block, the swept metric's values in block order, and the figure."""

    task: str
    metric: str
    blocks: list[int]
    values: list[float]
    runs: list[RunResult]
    plot: Path | None


def _train_subsets(spec: TaskSpec, subset_file: str | os.PathLike[str] | None) -> list[dict]:
    """The training sets `evaluate` will load: the split itself, its 1% subset, or k-shot draws."""
    if spec.dataset.shots:
        return [{"shots": k, "seed": s} for k in spec.dataset.shots for s in spec.dataset.seeds]
    if spec.probe.type == "logreg" and spec.dataset.subset_file_key:
        key = spec.dataset.subset_file_key
        chosen = subset_file or data_root(key)
        if chosen is None:
            require_data_root(key, f"task {spec.name}'s subset file (or pass --subset-file)")
        return [{"subset_file": chosen}]
    return [{}]


def _datasets(
    spec: TaskSpec, plan: SplitPlan, subset_file: str | os.PathLike[str] | None
) -> Iterator[tuple[str, dict]]:
    for subset in _train_subsets(spec, subset_file):
        yield plan.train, subset
    if plan.select is not None:
        yield plan.select, {}
    yield plan.test, {}


def sweep(
    task: str | TaskSpec,
    *,
    ckpt: str | os.PathLike[str] | None = None,
    encoder: Encoder | None = None,
    which: str | None = None,
    layers: str | Sequence[int] = "all",
    data: str | None = None,
    results_dir: str | os.PathLike[str] | None = "results",
    plot: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    include_paths: Sequence[str | os.PathLike[str]] = (),
    subset_file: str | os.PathLike[str] | None = None,
    probe_params: dict[str, Any] | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    skip_bad_images: bool = False,
    device: str | None = None,
    progress: bool = True,
) -> SweepResult:
    """Run ``task``'s probe on each block in ``layers`` (``all``, ``last4``, ``0,5,11``).

    The plot goes to ``plot``, or by default ``<results>/sweeps/<task>-<model>-<time>.png``
    (none when both ``results_dir`` and ``plot`` are None).
    """
    spec = task if isinstance(task, TaskSpec) else get_task(task, include_paths)
    if spec.probe.type not in SWEEPABLE:
        raise UserError(
            f"task {spec.name} uses the {spec.probe.type} probe, which cannot be swept block by "
            f"block; the sweep runs tasks whose probe is one of {', '.join(SWEEPABLE)}"
        )
    if encoder is None:
        if ckpt is None:
            raise UserError("sweep needs ckpt= or encoder=")
        encoder = load_encoder(ckpt, which)
    depth = len(encoder.blocks)
    blocks = list(parse_layers(layers, depth))

    adapter, root = resolve_data(spec, data)
    plan = plan_splits(spec.dataset, available_splits(adapter, root))
    options = dict(spec.dataset.options)
    if skip_bad_images:
        options["skip_bad_images"] = True
    tokens = "all" if spec.probe.type == "attentive" else "none"
    extract_options = {"cache_dir": cache_dir, "batch_size": batch_size, "workers": workers}
    for split, subset in _datasets(spec, plan, subset_file):  # one forward per image, all blocks
        ds = load_dataset(adapter, root, split, **subset, **options)
        extract(encoder, ds, layers=blocks, tokens=tokens, progress=progress, **extract_options)

    runs = []
    for block in blocks:
        one = replace(spec, probe=replace(spec.probe, representations=(f"block{block}",)))
        runs.append(
            evaluate(
                one,
                encoder=encoder,
                data=data,
                results_dir=results_dir,
                subset_file=subset_file,
                probe_params=probe_params,
                skip_bad_images=skip_bad_images,
                device=device,
                progress=progress,
                record_extra={"sweep": {"block": block, "of": depth, "blocks": blocks}},
                **extract_options,
            )
        )
    metric = spec.metrics[0]
    values = [run.record["metrics"][metric.name] for run in runs]
    if plot is None and results_dir is not None:
        model = (encoder.info.sha256 if encoder.info else "model")[:8]
        stamp = f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}"
        plot = Path(results_dir) / "sweeps" / f"{spec.name}-{model}-{stamp}.png"
    if plot is not None:
        name = encoder.info.arch if encoder.info else "encoder"
        plot = line_plot(
            plot,
            blocks,
            values,
            title=f"{spec.name}: {metric.name} by block ({name}, {spec.probe.type} probe)",
            xlabel=f"block (0 = first, {depth - 1} = last)",
            ylabel=metric.name,
            higher_is_better=metric.higher_is_better,
        )
    return SweepResult(spec.name, metric.name, blocks, values, runs, plot)
