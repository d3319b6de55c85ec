"""``tracer stats``: one row per trace, and their total."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from tracer.analysis.model import TraceStats
from tracer.views.fit import Column, fit_table
from tracer.vocab import kb
from tracer.vocab import ms as _ms

__all__ = ["render_stats"]


STATS_COLUMNS = [
    Column("trace", "left"),  # a name: never cut
    Column("conns", drop=3),
    Column("turns"),
    Column("sent"),
    Column("resent"),
    Column("referenced", drop=2),
    Column("cached", drop=4),
    Column("losses", drop=1),
    Column("ttft p50", drop=5),
    Column("status", "left", elide=True, least=12, cut="end"),
]


def render_stats(rows: list[TraceStats], total: TraceStats, console: Console) -> None:
    cells: list[list[str | Text]] = []
    for row in [*rows, total]:
        s = row.summary
        status = "failed" if row.error else ("truncated" if row.truncated else "ok")
        if row is total and row.error:
            status = row.error
        figures = ["-"] * 8
        if s is not None:
            figures = [str(s.connections), str(s.turns), kb(s.bytes_sent), kb(s.resent_bytes),
                       kb(s.referenced_bytes), kb(s.cached_tokens), str(s.cache_losses),
                       _ms(s.ttft_p50_ms)]  # fmt: skip
        cells.append([row.trace, *figures, status])
    table, _ = fit_table(STATS_COLUMNS, cells, console.width)
    console.print(table)
    console.print(
        "sent, resent, referenced: bytes (k = 1,000); cached: input tokens the server had "
        "cached; losses: cache losses; ttft p50: median time to first token",
        style="dim",
        markup=False,
    )
    for row in rows:  # the reasons in full, whatever the width
        if row.error:
            console.print(f"{row.trace}: {row.error}", style="red", markup=False)
