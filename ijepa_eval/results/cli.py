"""``leaderboard`` and ``check``: thin shells over `ijepa_eval.results`.

Skipped files are printed as warnings on stderr; ``check`` exits 1 when anything regressed or is
missing, after naming each such metric.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from ijepa_eval.cli_options import console, err_console, print_warnings
from ijepa_eval.errors import UserError, collect_warnings, writing

T = TypeVar("T")

ResultsOpt = Annotated[
    Path, typer.Option("--results", help="Results directory (reads <results>/runs/<task>/*.json).")
]
STATUS_STYLE = {"ok": "green", "improved": "cyan", "regressed": "bold red", "missing": "bold red"}


def leaderboard(
    results: ResultsOpt = Path("results"),
    fmt: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on 3.10
        typer.Option("--format", help="md or csv (default: from --out's suffix, else md)."),
    ] = None,
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--out", help="Write the table here (atomically) instead of stdout."),
    ] = None,
    plot: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--plot", help="Bar charts: FILE.png (one image) or a folder (one per task)."),
    ] = None,
    reference: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--reference", help="Published numbers as extra rows: a YAML file or folder of them."
        ),
    ] = None,
) -> None:
    """Tabulate the newest run of each (model, task) as Markdown or CSV, optionally with charts."""
    fmt = fmt or ("csv" if out is not None and out.suffix.lower() == ".csv" else "md")
    from ijepa_eval.plots import plot_leaderboard
    from ijepa_eval.results.leaderboard import check_format, render, write_leaderboard
    from ijepa_eval.results.leaderboard import leaderboard as build_leaderboard

    check_format(fmt)  # before reading anything
    board = _with_warnings(lambda: build_leaderboard(results, reference))
    if out is None:
        typer.echo(render(board, fmt), nl=False)
    else:
        try:
            write_leaderboard(board, out, fmt)
        except UserError:  # a full disk: the table is not lost, it goes to stdout instead
            typer.echo(render(board, fmt), nl=False)
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
) -> None:
    """Compare the newest results with a baseline; exit 1 on a regression or a missing metric."""
    from ijepa_eval.results.check import check as run_check

    report = _with_warnings(lambda: run_check(baseline, results, tolerance=tolerance))
    table = Table(title=escape(f"check against {baseline}"), title_justify="left")
    for name in ("task", "metric", "baseline", "now", "delta", "tolerance", "status"):
        table.add_column(name, justify="left" if name in ("task", "metric", "status") else "right")
    for c in report.comparisons:
        table.add_row(
            escape(c.task),
            escape(f"{c.metric} {'↑' if c.higher_is_better else '↓'}"),
            c.show(c.baseline),
            c.show(c.now),
            c.show(c.delta, signed=True),
            c.tolerance_text,
            f"[{STATUS_STYLE[c.status]}]{c.status.upper()}[/]",
        )
    console.print(table)
    for note in report.notes:
        console.print(f"[dim]note: {escape(note)}[/]", highlight=False, soft_wrap=True)
    if report.passed:
        improved = sum(c.status == "improved" for c in report.comparisons)
        console.print(
            f"[green]passed[/]: {len(report.comparisons)} metrics, none regressed or missing"
            + (f" ({improved} improved: consider refreshing the baseline)" if improved else ""),
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


def _with_warnings(run: Callable[[], T]) -> T:
    """Run ``run``, printing its warnings (each skipped file, say), also when it fails."""
    said: list[str] = []
    try:
        with collect_warnings() as said:
            return run()
    finally:
        print_warnings(said)
