"""The leaderboard drawn for a terminal: the Markdown's tables and notes, fitted to its width.

A Markdown row of five tasks with their intervals is over 120 characters wide. Here a table is
drawn as it is when it fits; else it narrows: a model's name, network, resolution and sha256
share one cell over a few lines, each value sits over its ± and a task's name breaks after an
underscore to the width of its values (`wrap_name`). A table that is still too wide has its
tasks split over several tables, each with the model column and the rows that have a value in
them. So no line is longer than the width and no name is cut.
"""

from __future__ import annotations

import io

from rich.console import Console
from rich.text import Text

from ijepa_eval.results.layout import sections
from ijepa_eval.results.leaderboard import (
    Column,
    Leaderboard,
    format_value,
    notes,
    reference_numbers,
    row_name,
    spread,
)
from ijepa_eval.tables import NAME_WIDTH, Table, natural_width, wrap_name


def to_text(
    board: Leaderboard, *, metrics: str = "headline", layout: str = "flat", width: int = 80
) -> str:
    """The tables of `sections` and the notes under them, as plain text at most ``width``
    characters wide."""
    console = Console(width=width, file=io.StringIO(), color_system=None, highlight=False)
    shown = sections(board, metrics, layout)
    refs = reference_numbers(board)
    for section in shown:
        for n, table in enumerate(_fitted(section.board, refs, console)):
            table.title = (
                section.title if n == 0 or not section.title else f"{section.title} (cont.)"
            )
            console.print(table)
    for paragraph in notes(board, shown, metrics):
        console.print()
        console.print(Text(paragraph))
    return "".join(line.rstrip() + "\n" for line in console.file.getvalue().splitlines())


def _fitted(board: Leaderboard, refs: dict[int, int], console: Console) -> list[Table]:
    """``board`` as one table if it fits as it is, else narrowed, its tasks split in groups."""
    table = _table(board, refs, narrow=False)
    if natural_width(table, console) <= console.width:
        return [table]
    groups: list[list[Column]] = [[]]
    for column in board.columns:
        trial = _table(board.select([*groups[-1], column]).filled(), refs, narrow=True)
        if groups[-1] and natural_width(trial, console) > console.width:
            groups.append([])
        groups[-1].append(column)
    return [_table(board.select(group).filled(), refs, narrow=True) for group in groups]


def _table(board: Leaderboard, refs: dict[int, int], *, narrow: bool) -> Table:
    table = Table()
    table.add_column("model")
    cells = {c.key: [_value(board, i, c, narrow) for i in board.rows.index] for c in board.columns}
    for c in board.columns:
        task, metric = c.task, f"{c.metric} {'↑' if c.higher_is_better else '↓'}"
        if narrow:  # the names as narrow as the values (or the task's longest part)
            width = max([6, *(len(line) for cell in cells[c.key] for line in cell.split("\n"))])
            task = wrap_name(task, width)
            metric = wrap_name(metric, max(width, *map(len, task.split("\n"))))
        table.add_column(f"{task}\n{metric}", justify="right")
    for n, i in enumerate(board.rows.index):
        table.add_row(
            _model(board, i, refs, narrow), *(Text(cells[c.key][n]) for c in board.columns)
        )
    return table


def _model(board: Leaderboard, row: int, refs: dict[int, int], narrow: bool) -> Text:
    """The model's name (``[ref n]`` after it), then network, resolution and sha256 below."""
    network, px, sha = (board.rows.at[row, k] for k in ("network", "px", "sha256"))
    details = " ".join(x for x in (network, f"{px} px" if px else "", sha) if x)
    if not narrow:
        return Text(f"{row_name(board, row, refs)}\n{details}")
    name = wrap_name(board.rows.at[row, "model"], NAME_WIDTH)
    if row in refs:  # "[ref n]" stays in one piece
        marker, last = f"[ref {refs[row]}]", name.rsplit("\n", 1)[-1]
        name += (" " if len(last) + 1 + len(marker) <= NAME_WIDTH else "\n") + marker
    return Text(f"{name}\n{wrap_name(details, NAME_WIDTH)}")


def _value(board: Leaderboard, row: int, column: Column, narrow: bool) -> str:
    text = format_value(board.values.at[row, column.key], spread(board, row, column.key))
    return text.replace(" ± ", "\n± ") if narrow else text
