"""The model × task leaderboard, with an order that never depends on how files were listed.

Rules (docs/results-and-ci.md repeats them, and the Markdown prints them under the table):

- one row per model, where a model is (checkpoint sha256, network, resolution); its name is the
  registry name, else the checkpoint spec's last path component (from its newest record);
- measured rows are sorted by name (case-insensitive), then network, resolution and sha256;
  reference rows follow in the order of their files (sorted by file name) and entries;
- columns: ``model, network, px, sha256``, then tasks in alphabetical order (the order
  ``ijepa-eval tasks`` lists them), each task's metrics in the order its records list them (the
  task's declared order); metrics only some records have follow, newest record first;
- several runs of one (model, task): the newest ``created`` wins (ties: the later file path);
- a metric with a 95% bootstrap interval over the test items (``metrics_ci``) shows as
  ``value ± half its width``; else one with a spread over seeds (``metrics_std``) as
  ``mean ± std``; a note under the Markdown table says which is which. Markdown shows two
  decimals (three below 1, e.g. an RMSE in metres), CSV four, with ``task/metric/std`` and
  ``task/metric/ci95_low``, ``task/metric/ci95_high`` columns where any row has them;
- a task's **headline metric** is the first metric it declares, which is the first its records
  list (top-1 for classification, RMSE for depth, 1-shot top-1 for k-shot): `headline` keeps
  that column alone, as the paper's tables do. The Markdown and terminal tables show headline
  metrics by default (``metrics="all"`` adds a table of every metric per task) and can follow
  the paper's Tables 1-5 (``layout="paper"``, `ijepa_eval.results.layout`); CSV, for programs,
  always holds every metric in one flat table.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ijepa_eval import atomic
from ijepa_eval.errors import UserError, writing
from ijepa_eval.results.load import load_records, newest
from ijepa_eval.results.reference import ReferenceRow, load_references
from ijepa_eval.tasks.record import ModelId, RunRecord

if TYPE_CHECKING:
    from ijepa_eval.results.layout import Section

IDENTITY = ("model", "network", "px", "sha256")
FORMATS = ("md", "csv", "table")
RULES = (
    "One row per model (checkpoint sha256, network, resolution); the newest run of each "
    "(model, task) is shown, by its `created` time. ↑ higher is better, ↓ lower is better; "
    "values as the task reports them (accuracies in percent)."
)
SPREAD_NOTE = (
    "± is half the width of the run's 95% bootstrap interval over its test items (seeded, 1,000 "
    "resamples) where the record has one, else the std over seeds (k-shot draws); it is the "
    "test set's sampling noise: whether two runs differ is `ijepa-eval compare`'s question."
)
HEADLINE_NOTE = (
    "One column per task: its headline metric, the first the task declares (top-1 for "
    "classification, RMSE for depth); `--metrics all` adds a table of every metric per task."
)
REFERENCE_NOTE = (
    "Reference rows are copied from publications, not reproduced by ijepa-eval; the protocols "
    "may differ in detail from the tasks here."
)


@dataclass(frozen=True)
class Column:
    task: str
    metric: str
    higher_is_better: bool

    @property
    def key(self) -> str:
        return f"{self.task}/{self.metric}"

    @property
    def header(self) -> str:
        return f"{self.task} {self.metric} {'↑' if self.higher_is_better else '↓'}"


@dataclass(frozen=True)
class Leaderboard:
    """Rows (identity columns + ``kind``, ``source``) and their values and stds, column-aligned."""

    rows: pd.DataFrame  # model, network, px, sha256, kind (measured|reference), source
    values: pd.DataFrame  # columns: Column.key, NaN where a row has no result
    stds: pd.DataFrame  # same shape; NaN where there is no spread over seeds
    columns: tuple[Column, ...]
    lows: pd.DataFrame | None = None  # same shape: the 95% interval's ends; NaN where none
    highs: pd.DataFrame | None = None

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(c.task for c in self.columns))

    def select(self, columns: Iterable[Column], rows: Iterable[int] | None = None) -> Leaderboard:
        """The same table cut down to ``columns`` and ``rows`` (row labels), in the order given:
        a row keeps its label, so it is the same row (and reference) in every cut."""
        columns = tuple(columns)
        keys = [c.key for c in columns]
        index = list(self.rows.index if rows is None else rows)

        def cut(frame: pd.DataFrame | None) -> pd.DataFrame | None:
            return None if frame is None else frame.loc[index, keys]

        return Leaderboard(
            self.rows.loc[index], cut(self.values), cut(self.stds), columns,
            cut(self.lows), cut(self.highs),
        )  # fmt: skip

    def filled(self) -> Leaderboard:
        """Only the rows that have a value in some column."""
        return self.select(self.columns, self.values.index[self.values.notna().any(axis=1)])


def leaderboard(
    results_dir: str | os.PathLike[str],
    reference: str | os.PathLike[str] | None = None,
) -> Leaderboard:
    """Read the run records under ``results_dir`` (and optional reference YAMLs) into a table."""
    references = load_references(reference) if reference is not None else []
    return build_leaderboard(load_records(results_dir), references)


def build_leaderboard(
    records: Iterable[RunRecord], references: Sequence[ReferenceRow] = ()
) -> Leaderboard:
    """Aggregate records (newest per model and task) and reference rows into one table."""
    latest = newest(list(records))
    if not latest and not references:
        raise UserError("nothing to tabulate: no run records and no reference rows")
    models = _models(latest.values())
    long = pd.DataFrame(
        [
            {
                "row": models.index(rec.model),
                "column": f"{rec.task}/{metric}",
                "value": value,
                "std": rec.metrics_std.get(metric, float("nan")),
                "low": rec.metrics_ci.get(metric, [float("nan")] * 2)[0],
                "high": rec.metrics_ci.get(metric, [float("nan")] * 2)[1],
            }
            for rec in latest.values()
            for metric, value in rec.metrics.items()
        ]
        + [
            {"row": len(models) + i, "column": f"{task}/{metric}", "value": v}
            for i, ref in enumerate(references)
            for (task, metric), v in ref.values.items()
        ],
        columns=["row", "column", "value", "std", "low", "high"],
    )
    columns = _columns(latest.values(), references)
    keys = [c.key for c in columns]
    index = range(len(models) + len(references))
    values = long.pivot(index="row", columns="column", values="value").reindex(index, columns=keys)
    frames = {
        name: long.pivot(index="row", columns="column", values=name).reindex(index, columns=keys)
        for name in ("std", "low", "high")
    }
    labels = {r.model: r.label for r in sorted(latest.values(), key=lambda r: r.order)}
    rows = pd.DataFrame(
        [
            {
                "model": labels[m],
                "network": m.network,
                "px": "" if m.resolution is None else str(m.resolution),
                "sha256": m.short_sha,
                "kind": "measured",
                "source": "",
            }
            for m in models
        ]
        + [
            {
                "model": ref.label,
                "network": ref.network,
                "px": "" if ref.px is None else str(ref.px),
                "sha256": "",
                "kind": "reference",
                "source": ref.citation,
            }
            for ref in references
        ],
        columns=[*IDENTITY, "kind", "source"],
        index=index,
    )
    return Leaderboard(rows, values, frames["std"], tuple(columns), frames["low"], frames["high"])


def _models(records: Iterable[RunRecord]) -> list[ModelId]:
    labels = {r.model: r.label for r in sorted(records, key=lambda r: r.order)}
    return sorted(
        labels,
        key=lambda m: (labels[m].lower(), labels[m], m.network, m.resolution or 0, m.sha256),
    )


def _columns(records: Iterable[RunRecord], references: Sequence[ReferenceRow]) -> list[Column]:
    """Tasks alphabetically; within a task, metrics in record order, newest record first."""
    found: dict[tuple[str, str], bool] = {}
    for rec in sorted(records, key=lambda r: r.order, reverse=True):
        for metric in rec.metrics:
            found.setdefault((rec.task, metric), rec.higher_is_better[metric])
    for ref in references:
        for key in ref.values:
            found.setdefault(key, ref.higher_is_better[key])
    tasks = sorted({task for task, _ in found})
    return [Column(t, m, hib) for t in tasks for (task, m), hib in found.items() if task == t]


def headline_metric(record: RunRecord) -> str:
    """A run's headline metric: the first its task declares, so the first the record lists."""
    return next(iter(record.metrics))


def headline(board: Leaderboard) -> Leaderboard:
    """One column per task, its headline metric: the first metric the task declares, which is
    the first its records list. The paper reports one number per task (top-1, or RMSE for
    depth), and so do the default tables, the charts and the HTML report's headline table."""
    first: dict[str, Column] = {}
    for column in board.columns:
        first.setdefault(column.task, column)
    return board.select(first.values())


# --- rendering -------------------------------------------------------------------------------


def to_markdown(board: Leaderboard, *, metrics: str = "headline", layout: str = "flat") -> str:
    """GitHub Markdown: the tables `sections` makes (a ``### title`` over each one that has a
    title), one column per task with ↑/↓ headers, then the rules and the reference sources."""
    from ijepa_eval.results.layout import sections

    shown = sections(board, metrics, layout)
    refs = reference_numbers(board)
    lines = []
    for section in shown:
        lines += [f"### {section.title}", ""] if section.title else []
        lines += [*_md_table(section.board, refs), ""]
    return "\n".join(lines) + "\n" + "\n\n".join(notes(board, shown, metrics)) + "\n"


def _md_table(board: Leaderboard, refs: dict[int, int]) -> list[str]:
    header = [*IDENTITY, *(c.header for c in board.columns)]
    align = [":--", ":--", "--:", ":--", *("--:" for _ in board.columns)]
    lines = [_md_row(header), _md_row(align)]
    for i, row in board.rows.iterrows():
        cells = [
            format_value(board.values.at[i, c.key], spread(board, i, c.key)) for c in board.columns
        ]
        lines.append(_md_row([row_name(board, i, refs), *row[list(IDENTITY[1:])], *cells]))
    return lines


def reference_numbers(board: Leaderboard) -> dict[int, int]:
    """Row label → n of ``[ref n]``, the reference rows numbered in the board's order, so a row
    has the same number in every table it is in."""
    labels = board.rows.index[board.rows["kind"] == "reference"]
    return {label: n for n, label in enumerate(labels, 1)}


def row_name(board: Leaderboard, row: int, refs: dict[int, int]) -> str:
    """The model's name, ``[ref n]`` after it on a reference row."""
    name = board.rows.at[row, "model"]
    return f"{name} [ref {refs[row]}]" if row in refs else name


def notes(board: Leaderboard, shown: Sequence[Section], metrics: str) -> list[str]:
    """The paragraphs under the tables: the rules, what one column per task means, what ±
    means (where a shown value has one), and the source of each reference row."""
    paragraphs = [RULES] + ([HEADLINE_NOTE] if metrics == "headline" else [])
    if any(
        not pd.isna(spread(s.board, i, c.key))
        for s in shown
        for i in s.board.rows.index
        for c in s.board.columns
    ):
        paragraphs.append(SPREAD_NOTE)
    refs = reference_numbers(board)
    if refs:
        cited = [f"- [ref {n}] {board.rows.at[i, 'source']}" for i, n in refs.items()]
        paragraphs += [REFERENCE_NOTE, "\n".join(cited)]
    return paragraphs


def to_csv(board: Leaderboard) -> str:
    """One row per model; ``task/metric`` columns, each followed by ``task/metric/std`` if any."""
    table = board.rows.copy()
    for column in board.columns:
        table[column.key] = board.values[column.key]
        if board.stds[column.key].notna().any():
            table[f"{column.key}/std"] = board.stds[column.key]
        if board.lows is not None and board.lows[column.key].notna().any():
            table[f"{column.key}/ci95_low"] = board.lows[column.key]
            table[f"{column.key}/ci95_high"] = board.highs[column.key]
    return table.to_csv(index=False, float_format="%.4f", lineterminator="\n")


def write_leaderboard(
    board: Leaderboard,
    dest: str | os.PathLike[str],
    fmt: str = "md",
    *,
    metrics: str = "headline",
    layout: str = "flat",
    width: int = 80,
) -> Path:
    """Render ``board`` (`render`) and write it atomically to ``dest``.

    A write the system refuses (a full disk, ``dest`` a folder) is one `UserError`; whatever
    ``dest`` held before is left as it was.
    """
    text = render(board, fmt, metrics=metrics, layout=layout, width=width)
    with writing(f"the {fmt} leaderboard", dest):
        atomic.write_bytes(dest, text.encode("utf-8"))
    return Path(dest)


def render(
    board: Leaderboard,
    fmt: str,
    *,
    metrics: str = "headline",
    layout: str = "flat",
    width: int = 80,
) -> str:
    """``md`` (`to_markdown`), ``table`` (`to_text`, for a terminal ``width`` wide) or ``csv``
    (`to_csv`: every metric in one flat table, whatever ``metrics`` says; no ``layout``)."""
    check_format(fmt, layout)
    if fmt == "csv":
        return to_csv(board)
    if fmt == "table":
        from ijepa_eval.results.terminal import to_text

        return to_text(board, metrics=metrics, layout=layout, width=width)
    return to_markdown(board, metrics=metrics, layout=layout)


def check_format(fmt: str, layout: str = "flat") -> None:
    """One line for a format that does not exist, or a layout CSV cannot have."""
    if fmt not in FORMATS:
        raise UserError(f"--format must be md, csv or table, not {fmt!r}")
    if fmt == "csv" and layout != "flat":
        raise UserError(
            f"--layout {layout} arranges the md and table formats; csv is one flat table of "
            "every metric"
        )


def spread(board: Leaderboard, row: int, key: str) -> float:
    """What follows ``±``: half the 95% interval's width, else the std over seeds, else NaN."""
    if board.lows is not None and board.highs is not None:
        low, high = board.lows.at[row, key], board.highs.at[row, key]
        if not (pd.isna(low) or pd.isna(high)):
            return float(high - low) / 2
    return float(board.stds.at[row, key])


def format_value(value: float, std: float = float("nan")) -> str:
    """Two decimals (percentages); three for values below 1 (an RMSE in metres, say)."""
    if pd.isna(value):
        return ""
    digits = 2 if abs(value) >= 1 else 3
    return f"{value:.{digits}f}" + ("" if pd.isna(std) else f" ± {std:.{digits}f}")


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
