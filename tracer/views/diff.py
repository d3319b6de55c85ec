"""The side-by-side view of ``tracer diff``."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tracer.analysis.diff import DiffReport
from tracer.views.output import count, elided, omitted_note

__all__ = ["render_diff"]

_KIND_STYLE = {"same": "", "changed": "yellow", "added": "green", "removed": "red"}


def _num(v: Any, unit: str = "") -> str:
    if v is None:
        return "-"
    if unit == "ms":
        return f"{v:.0f}"
    return f"{v:,}"


def _pair(a: Any, b: Any, unit: str = "") -> Text:
    text = Text(f"{_num(a, unit)} → {_num(b, unit)}")
    if a is not None and b is not None and a != b:
        text.stylize("bold red" if b > a else "bold green")
    return text


def render_diff(report: DiffReport, console: Console) -> None:
    console.print(f"[bold]A[/bold] {escape(report.a)}\n[bold]B[/bold] {escape(report.b)}")
    if report.identical:
        console.print("[green]no differences[/green]: the sessions match turn by turn")
    for line in report.headline:
        console.print(f"  • {escape(line)}")
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("A", "B", "row", "sent", "resent", "cached tok", "ttft ms", "total ms",
                 "client ms", "what differs"):  # fmt: skip
        table.add_column(name, justify="left" if name in ("row", "what differs") else "right")
    head, omitted, tail = elided(report.turns)
    for row in [*head, None, *tail] if omitted else head:
        if row is None:
            table.add_row("…")
            continue
        a, b = row.a_values, row.b_values
        table.add_row(
            "-" if row.a is None else str(row.a),
            "-" if row.b is None else str(row.b),
            Text(row.kind, style=_KIND_STYLE[row.kind]),
            _pair(a.get("request_bytes"), b.get("request_bytes")),
            _pair(a.get("resent_bytes"), b.get("resent_bytes")),
            _pair(a.get("cached_tokens"), b.get("cached_tokens")),
            _pair(a.get("ttft_ms"), b.get("ttft_ms"), "ms"),
            _pair(a.get("duration_ms"), b.get("duration_ms"), "ms"),
            _pair(a.get("client_ms"), b.get("client_ms"), "ms"),
            escape("; ".join(c for c in row.changes if c)),
        )
    console.print(table)
    if omitted:
        console.print(omitted_note(omitted, "rows"), style="dim", markup=False)
    ta, tb = report.totals_a, report.totals_b
    console.print(
        f"totals: sent {ta['bytes_sent']:,} → {tb['bytes_sent']:,} bytes, resent "
        f"{ta['resent_bytes']:,} → {tb['resent_bytes']:,}, cached tokens "
        f"{count(ta['cached_tokens'])} → {count(tb['cached_tokens'])}"
    )
