"""``tracer whatif``: a projection side by side with what was recorded."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from tracer.analysis.whatif import MODES, Figures, WhatIf
from tracer.vocab import count, kb, ms, usd

__all__ = ["render_whatif"]

_ROWS = (
    ("items_sent", "input items sent", count),
    ("item_bytes_sent", "their bytes", kb),
    ("request_bytes", "request bytes", kb),
    ("input_tokens", "input tokens", count),
    ("cached_tokens", "cached tokens", count),
    ("output_tokens", "output tokens", count),
    ("cost_usd", "cost", usd),
    ("duration_ms", "turn time, in all", ms),
    ("connections", "connections", count),
)


def _change(name: str, recorded: Figures, projected: Figures) -> str:
    a, b = getattr(recorded, name), getattr(projected, name)
    if a is None or b is None:
        return "-"
    if a == b:
        return "same"
    return f"{(b - a) / a:+.0%}" if a else "new"


def render_whatif(name: str, whatif: WhatIf, console: Console, *, turns: bool = False) -> None:
    console.print(f"[bold]{name}[/bold] if {MODES[whatif.mode]} ({whatif.mode}):", highlight=False)
    table = Table(box=None, header_style="bold")
    for column in ("", "recorded", "projected", "change"):
        table.add_column(column, justify="left" if not column else "right")
    for field, label, fmt in _ROWS:
        mark = "" if field in whatif.exact else " ~"
        table.add_row(
            label + mark,
            fmt(getattr(whatif.recorded, field)),
            fmt(getattr(whatif.projected, field)),
            _change(field, whatif.recorded, whatif.projected),
        )
    console.print(table)
    if turns:
        per = Table(box=None, header_style="bold")
        for column in ("#", "items", "→", "bytes", "→ ", "cached", "→  ", "cost", "→   "):
            per.add_column(column, justify="right")
        for t in whatif.turns:
            r, p = t.recorded, t.projected
            per.add_row(
                str(t.index), count(r.items_sent), count(p.items_sent), kb(r.item_bytes_sent),
                kb(p.item_bytes_sent), count(r.cached_tokens), count(p.cached_tokens),
                usd(r.cost_usd), usd(p.cost_usd),
            )  # fmt: skip
        console.print(per)
    console.print("~ an estimate; the rest follows from the recorded items and usage. Assumed:")
    for line in whatif.assumptions:
        console.print(f"  - {line}", highlight=False)
    console.print(
        "Measure it instead: tracer rerun FILE --incremental --transport websocket "
        "--upstream URL -o NEW.trace",
        highlight=False,
    )
