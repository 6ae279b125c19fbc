"""The evaluation commands: ``tasks``, ``run``, the per-protocol shortcuts, ``sweep``, ``curve``.

``linprobe``, ``lowshot``, ``clevr`` and ``knn`` are `run` with the task chosen for you; every
one checks every task and parameter first, then loads the encoder once, prints a result table
and writes one run record per task.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ijepa_eval.cli_options import (
    CheckpointOptions,
    DataOptions,
    EvalOptions,
    ExtractionOptions,
    OutputOptions,
    PreprocessOptions,
    console,
    load_encoder_loudly,
    with_options,
)
from ijepa_eval.errors import UserError
from ijepa_eval.tables import Table


def run_tasks(
    names: list[str],
    checkpoint: CheckpointOptions,
    preprocess: PreprocessOptions,
    data: DataOptions,
    extraction: ExtractionOptions,
    evaluation: EvalOptions,
    output: OutputOptions,
    skip_existing: bool = False,
    **request: Any,
) -> None:
    """Check every task and parameter, load the encoder once, run each task (features shared
    through the cache). ``request`` adds `prepare` arguments (shots, subset_file)."""
    from ijepa_eval.tasks.suite import SuitePlan, SuiteSpec

    jobs = _prepare(names, data, evaluation, preprocess=preprocess.geometry(), **request)
    encoder = load_encoder_loudly(checkpoint, preprocess)
    plan = SuitePlan(SuiteSpec("--tasks", tuple(names)), jobs)
    _run_plan(plan, encoder, extraction, evaluation, output, skip_existing)


def _run_plan(
    plan: Any,
    encoder: Any,
    extraction: ExtractionOptions,
    evaluation: EvalOptions,
    output: OutputOptions,
    skip_existing: bool,
) -> Any:
    """Run the jobs, printing each task's header, then its table (or that it was skipped)."""
    from ijepa_eval.tasks.pipeline import RecordNotWritten
    from ijepa_eval.tasks.suite import run_suite

    def start(job) -> None:
        console.print(f"[bold]{job.spec.name}[/] — {job.spec.description}", highlight=False)

    def report(task: str, outcome) -> None:
        if isinstance(outcome, Path):
            console.print(f"skipped: a finished record exists, {outcome}", highlight=False)
        else:
            _print_result(outcome)

    try:
        return run_suite(
            plan,
            encoder,
            results_dir=output.results,
            skip_existing=skip_existing,
            on_start=start,
            on_run=report,
            device=evaluation.device,
            extraction=extraction.to_extract_options(),
        )
    except RecordNotWritten as unwritten:
        _print_result(unwritten.result)  # the numbers first, then why they were not kept
        raise


def _prepare(names: list[str], data: DataOptions, evaluation: EvalOptions, **request: Any):
    """Every task and parameter checked (`prepare_tasks`), before anything loads."""
    from ijepa_eval.tasks.pipeline import prepare_tasks

    return prepare_tasks(
        names,
        params=evaluation.params(),
        include_paths=evaluation.include_path or (),
        data=data.data,
        data_options=data.adapter_options(),
        skip_bad_images=data.skip_bad_images,
        views=evaluation.views,
        seeds=evaluation.seeds,
        **request,
    )


def _print_result(result) -> None:
    record = result.record
    table = Table(title=f"{record.task} (v{record.task_version})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("95% interval", justify="right")
    for name, value in record.metrics.items():
        arrow = "↑" if record.higher_is_better[name] else "↓"
        std = record.metrics_std.get(name)
        shown = f"{value:.2f}" + (f" ± {std:.2f}" if std is not None else "")
        interval = record.metrics_ci.get(name)
        table.add_row(f"{name} {arrow}", shown, _interval(interval))
    console.print(table)
    seeds = record.seeds.get("probe") if record.metrics_per_seed else None
    if seeds:  # ± is then the std over these seeds; the interval is the test set's noise
        for name, values in record.metrics_per_seed.items():
            shown = ", ".join(f"{v:.2f}" for v in values)
            console.print(f"{name} by probe seed {seeds}: {shown}", highlight=False)
    chosen = record.chosen
    if isinstance(chosen, dict) and "representation" in chosen:
        picked = {
            k: chosen[k]
            for k in ("representation", "whiten", "head", "lr", "weight_decay", "C")
            if k in chosen
        }
        console.print(f"chosen on the selection split: {picked}", highlight=False)
    entries = record.features["entries"]
    hits = sum(e["cache_hit"] for e in entries)
    console.print(
        (f"features: {hits}/{len(entries)} from the cache; " if entries else "")
        + f"extract {record.timings['extract_s']:.1f}s, probe {record.timings['probe_s']:.1f}s",
        highlight=False,
    )
    for note in record.notes:
        console.print(f"[dim]note: {note}[/]", highlight=False)
    if result.path:
        console.print(f"record: {result.path}", highlight=False)


def _interval(bounds: list[float] | None) -> str:
    """The bootstrap interval over the test items (`metrics_ci`), or nothing."""
    return "" if bounds is None else f"[{bounds[0]:.2f}, {bounds[1]:.2f}]"


@with_options
def tasks(evaluation: EvalOptions) -> None:
    """List the available tasks with their descriptions."""
    from ijepa_eval.tasks import all_tasks

    rows = [
        (s.name, s.probe.type, s.dataset.adapter or "any classification", s.description)
        for s in all_tasks(evaluation.include_path or ())
    ]
    table = Table(title="tasks")
    for n, column in enumerate(("name", "probe", "data", "description")):
        # names and probes keep their width; a narrow terminal wraps data and descriptions
        width = max(len(column), *(len(row[n]) for row in rows)) if n < 2 else None
        table.add_column(column, width=width)
    for row in rows:
        table.add_row(*row)
    console.print(table)


@with_options
def run(
    checkpoint: CheckpointOptions,
    preprocess: PreprocessOptions,
    data: DataOptions,
    extraction: ExtractionOptions,
    evaluation: EvalOptions,
    output: OutputOptions,
    task_list: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--tasks", help="Comma-separated task names."),
    ] = None,
    suite: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--suite",
            help="A suite of tasks (ijepa_paper: the paper's Tables 1-5), each on its configured "
            "dataset; or a suite YAML file.",
        ),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Suite: run nothing if any dataset is missing.")
    ] = False,
    skip_existing: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option(
            "--skip-existing/--no-skip-existing",
            help="Skip tasks with a finished record for this checkpoint, task version and "
            "settings (default: on for --suite, off for --tasks).",
        ),
    ] = None,
) -> None:
    """Run several tasks (or a suite) on one checkpoint (features are extracted once and
    shared)."""
    if (task_list is None) == (suite is None):
        raise UserError("give --tasks a,b,c or --suite NAME (one of them)")
    if strict and suite is None:
        raise UserError("--strict applies to --suite (a suite's missing datasets)")
    if suite is not None:
        _run_suite(suite, strict, skip_existing is not False, checkpoint, preprocess, data,
                   extraction, evaluation, output)  # fmt: skip
        return
    names = [t.strip() for t in task_list.split(",") if t.strip()]
    if not names:
        raise UserError("--tasks needs at least one task name (`ijepa-eval tasks` lists them)")
    run_tasks(
        names,
        checkpoint,
        preprocess,
        data,
        extraction,
        evaluation,
        output,
        skip_existing=bool(skip_existing),
    )


def _run_suite(
    name: str,
    strict: bool,
    skip_existing: bool,
    checkpoint: CheckpointOptions,
    preprocess: PreprocessOptions,
    data: DataOptions,
    extraction: ExtractionOptions,
    evaluation: EvalOptions,
    output: OutputOptions,
) -> None:
    """Plan the suite (every task checked, missing datasets listed), then run what is there."""
    from ijepa_eval.tasks import suite as suites

    if data.data is not None:
        raise UserError("--suite reads each task's configured dataset; --data applies to --tasks")
    include = evaluation.include_path or ()
    spec = suites.load_suite(name, include)
    plan = suites.plan_suite(
        spec,
        params=evaluation.params(),
        include_paths=include,
        results_dir=output.results,
        data_options=data.adapter_options(),
        skip_bad_images=data.skip_bad_images,
        views=evaluation.views,
        seeds=evaluation.seeds,
        preprocess=preprocess.geometry(),
    )
    console.print(
        f"[bold]suite {spec.name}[/]: {len(spec.tasks)} tasks, {len(plan.jobs)} with their data",
        highlight=False,
    )
    for task, why in plan.missing.items():
        console.print(f"  missing: {task} — {why}", highlight=False)
    suites.check_plan(plan, strict=strict)
    encoder = load_encoder_loudly(checkpoint, preprocess)
    result = _run_plan(plan, encoder, extraction, evaluation, output, skip_existing)
    missing = f", {len(result.missing)} missing ({', '.join(result.missing)})"
    console.print(
        f"suite {spec.name}: {len(result.runs)} ran, {len(result.skipped)} skipped (finished)"
        + (missing if result.missing else ""),
        highlight=False,
    )


@with_options
def linprobe(
    checkpoint: CheckpointOptions,
    preprocess: PreprocessOptions,
    data: DataOptions,
    extraction: ExtractionOptions,
    evaluation: EvalOptions,
    output: OutputOptions,
) -> None:
    """Linear probe (lastPOOL/concatPOOL4 × linear/BN+linear × lr × wd), ImageNet by default."""
    run_tasks(["linprobe"], checkpoint, preprocess, data, extraction, evaluation, output)


@with_options
def lowshot(
    checkpoint: CheckpointOptions,
    preprocess: PreprocessOptions,
    data: DataOptions,
    extraction: ExtractionOptions,
    evaluation: EvalOptions,
    output: OutputOptions,
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
) -> None:
    """Low-shot logistic regression: --percent 1 (imagenet_1pct) or --shots 1,2,5 (kshot)."""
    if (percent is None) == (shots is None):
        raise UserError("give --percent 1 or --shots 1,2,5 (one of them)")
    groups = (checkpoint, preprocess, data, extraction, evaluation, output)
    if percent is not None:
        if percent != 1:
            raise UserError("only --percent 1 has a standard subset file (SimCLR's 1percent.txt)")
        run_tasks(["imagenet_1pct"], *groups, subset_file=subset_file)
        return
    try:
        counts = [int(k) for k in shots.split(",")]
    except ValueError:
        raise UserError(f"--shots {shots!r}: use comma-separated integers, e.g. 1,2,5") from None
    run_tasks(["imagenet_kshot"], *groups, shots=counts)


@with_options
def clevr(
    task: Annotated[str, typer.Option("--task", help="count or dist.")],
    checkpoint: CheckpointOptions,
    preprocess: PreprocessOptions,
    data: DataOptions,
    extraction: ExtractionOptions,
    evaluation: EvalOptions,
    output: OutputOptions,
    vtab1k: Annotated[bool, typer.Option("--vtab1k", help="VTAB-1k: 800 train / 200 val.")] = False,
) -> None:
    """CLEVR counting or closest-object distance (VTAB labels) with a linear probe."""
    if task not in ("count", "dist"):
        raise UserError(f"--task must be count or dist, not {task!r}")
    name = f"clevr_{task}" + ("_vtab1k" if vtab1k else "")
    run_tasks([name], checkpoint, preprocess, data, extraction, evaluation, output)


@with_options
def knn(
    checkpoint: CheckpointOptions,
    preprocess: PreprocessOptions,
    data: DataOptions,
    extraction: ExtractionOptions,
    evaluation: EvalOptions,
    output: OutputOptions,
) -> None:
    """Weighted k-NN (cosine, T=0.07, k = 10, 20, 100, 200) on frozen features."""
    run_tasks(["knn"], checkpoint, preprocess, data, extraction, evaluation, output)


@with_options
def sweep_command(
    task: Annotated[str, typer.Option("--task", help="The task whose probe is swept.")],
    checkpoint: CheckpointOptions,
    preprocess: PreprocessOptions,
    data: DataOptions,
    extraction: ExtractionOptions,
    evaluation: EvalOptions,
    output: OutputOptions,
    layers: Annotated[
        str, typer.Option("--layers", help="Blocks: all, last4, or indices like 0,5,11.")
    ] = "all",
    plot: Annotated[
        Optional[Path],  # noqa: UP045 - typer needs Optional on 3.10
        typer.Option("--plot", help="PNG path (default <results>/sweeps/<task>-<model>-<t>.png)."),
    ] = None,
) -> None:
    """Probe every block of an encoder on one task: a run record per block and a PNG plot."""
    from ijepa_eval.tasks.sweep import sweep

    (job,) = _prepare([task], data, evaluation, preprocess=preprocess.geometry())
    encoder = load_encoder_loudly(checkpoint, preprocess)
    result = sweep(
        job,
        encoder=encoder,
        layers=layers,
        results_dir=output.results,
        plot=plot,
        device=evaluation.device,
        extraction=extraction.to_extract_options(),
    )
    higher = job.spec.metrics[0].higher_is_better
    best = (max if higher else min)(range(len(result.values)), key=lambda i: result.values[i])
    console.print(f"[bold]{job.spec.name}[/]: {result.metric} by block", highlight=False)
    for i, (block, value, run) in enumerate(
        zip(result.blocks, result.values, result.runs, strict=True)
    ):
        mark = "  <- best" if i == best else ""
        console.print(f"  block {block:>3}  {value:8.2f}  {run.path}{mark}", highlight=False)
    if result.plot:
        console.print(f"plot: {result.plot}", highlight=False)


def _headline(record) -> str:
    """``task metric value [rankme R]``: a record's first metric and its RankMe, in one phrase."""
    metric, value = next(iter(record.metrics.items()))
    rankme = f" rankme {record.health['rankme']:.1f}" if record.health else ""
    return f"{record.task} {metric} {value:.2f}{rankme}"


@with_options
def curve_command(
    checkpoints: Annotated[
        list[str],
        typer.Argument(
            help="Checkpoints in order (files, HF folders, registry names), or a pretraining "
            "run folder whose ep*.pth.tar are taken.",
            show_default=False,
        ),
    ],
    task_list: Annotated[str, typer.Option("--tasks", help="Comma-separated task names.")],
    preprocess: PreprocessOptions,
    data: DataOptions,
    extraction: ExtractionOptions,
    evaluation: EvalOptions,
    output: OutputOptions,
    which: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--which", help="target_encoder (default where present) or encoder."),
    ] = None,
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--out",
            help="Folder for curve.csv and curve.png (default <results>/curves/<name>-<t>).",
        ),
    ] = None,
) -> None:
    """Evaluate a series of checkpoints (a pretraining run's ep*.pth.tar) through the cache and
    plot each metric and RankMe against the epoch (PNG + CSV)."""
    from ijepa_eval.tasks.curve import curve, run_checkpoints

    names = [t.strip() for t in task_list.split(",") if t.strip()]
    if not names:
        raise UserError("--tasks needs at least one task name (`ijepa-eval tasks` lists them)")
    paths = run_checkpoints(checkpoints)  # a folder without ep*.pth.tar fails before any work
    jobs = _prepare(names, data, evaluation, preprocess=preprocess.geometry())
    console.print(f"{len(paths)} checkpoint(s) × {len(jobs)} task(s)", highlight=False)

    def progress(spec: str, runs) -> None:
        hits = sum(e["cache_hit"] for r in runs for e in r.record.features["entries"])
        entries = sum(len(r.record.features["entries"]) for r in runs)
        shown = ", ".join(_headline(r.record) for r in runs)
        console.print(
            f"  {spec}: {shown} (features {hits}/{entries} from the cache)", highlight=False
        )

    result = curve(
        jobs,
        paths,
        which=which,
        load_options=preprocess.to_kwargs(),
        device=evaluation.device,
        extraction=extraction.to_extract_options(),
        results_dir=output.results,
        out=out,
        on_checkpoint=progress,
    )
    table = Table(title=f"metrics by {result.x}")
    shown = [c for c in result.table.columns if c not in ("checkpoint", "sha256")]
    shown = [c for c in shown if not c.endswith((".near_constant_dims", ".mean_norm"))]
    for column in shown:
        table.add_column(column, justify="right")
    for _, row in result.table.iterrows():
        table.add_row(
            *(f"{row[c]:.2f}" if isinstance(row[c], float) else str(row[c]) for c in shown)
        )
    console.print(table)
    for note in result.notes:
        console.print(f"[dim]note: {note}[/]", highlight=False)
    if result.csv:
        console.print(f"csv: {result.csv}\nplot: {result.png}", highlight=False)
