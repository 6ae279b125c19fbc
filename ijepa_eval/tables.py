"""Terminal tables that keep every character, so that they read in an 80-column terminal.

rich shrinks a table to the terminal's width and, by default, cuts a cell that no longer fits
into "…": `ijepa-eval models` showed "ViT-H/…" at 80 columns. Every table the command line
prints is a `Table` from here instead, whose cells wrap at spaces and fold a word that is
longer than its column onto the next line: a name may break, never lose its end. So that
folding is rare, a table keeps its cells short (a name over two lines, a legend under it):
`wrap_name` breaks a long ``snake_case`` or ``path/like`` name where it reads well, and
`fitted` draws a table with a cell per line where that fits, else its narrow form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rich import table
from rich.console import Console, RenderableType
from rich.measure import Measurement

NAME_WIDTH = 22  # a name column that leaves room for others: "ijepa_vith16_448_in1k" fits
BREAKS = (" ", "/,", "_-+:")  # where a name breaks: the first of these that makes it fit


class Table(table.Table):
    """A `rich.table.Table` whose columns fold instead of cutting with "…" (and wrap: a column
    that may not wrap is cropped silently when too narrow, so ``no_wrap`` is refused); titles
    sit on the left, as every ijepa-eval table has them."""

    def __init__(self, *args: Any, title_justify: Any = "left", **kwargs: Any) -> None:
        super().__init__(*args, title_justify=title_justify, **kwargs)

    def add_column(self, *args: Any, no_wrap: bool = False, **kwargs: Any) -> None:
        if no_wrap:
            raise ValueError("a column that may not wrap is cropped when the terminal is narrow")
        super().add_column(*args, overflow="fold", **kwargs)


@dataclass(frozen=True)
class Col:
    """A column of `fitted`: its header, alignment, and the width its cells (names, numbers
    with spaces) break to in the narrow form (None: as they are)."""

    header: str
    right: bool = False
    wrap: int | None = None


def fitted(
    columns: Sequence[Col],
    rows: Iterable[Sequence[str]],
    console: Console,
    *,
    title: str | None = None,
    under: Sequence[int] = (),
) -> Table:
    """A table of ``rows`` (cells as rich markup) with every cell on one line if that fits
    ``console``; else narrow: cells broken to their column's ``wrap`` width, and each column
    whose index is in ``under`` stacked under the column before it (one column less)."""
    rows = [list(row) for row in rows]
    table = _table(columns, rows, title, narrow=None)
    if natural_width(table, console) > console.width:
        table = _table(columns, rows, title, narrow=set(under))
    return table


def _table(
    columns: Sequence[Col], rows: list[list[str]], title: str | None, narrow: set[int] | None
) -> Table:
    def cells(values: Sequence[str]) -> list[str]:
        out: list[str] = []
        for i, (col, value) in enumerate(zip(columns, values, strict=True)):
            if narrow is not None and col.wrap:
                value = wrap_name(value, col.wrap)
            if narrow is not None and i in narrow:
                out[-1] += f"\n{value}"
            else:
                out.append(value)
        return out

    table = Table(title=title)
    kept = [c for i, c in enumerate(columns) if narrow is None or i not in narrow]
    for col, header in zip(kept, cells([c.header for c in columns]), strict=True):
        table.add_column(header, justify="right" if col.right else "left")
    for row in rows:
        table.add_row(*cells(row))
    return table


def natural_width(renderable: RenderableType, console: Console) -> int:
    """The width ``renderable`` takes where nothing makes it wrap."""
    return Measurement.get(console, console.options.update_width(10_000), renderable).maximum


def wrap_name(name: str, width: int) -> str:
    """``name`` on lines of at most ``width`` characters, broken after a space, else after
    ``/`` or ``,``, else after ``_``, ``-``, ``+`` or ``:`` (``facebook/ijepa_vith14_1k`` at 22:
    ``facebook/`` / ``ijepa_vith14_1k``; ``imagenet_kshot`` at 9: ``imagenet_`` / ``kshot``);
    a part that cannot break keeps a line of its own, however long."""
    return "\n".join(line.rstrip() for line in _lines(name, width, BREAKS) if line.strip())


def _lines(text: str, width: int, breaks: tuple[str, ...]) -> list[str]:
    if len(text) <= width or not breaks:
        return [text]
    lines: list[str] = []
    for part in re.split(f"(?<=[{re.escape(breaks[0])}])", text):
        if lines and len(lines[-1] + part.rstrip()) <= width:
            lines[-1] += part
        else:
            lines += _lines(part, width, breaks[1:])
    return lines
