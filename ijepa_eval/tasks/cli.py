"""The evaluation commands: ``tasks``, ``run``, and the per-protocol shortcuts.

``linprobe``, ``lowshot``, ``clevr`` and ``knn`` are `run` with the task chosen for you; every
one prints a result table and writes one run record per task.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ijepa_eval.cli_options import (
    BatchOpt,
    CacheOpt,
    CkptOpt,
    DataOpt,
    DeviceOpt,
    IncludeOpt,
    ProbeParamOpt,
    ResultsOpt,
    SkipBadOpt,
    WhichOpt,
    WorkersOpt,
    console,
    load_encoder_loudly,
    parse_probe_params,
)
from ijepa_eval.errors import UserError


def run_tasks(
    names: list[str],
    *,
    ckpt: str | None,
    which: str | None,
    data: str | None,
    results: Path,
    cache_dir: Path | None,
    include_path: list[Path] | None,
    batch_size: int | None,
    workers: int | None,
    device: str | None,
    skip_bad_images: bool,
    probe_param: list[str] | None,
    **extra,
) -> None:
    """Load the encoder once and run each task; features are shared through the cache."""
    from ijepa_eval.tasks import evaluate, get_task

    specs = [get_task(name, include_path or ()) for name in names]  # all names checked first
    params = parse_probe_params(probe_param)
    encoder = load_encoder_loudly(ckpt, which)
    for spec in specs:
        console.print(f"[bold]{spec.name}[/] — {spec.description}", highlight=False)
        result = evaluate(
            spec,
            encoder=encoder,
            data=data,
            results_dir=results,
            cache_dir=cache_dir,
            batch_size=batch_size,
            workers=workers,
            device=device,
            skip_bad_images=skip_bad_images,
            probe_params=params,
            **extra,
        )
        _print_result(result)


def _print_result(result) -> None:
    record = result.record
    table = Table(title=f"{record['task']} (v{record['task_version']})", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in record["metrics"].items():
        arrow = "↑" if record["higher_is_better"][name] else "↓"
        std = record["metrics_std"].get(name)
        shown = f"{value:.2f}" + (f" ± {std:.2f}" if std is not None else "")
        table.add_row(f"{name} {arrow}", shown)
    console.print(table)
    chosen = record.get("chosen")
    if isinstance(chosen, dict) and "representation" in chosen:
        picked = {
            k: chosen[k]
            for k in ("representation", "head", "lr", "weight_decay", "C")
            if k in chosen
        }
        console.print(f"chosen on the selection split: {picked}", highlight=False)
    hits = sum(e["cache_hit"] for e in record["features"]["entries"])
    console.print(
        f"features: {hits}/{len(record['features']['entries'])} from the cache; "
        f"extract {record['timings']['extract_s']:.1f}s, probe {record['timings']['probe_s']:.1f}s",
        highlight=False,
    )
    for note in record["notes"]:
        console.print(f"[dim]note: {note}[/]", highlight=False)
    if result.path:
        console.print(f"record: {result.path}", highlight=False)


def tasks(
    include_path: IncludeOpt = None,
) -> None:
    """List the available tasks with their descriptions."""
    from ijepa_eval.tasks import all_tasks

    table = Table(title="tasks", title_justify="left")
    for column in ("name", "probe", "data", "description"):
        table.add_column(column, no_wrap=column == "name")
    for spec in all_tasks(include_path or ()):
        data = spec.dataset.adapter or "any classification"
        table.add_row(spec.name, spec.probe.type, data, spec.description)
    console.print(table)


def run(
    task_list: Annotated[str, typer.Option("--tasks", help="Comma-separated task names.")],
    ckpt: CkptOpt = None,
    data: DataOpt = None,
    which: WhichOpt = None,
    results: ResultsOpt = Path("results"),
    cache_dir: CacheOpt = None,
    include_path: IncludeOpt = None,
    batch_size: BatchOpt = None,
    workers: WorkersOpt = None,
    device: DeviceOpt = None,
    skip_bad_images: SkipBadOpt = False,
    probe_param: ProbeParamOpt = None,
) -> None:
    """Run several tasks on one checkpoint (features are extracted once and shared)."""
    names = [t.strip() for t in task_list.split(",") if t.strip()]
    if not names:
        raise UserError("--tasks needs at least one task name (`ijepa-eval tasks` lists them)")
    run_tasks(names, **_common(locals()))


def linprobe(
    ckpt: CkptOpt = None,
    data: DataOpt = None,
    which: WhichOpt = None,
    results: ResultsOpt = Path("results"),
    cache_dir: CacheOpt = None,
    include_path: IncludeOpt = None,
    batch_size: BatchOpt = None,
    workers: WorkersOpt = None,
    device: DeviceOpt = None,
    skip_bad_images: SkipBadOpt = False,
    probe_param: ProbeParamOpt = None,
) -> None:
    """Linear probe (lastPOOL/concatPOOL4 × linear/BN+linear × lr × wd), ImageNet by default."""
    run_tasks(["linprobe"], **_common(locals()))


def lowshot(
    ckpt: CkptOpt = None,
    percent: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option("--percent", help="1: SimCLR's 1% subset (needs its 1percent.txt)."),
    ] = None,
    shots: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--shots", help="Images per class, e.g. 1,2,5 (3 seeds each)."),
    ] = None,
    subset_file: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--subset-file", help="SimCLR-format subset file (1percent.txt)."),
    ] = None,
    data: DataOpt = None,
    which: WhichOpt = None,
    results: ResultsOpt = Path("results"),
    cache_dir: CacheOpt = None,
    include_path: IncludeOpt = None,
    batch_size: BatchOpt = None,
    workers: WorkersOpt = None,
    device: DeviceOpt = None,
    skip_bad_images: SkipBadOpt = False,
    probe_param: ProbeParamOpt = None,
) -> None:
    """Low-shot logistic regression: --percent 1 (imagenet_1pct) or --shots 1,2,5 (kshot)."""
    if (percent is None) == (shots is None):
        raise UserError("give --percent 1 or --shots 1,2,5 (one of them)")
    common = _common(locals())
    if percent is not None:
        if percent != 1:
            raise UserError("only --percent 1 has a standard subset file (SimCLR's 1percent.txt)")
        run_tasks(["imagenet_1pct"], subset_file=subset_file, **common)
        return
    try:
        counts = [int(k) for k in shots.split(",")]
    except ValueError:
        raise UserError(f"--shots {shots!r}: use comma-separated integers, e.g. 1,2,5") from None
    run_tasks(["imagenet_kshot"], shots=counts, **common)


def clevr(
    task: Annotated[str, typer.Option("--task", help="count or dist.")],
    ckpt: CkptOpt = None,
    vtab1k: Annotated[bool, typer.Option("--vtab1k", help="VTAB-1k: 800 train / 200 val.")] = False,
    data: DataOpt = None,
    which: WhichOpt = None,
    results: ResultsOpt = Path("results"),
    cache_dir: CacheOpt = None,
    include_path: IncludeOpt = None,
    batch_size: BatchOpt = None,
    workers: WorkersOpt = None,
    device: DeviceOpt = None,
    skip_bad_images: SkipBadOpt = False,
    probe_param: ProbeParamOpt = None,
) -> None:
    """CLEVR counting or closest-object distance (VTAB labels) with a linear probe."""
    if task not in ("count", "dist"):
        raise UserError(f"--task must be count or dist, not {task!r}")
    run_tasks([f"clevr_{task}" + ("_vtab1k" if vtab1k else "")], **_common(locals()))


def knn(
    ckpt: CkptOpt = None,
    data: DataOpt = None,
    which: WhichOpt = None,
    results: ResultsOpt = Path("results"),
    cache_dir: CacheOpt = None,
    include_path: IncludeOpt = None,
    batch_size: BatchOpt = None,
    workers: WorkersOpt = None,
    device: DeviceOpt = None,
    skip_bad_images: SkipBadOpt = False,
    probe_param: ProbeParamOpt = None,
) -> None:
    """Weighted k-NN (cosine, T=0.07, k = 10, 20, 100, 200) on frozen features."""
    run_tasks(["knn"], **_common(locals()))


_COMMON = (
    "ckpt",
    "which",
    "data",
    "results",
    "cache_dir",
    "include_path",
    "batch_size",
    "workers",
    "device",
    "skip_bad_images",
    "probe_param",
)


def _common(params: dict) -> dict:
    return {k: params[k] for k in _COMMON}


def sweep_command(
    task: Annotated[str, typer.Option("--task", help="The task whose probe is swept.")],
    ckpt: CkptOpt = None,
    layers: Annotated[
        str, typer.Option("--layers", help="Blocks: all, last4, or indices like 0,5,11.")
    ] = "all",
    data: DataOpt = None,
    which: WhichOpt = None,
    results: ResultsOpt = Path("results"),
    plot: Annotated[
        Optional[Path],  # noqa: UP045 - typer needs Optional on 3.10
        typer.Option("--plot", help="PNG path (default <results>/sweeps/<task>-<model>-<t>.png)."),
    ] = None,
    cache_dir: CacheOpt = None,
    include_path: IncludeOpt = None,
    batch_size: BatchOpt = None,
    workers: WorkersOpt = None,
    device: DeviceOpt = None,
    probe_param: ProbeParamOpt = None,
) -> None:
    """Probe every block of an encoder on one task: a run record per block and a PNG plot."""
    from ijepa_eval.tasks import get_task
    from ijepa_eval.tasks.sweep import sweep

    spec = get_task(task, include_path or ())
    params = parse_probe_params(probe_param)
    encoder = load_encoder_loudly(ckpt, which)
    result = sweep(
        spec,
        encoder=encoder,
        layers=layers,
        data=data,
        results_dir=results,
        plot=plot,
        cache_dir=cache_dir,
        probe_params=params,
        batch_size=batch_size,
        workers=workers,
        device=device,
    )
    higher = spec.metrics[0].higher_is_better
    best = (max if higher else min)(range(len(result.values)), key=lambda i: result.values[i])
    console.print(f"[bold]{spec.name}[/]: {result.metric} by block", highlight=False)
    for i, (block, value, run) in enumerate(
        zip(result.blocks, result.values, result.runs, strict=True)
    ):
        mark = "  <- best" if i == best else ""
        console.print(f"  block {block:>3}  {value:8.2f}  {run.path}{mark}", highlight=False)
    if result.plot:
        console.print(f"plot: {result.plot}", highlight=False)
