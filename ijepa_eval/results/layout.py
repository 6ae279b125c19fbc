"""Which tables a leaderboard is shown as: one table of every task, or the paper's Tables 1-5.

- ``metrics="headline"`` (the default): each task's headline metric (`headline`), one column
  per task. ``"all"`` adds, after those tables, one table per task with every metric it has.
- ``layout="flat"`` (the default): one table, tasks in alphabetical order, every row.
- ``layout="paper"``: the tables the ``ijepa_paper`` suite declares (``tables:`` in
  ``tasks/suites/ijepa_paper.yaml``), in its order: Table 1 ImageNet linear, Table 2 1% of
  ImageNet, Table 3 transfer, Table 4 Clevr (both without the IN-22k models), Table 5 the IN-1k
  and IN-22k models on the tasks of Tables 3 and 4. Rows follow the paper:
  the reference rows in their files' order, each preceded by our rows of the same model (the
  same registry name), so a reproduction sits right above the number it reproduces; our other
  models follow. A table shows the rows that have a value in it and that its pretraining filter
  admits, and is left out when it has none; tasks the paper does not report (depth, k-shot)
  follow in one more table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ijepa_eval.errors import UserError
from ijepa_eval.results.leaderboard import Column, Leaderboard, headline
from ijepa_eval.tasks.suite import SuiteTable, load_suite

if TYPE_CHECKING:
    from ijepa_eval.models.registry import RegistryEntry

Entries = dict[int, "RegistryEntry | None"]  # row label → its model's registry entry

METRICS = ("headline", "all")
LAYOUTS = {"flat": None, "paper": "ijepa_paper"}  # layout → the suite whose tables it follows
OTHER_TASKS = "Other tasks (not in the paper)"


@dataclass(frozen=True)
class Section:
    """One table to show: its title (None: a lone table needs none) and its cut of the board."""

    title: str | None
    board: Leaderboard


def sections(board: Leaderboard, metrics: str = "headline", layout: str = "flat") -> list[Section]:
    """The tables that show ``board``, in order (see the module's docstring)."""
    check_view(metrics, layout)
    top = headline(board)
    suite = LAYOUTS[layout]
    shown = [Section(None, top)] if suite is None else _tables(top, load_suite(suite).tables)
    if metrics == "all":
        tasks = dict.fromkeys(c.task for s in shown for c in s.board.columns)
        shown += [
            Section(f"{task}: every metric", board.select(_of(board, [task])).filled())
            for task in tasks
        ]
    return shown


def check_view(metrics: str, layout: str) -> None:
    """One line for a ``--metrics`` or ``--layout`` value that does not exist."""
    if metrics not in METRICS:
        raise UserError(f"--metrics must be headline or all, not {metrics!r}")
    if layout not in LAYOUTS:
        raise UserError(f"--layout must be flat or paper, not {layout!r}")


def _tables(top: Leaderboard, tables: Sequence[SuiteTable]) -> list[Section]:
    """The suite's tables over the headline board, then one of the tasks none of them has."""
    entries = _registry_entries(top)
    order = _paper_order(top, entries)
    shown = []
    for table in tables:
        rows = [i for i in order if table.shows(_pretraining(entries[i]))]
        shown.append(Section(table.title, top.select(_of(top, table.tasks), rows).filled()))
    placed = {task for table in tables for task in table.tasks}
    others = [task for task in top.tasks if task not in placed]
    shown.append(Section(OTHER_TASKS, top.select(_of(top, others), order).filled()))
    return [s for s in shown if s.board.columns and len(s.board.rows)]


def _of(board: Leaderboard, tasks: Sequence[str]) -> list[Column]:
    """The board's columns of ``tasks``, in the order of ``tasks``."""
    return [c for task in tasks for c in board.columns if c.task == task]


def _paper_order(board: Leaderboard, entries: Entries) -> list[int]:
    """Reference rows in order, each after our rows of its model; our other rows last."""
    name = {i: entry.name if entry else board.rows.at[i, "model"] for i, entry in entries.items()}
    kind = board.rows["kind"]
    ours = [i for i in board.rows.index if kind[i] == "measured"]
    order: list[int] = []
    for ref in (i for i in board.rows.index if kind[i] == "reference"):
        order += [i for i in ours if name[i] == name[ref] and i not in order] + [ref]
    return order + [i for i in ours if i not in order]


def _pretraining(entry: RegistryEntry | None) -> str | None:
    return None if entry is None else entry.pretrain_data


def _registry_entries(board: Leaderboard) -> Entries:
    """Row label → its model's checkpoint registry entry (by name or file name), or None."""
    from ijepa_eval.models.registry import lookup

    known = {label: lookup(label) for label in set(board.rows["model"])}
    return {i: known[board.rows.at[i, "model"]] for i in board.rows.index}
