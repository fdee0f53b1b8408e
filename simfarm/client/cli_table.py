"""Tables of the CLI (``list``, ``workers``, ``watch``) that fit the terminal, and stay
parseable in a pipe.

On a terminal, columns are dropped in a fixed order (least useful first) until the
table fits the width; the flexible column (a job's name) is then shortened with an
ellipsis. Nothing wraps over several lines. In a pipe, every column is printed in full,
tab-separated, one header line then one line per row, without colour: ``cut -f1`` gives
the first column.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

GAP = 2  # spaces between two columns
MIN_FLEX = 16  # a flexible column is not shortened below this before other columns go
MIN_SHOWN = 4  # narrower than this, the flexible column goes too


@dataclass(frozen=True)
class Column:
    """A column: its header, when it goes on a narrow terminal (``drop``: higher goes
    first, 0 never), whether it may be shortened, and the style of a value."""

    header: str
    drop: int = 0
    flexible: bool = False
    style: Callable[[str], str] | None = None


def _width(column: Column, rows: Sequence[Sequence[str]], index: int) -> int:
    return max([len(column.header), *(len(row[index]) for row in rows)])


def fit(columns: Sequence[Column], rows: Sequence[Sequence[str]],
        width: int) -> tuple[list[int], int | None, int]:
    """The indexes of the columns shown in ``width`` characters, the width the flexible
    column gets (None: its natural width) and the table's width. Columns that are never
    dropped are never shortened either (an id must stay whole): when they alone do not
    fit, the table is wider than ``width``."""
    natural = [_width(c, rows, i) for i, c in enumerate(columns)]
    kept = list(range(len(columns)))
    flexible = next((i for i in kept if columns[i].flexible), None)

    def total(flex: int | None = None) -> int:
        return sum(flex if flex is not None and i == flexible else natural[i]
                   for i in kept) + GAP * (len(kept) - 1)

    squeezed = None if flexible is None else min(MIN_FLEX, natural[flexible])
    for i in sorted((i for i in kept if columns[i].drop), key=lambda i: -columns[i].drop):
        if total(squeezed) <= width:
            break
        kept.remove(i)
    if flexible is None or total() <= width:
        return kept, None, total()
    room = width - (total() - natural[flexible])
    if room < MIN_SHOWN:
        kept.remove(flexible)
        return kept, None, total()
    return kept, room, width


def rich_table(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int,
               title: str | None = None) -> Table:
    """The table for a terminal ``width`` characters wide (wider only when the columns
    that are never dropped need it)."""
    kept, flex, needed = fit(columns, rows, width)
    table = Table(title=title, box=None, header_style="bold", padding=(0, GAP // 2),
                  pad_edge=False, width=needed if needed > width else None)
    for i in kept:
        column = columns[i]
        table.add_column(column.header, no_wrap=True, overflow="ellipsis",
                         max_width=flex if column.flexible else None)
    for row in rows:
        cells = []
        for i in kept:
            value, style = escape(row[i]), columns[i].style
            cells.append(f"[{style(row[i])}]{value}[/]" if style and style(row[i]) else value)
        table.add_row(*cells)
    return table


def plain_lines(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> list[str]:
    """Tab-separated header and rows (tabs and newlines in a value become spaces)."""

    def clean(value: str) -> str:
        return " ".join(value.replace("\t", " ").splitlines())

    return ["\t".join(clean(c.header) for c in columns),
            *("\t".join(clean(v) for v in row) for row in rows)]


def print_table(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> None:
    """Print on a terminal as a fitted table, elsewhere as tab-separated lines."""
    console = Console()
    if console.is_terminal:
        table = rich_table(columns, rows, console.width)
        console.print(table, width=max(console.width, table.width or 0), crop=False)
        return
    for line in plain_lines(columns, rows):
        click.echo(line)
