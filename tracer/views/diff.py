"""The side-by-side view of ``tracer diff``."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from tracer.analysis.diff import DiffReport, TurnDiff
from tracer.analysis.metrics import judge, label, with_unit
from tracer.views.fit import Column, fit_table
from tracer.views.output import elided, omitted_note
from tracer.vocab import DIFF_KINDS, JUDGED

__all__ = ["render_diff"]

_ROW_METRICS = ("request_bytes", "resent_bytes", "cached_tokens", "ttft_ms", "duration_ms",
                "client_ms")  # fmt: skip
_STACK_BELOW = 100  # columns: narrower terminals get one block per row instead of a table
DIFF_COLUMNS = [
    Column("A"),
    Column("B"),
    Column("row", "left"),
    *(Column(label(m), drop=1 if m == "client_ms" else 0) for m in _ROW_METRICS),
    Column("what differs", "left", elide=True, least=20, cut="end"),
]


def _pair(name: str, a: Any, b: Any) -> Text:
    """ "A → B" with units, coloured by whether B is better or worse on this metric."""
    text = Text(f"{with_unit(name, a)} → {with_unit(name, b)}")
    verdict = judge(name, a, b)
    if verdict in JUDGED:
        text.stylize(JUDGED[verdict])
    return text


def render_diff(report: DiffReport, console: Console) -> None:
    console.print(f"[bold]A[/bold] {escape(report.a)}\n[bold]B[/bold] {escape(report.b)}")
    if report.identical:
        console.print("[green]no differences[/green]: the sessions match turn by turn")
    for line in report.headline:
        console.print(f"  • {escape(line)}")
    head, omitted, tail = elided(report.turns)
    rows = [*head, None, *tail] if omitted else head
    if console.width < _STACK_BELOW:
        _stacked(rows, console, omitted)
    else:
        cells: list[list[str | Text]] = []
        for row in rows:
            if row is None:
                cells.append(["…"])
                continue
            a, b = row.a_values, row.b_values
            cells.append(
                [
                    "-" if row.a is None else str(row.a),
                    "-" if row.b is None else str(row.b),
                    Text(DIFF_KINDS[row.kind].words, style=DIFF_KINDS[row.kind].style),
                    *(_pair(m, a.get(m), b.get(m)) for m in _ROW_METRICS),
                    "; ".join(c for c in row.changes if c),
                ]
            )
        table, _ = fit_table(DIFF_COLUMNS, cells, console.width)
        console.print(table)
        if omitted:
            console.print(omitted_note(omitted, "rows"), style="dim", markup=False)
    console.print(
        "green: B is better on that figure; red: worse; yellow: changed, neither better nor worse",
        style="dim",
        markup=False,
    )
    ta, tb = report.totals_a, report.totals_b
    console.print(
        "totals: "
        + ", ".join(
            f"{label(m)} {with_unit(m, ta.get(m))} → {with_unit(m, tb.get(m))}"
            for m in ("bytes_sent", "resent_bytes", "cached_tokens")
        )
    )


def _stacked(rows: list[TurnDiff | None], console: Console, omitted: int) -> None:
    """One block per aligned row: which turns, the verdict, the figures, what differs."""
    for row in rows:
        if row is None:
            console.print(omitted_note(omitted, "rows"), style="dim", markup=False)
            continue
        a, b = row.a_values, row.b_values
        title = Text.assemble(
            ("A " + ("-" if row.a is None else f"#{row.a}"), "bold"),
            " ↔ ",
            ("B " + ("-" if row.b is None else f"#{row.b}"), "bold"),
            "  ",
            (DIFF_KINDS[row.kind].words, DIFF_KINDS[row.kind].style),
        )
        console.print(title)
        figures = Text("  ")
        for m in _ROW_METRICS:
            if a.get(m) is None and b.get(m) is None:
                continue
            figures.append(f"{label(m)} ")
            figures.append_text(_pair(m, a.get(m), b.get(m)))
            figures.append("  ")
        console.print(figures)
        changes = "; ".join(c for c in row.changes if c)
        if changes:
            console.print(Text("  differs: " + changes), overflow="ellipsis")
