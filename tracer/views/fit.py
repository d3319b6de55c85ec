"""Tables that fit the terminal: columns sized from their data, low-value ones dropped first.

Each column says how much it is worth keeping (``drop``: 0 is never dropped, a higher
number goes first) and whether its text may be cut in the middle to fit (``elide``: ids and
paths, whose ends tell them apart). An index or a name is never truncated: a table that
still does not fit after dropping and eliding is simply wider than the terminal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text

__all__ = ["Column", "fit_table", "middle", "natural_width"]

GAP = 2  # between columns: one space of padding on each side


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    justify: str = "right"
    drop: int = 0  # 0: always shown; higher numbers are dropped first when space runs out
    elide: bool = False  # may be cut down to ``least`` cells ("resp_9e…c189")
    least: int = 8
    cut: str = "middle"  # where an elided text loses characters: "middle" or "end"


def middle(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells with "…" in the middle (both ends tell ids apart)."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    left = width // 2
    right = width - 1 - left
    return text[:left] + "…" + (text[-right:] if right else "")


def _plain(cell: str | Text) -> str:
    return cell.plain if isinstance(cell, Text) else cell


def natural_width(columns: Sequence[Column], rows: Sequence[Sequence[str | Text]]) -> int:
    """The width of the table with every non-empty column at its natural width."""
    widths = [
        max([len(c.name)] + [len(_plain(r[i])) for r in rows if i < len(r)])
        for i, c in enumerate(columns)
        if c.drop == 0 or any(i < len(r) and _plain(r[i]).strip() for r in rows)
    ]
    return sum(widths) + GAP * (len(widths) - 1)


def fit_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str | Text]],
    width: int,
    *,
    header_style: str = "bold",
) -> tuple[Table, list[str]]:
    """A table of ``rows`` within ``width`` cells, and the names of the columns dropped.

    A column whose cells are all empty is dropped first (unless ``drop`` is 0), then the
    others by ``drop``, highest first; then elidable columns shrink to what is left."""
    natural = [
        max([len(c.name)] + [len(_plain(r[i])) for r in rows if i < len(r)])
        for i, c in enumerate(columns)
    ]
    keep = [
        i
        for i, c in enumerate(columns)
        if c.drop == 0 or any(i < len(r) and _plain(r[i]).strip() for r in rows)
    ]

    def total(widths: dict[int, int]) -> int:
        return sum(widths[i] for i in keep) + GAP * (len(keep) - 1)

    # Elidable columns give way first (down to their least), then columns are dropped by
    # value, then what room is left goes back to the elided columns.
    def least(i: int) -> int:
        c = columns[i]
        return min(natural[i], max(c.least, len(c.name))) if c.elide else natural[i]

    widths = {i: least(i) for i in keep}
    droppable = sorted((i for i in keep if columns[i].drop), key=lambda i: (-columns[i].drop, -i))
    while total(widths) > width and droppable:
        keep.remove(droppable.pop(0))
    room = width - total(widths)
    for i in keep:
        if columns[i].elide and room > 0:
            grow = min(room, natural[i] - widths[i])
            widths[i] += grow
            room -= grow
    table = Table(box=None, pad_edge=False, header_style=header_style, show_edge=False)
    for i in keep:
        c = columns[i]
        table.add_column(c.name, justify=c.justify, no_wrap=True, width=widths[i])  # type: ignore[arg-type]
    for row in rows:
        cells: list[str | Text] = []
        for i in keep:
            cell = row[i] if i < len(row) else ""
            if len(_plain(cell)) > widths[i]:
                text, w = _plain(cell), widths[i]
                short = middle(text, w) if columns[i].cut == "middle" else text[: w - 1] + "…"
                cell = Text(short, style=cell.style) if isinstance(cell, Text) else short
            cells.append(cell)
        table.add_row(*cells)
    dropped = [columns[i].name for i in range(len(columns)) if i not in keep]
    return table, dropped
