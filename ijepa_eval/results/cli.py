"""``leaderboard`` and ``check``: thin shells over `ijepa_eval.results`.

Skipped files are printed as warnings on stderr; ``check`` exits 1 when anything regressed or is
missing, after naming each such metric.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional, TypeVar

import typer
from rich.markup import escape

from ijepa_eval.cli_options import (
    DataOptions,
    EvalOptions,
    ExtractionOptions,
    OutputOptions,
    console,
    err_console,
    print_warnings,
    with_options,
)
from ijepa_eval.errors import UserError, collect_warnings, writing
from ijepa_eval.tables import Col, fitted

T = TypeVar("T")

ResultsOpt = Annotated[
    Path, typer.Option("--results", help="Results directory (reads <results>/runs/<task>/*.json).")
]
ReferenceOpt = Annotated[
    Optional[Path],  # noqa: UP045 - typer needs Optional on 3.10
    typer.Option(
        "--reference", help="Published numbers as extra rows: a YAML file or folder of them."
    ),
]
STATUS_STYLE = {
    "ok": "green",
    "improved": "cyan",
    "noise": "yellow",
    "regressed": "bold red",
    "missing": "bold red",
}


def leaderboard(
    results: ResultsOpt = Path("results"),
    fmt: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on 3.10
        typer.Option(
            "--format",
            help="md, csv (every metric, flat) or table (drawn to fit the terminal). Default: "
            "from --out's suffix (csv, else md); without --out, table on a terminal, else md.",
        ),
    ] = None,
    metrics: Annotated[
        str,
        typer.Option(
            "--metrics",
            help="headline: one metric per task, the first it declares (top-1, RMSE for "
            "depth); all: then a table of every metric per task.",
        ),
    ] = "headline",
    layout: Annotated[
        str,
        typer.Option(
            "--layout",
            help="flat: one table of every task; paper: the I-JEPA paper's Tables 1-5 (reference "
            "rows beside ours), then the other tasks.",
        ),
    ] = "flat",
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--out", help="Write the table here (atomically) instead of stdout."),
    ] = None,
    plot: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--plot", help="Bar charts: FILE.png (one image) or a folder (one per task)."),
    ] = None,
    reference: ReferenceOpt = None,
) -> None:
    """Tabulate the newest run of each (model, task): Markdown, CSV or a terminal table."""
    if fmt is None and out is None:
        fmt = "table" if sys.stdout.isatty() else "md"
    fmt = fmt or ("csv" if out.suffix.lower() == ".csv" else "md")
    from ijepa_eval.plots import plot_leaderboard
    from ijepa_eval.results.layout import check_view
    from ijepa_eval.results.leaderboard import check_format, render, write_leaderboard
    from ijepa_eval.results.leaderboard import leaderboard as build_leaderboard

    check_view(metrics, layout)  # before reading anything
    check_format(fmt, layout)
    board = _with_warnings(lambda: build_leaderboard(results, reference))
    view = {"metrics": metrics, "layout": layout, "width": console.width}
    if out is None:
        typer.echo(render(board, fmt, **view), nl=False)
    else:
        try:
            write_leaderboard(board, out, fmt, **view)
        except UserError:  # a full disk: the table is not lost, it goes to stdout instead
            typer.echo(render(board, fmt, **view), nl=False)
            raise
        err_console.print(
            f"wrote {fmt} leaderboard to [bold]{escape(str(out))}[/]", highlight=False
        )
    if plot is not None:
        with writing("the leaderboard charts", plot):
            for path in plot_leaderboard(board, plot):
                err_console.print(f"wrote chart [bold]{escape(str(path))}[/]", highlight=False)


def check(
    baseline: Annotated[
        Path,
        typer.Option("--baseline", help="Baseline results directory (may hold tolerances.yaml)."),
    ],
    results: ResultsOpt = Path("results"),
    tolerance: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--tolerance",
            help="Allowed change in the bad direction: 0.5 (metric units) or 2% (of the "
            "baseline); default 1%. For metrics the baseline's tolerances.yaml does not name.",
        ),
    ] = None,
    statistical: Annotated[
        bool,
        typer.Option(
            "--statistical",
            help="A drop beyond the tolerance fails only if also significant at --alpha (paired "
            "test on the predictions stored with both records).",
        ),
    ] = False,
    alpha: Annotated[
        float, typer.Option("--alpha", help="Significance level for --statistical.")
    ] = 0.01,
) -> None:
    """Compare the newest results with a baseline; exit 1 on a regression or a missing metric."""
    from ijepa_eval.results.check import check as run_check
    from ijepa_eval.results.check import format_p

    report = _with_warnings(
        lambda: run_check(
            baseline, results, tolerance=tolerance, statistical=statistical, alpha=alpha
        )
    )
    columns = [Col("task", wrap=11), Col("metric", wrap=12)]
    columns += [Col(name, right=True) for name in ("baseline", "now", "delta")]
    columns += [Col("tolerance", right=True, wrap=9)]
    columns += [Col("p", right=True, wrap=5), Col("status")] if statistical else [Col("status")]
    rows = (
        [
            escape(c.task),
            escape(f"{c.metric} {'↑' if c.higher_is_better else '↓'}"),
            c.show(c.baseline),
            c.show(c.now),
            c.show(c.delta, signed=True),
            c.tolerance_text,
            *([] if not statistical else ["—" if c.p_value is None else format_p(c.p_value)]),
            f"[{STATUS_STYLE[c.status]}]{c.status.upper()}[/]",
        ]
        for c in report.comparisons
    )
    title = escape(f"check against {baseline}")
    console.print(fitted(columns, rows, console, title=title, under=[1]))
    for note in report.notes:
        console.print(f"[dim]note: {escape(note)}[/]", highlight=False, soft_wrap=True)
    if report.passed:
        improved = sum(c.status == "improved" for c in report.comparisons)
        noise = sum(c.status == "noise" for c in report.comparisons)
        console.print(
            f"[green]passed[/]: {len(report.comparisons)} metrics, none regressed or missing"
            + (f" ({improved} improved: consider refreshing the baseline)" if improved else "")
            + (
                f"; {noise} dropped beyond the tolerance but not significantly (p ≥ {alpha:g})"
                if noise
                else ""
            ),
            highlight=False,
        )
        return
    for c in report.failures:
        console.print(
            f"[bold red]{c.status.upper()}[/] {escape(c.describe())}",
            highlight=False,
            soft_wrap=True,
        )
    regressed = sum(c.status == "regressed" for c in report.failures)
    missing = len(report.failures) - regressed
    console.print(
        f"[bold red]check failed[/]: {regressed} regressed, {missing} missing", highlight=False
    )
    raise typer.Exit(1)


def report(
    results: ResultsOpt = Path("results"),
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--out", help="Write the HTML report here (one self-contained file)."),
    ] = None,
    model_card: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--model-card",
            help="Write or update this Hugging Face model card's model-index (README.md).",
        ),
    ] = None,
    reference: ReferenceOpt = None,
    curves: Annotated[
        Optional[list[Path]],  # noqa: UP045
        typer.Option(
            "--curves",
            help="A pretraining or fine-tuning run folder (log.csv) or a curve output "
            "(curve.csv) to draw; repeatable.",
        ),
    ] = None,
    title: Annotated[str, typer.Option("--title", help="The page's title.")] = "ijepa-eval report",
    model: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--model", help="Model card: the model (name or sha256 prefix)."),
    ] = None,
    network: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--network", help="Model card: target_encoder or encoder, if both ran."),
    ] = None,
    model_name: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--model-name", help="Model card: the model's name in the model-index."),
    ] = None,
) -> None:
    """An HTML report of the results (tables, grids, confusion, depth, sweeps, curves,
    provenance) and/or their model-index in a Hugging Face model card."""
    if out is None and model_card is None:
        raise UserError("report needs --out report.html, --model-card README.md, or both")
    if out is not None:
        from ijepa_eval.results.report import write_report

        written = _with_warnings(
            lambda: write_report(
                results, out, reference=reference, curves=curves or (), title=title
            )
        )
        size = written.stat().st_size / 1e6
        err_console.print(
            f"wrote report [bold]{escape(str(written))}[/] ({size:.1f} MB)", highlight=False
        )
    if model_card is not None:
        from ijepa_eval.results.model_card import write_model_card

        written = _with_warnings(
            lambda: write_model_card(
                results, model_card, model=model, network=network, model_name=model_name
            )
        )
        tasks = len({r.task_name for r in written})
        err_console.print(
            f"wrote {len(written)} results of {tasks} tasks to the model-index of "
            f"[bold]{escape(str(model_card))}[/]",
            highlight=False,
        )


@with_options
def compare(
    sources: Annotated[
        list[str],
        typer.Argument(
            help="Two or more run record files or results folders; with --tasks, checkpoints.",
            show_default=False,
        ),
    ],
    data: DataOptions,
    extraction: ExtractionOptions,
    evaluation: EvalOptions,
    output: OutputOptions,
    task_list: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--tasks",
            help="Comma-separated tasks. With checkpoints: run them on each (through the cache, "
            "records under --results), then compare; with records: compare only these tasks.",
        ),
    ] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="Significance level.")] = 0.05,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Paired comparison of runs on the same test items: B − A, 95% interval, p-value, verdict."""
    from ijepa_eval.results import compare as cmp

    tasks = [t.strip() for t in (task_list or "").split(",") if t.strip()]
    if all(map(cmp.is_run, sources)) or not tasks:
        reports = _with_warnings(lambda: cmp.compare_many(sources, alpha=alpha, tasks=tasks))
    else:
        reports = cmp.compare_checkpoints(
            sources,
            tasks,
            alpha=alpha,
            results_dir=output.results,
            extraction=extraction.to_extract_options(),
            device=evaluation.device,
            data=data.data,
            data_options=data.adapter_options(),
            skip_bad_images=data.skip_bad_images,
            params=evaluation.params(),
            include_paths=evaluation.include_path or (),
            views=evaluation.views,
            seeds=evaluation.seeds,
        )
    if as_json:
        body = reports[0].to_json() if len(reports) == 1 else {
            "pairs": [r.to_json() for r in reports]
        }  # fmt: skip
        typer.echo(json.dumps(body, indent=2))
        return
    if len(reports) == 1:
        _print_pair(reports[0])
    else:
        _print_matrix(list(sources), reports)


def _print_pair(report) -> None:
    from ijepa_eval.results.check import format_p

    console.print(f"A: {escape(report.a)}\nB: {escape(report.b)}", highlight=False)
    columns = [Col("task", wrap=12), Col("metric", wrap=12)]
    columns += [Col(name, right=True) for name in ("A", "B", "B − A")]
    columns += [Col("95% CI", right=True, wrap=7), Col("p", right=True, wrap=5)]
    columns += [Col("test"), Col("verdict", wrap=11)]
    rows = []
    for r in report.rows:
        p = r.paired
        digits = 2 if abs(p.a) >= 1 else 3
        f = lambda v, sign="", digits=digits: f"{v:{sign}.{digits}f}"  # noqa: E731
        rows.append(
            [
                escape(r.task),
                escape(f"{r.metric} {'↑' if r.higher_is_better else '↓'}"),
                f(p.a),
                f(p.b),
                f(p.difference, "+"),
                f"[{f(p.low, '+')}, {f(p.high, '+')}]",
                format_p(p.p_value).removeprefix("p = ").removeprefix("p "),
                p.test,
                r.verdict,
            ]
        )
    table = fitted(columns, rows, console, title="B − A on the same test items", under=[1, 5, 7])
    console.print(table)
    for note in report.notes:
        console.print(f"[dim]note: {escape(note)}[/]", highlight=False, soft_wrap=True)
    significant = sum(r.significant for r in report.rows)
    console.print(
        f"{len(report.rows)} metrics compared; "
        + (
            f"{significant} differ significantly at {report.alpha:g}"
            if significant
            else f"no significant difference at {report.alpha:g}"
        ),
        highlight=False,
    )


def _print_matrix(sources: list[str], reports) -> None:
    """One table per (task, metric): cell (row i, column j) is run j − run i and its p-value."""
    import itertools

    from ijepa_eval.results.check import format_p

    for n, source in enumerate(sources, 1):
        console.print(f"[{n}] {escape(source)}", highlight=False)
    pairs = itertools.combinations(range(len(sources)), 2)
    cells: dict[tuple[str, str], dict[tuple[int, int], str]] = {}
    for (i, j), report in zip(pairs, reports, strict=True):
        for r in report.rows:
            star = " *" if r.significant else ""
            cells.setdefault((r.task, r.metric), {})[(i, j)] = (
                f"{r.paired.difference:+.2f} ({format_p(r.paired.p_value)}){star}"
            )
        for note in report.notes:
            console.print(f"[dim]note: {escape(note)}[/]", highlight=False, soft_wrap=True)
    for (task, metric), got in cells.items():
        later = range(1, len(sources))
        columns = [Col(""), *(Col(f"[{j + 1}]", right=True, wrap=8) for j in later)]
        rows = ([f"[{i + 1}]", *(got.get((i, j), "") for j in later)] for i in range(len(later)))
        title = escape(f"{task} {metric}: column − row")
        console.print(fitted(columns, rows, console, title=title))
    console.print(f"* significant at {reports[0].alpha:g}", highlight=False)


def _with_warnings(run: Callable[[], T]) -> T:
    """Run ``run``, printing its warnings (each skipped file, say), also when it fails."""
    said: list[str] = []
    try:
        with collect_warnings() as said:
            return run()
    finally:
        print_warnings(said)
