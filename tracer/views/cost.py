"""``tracer cost``: what each session cost, per model and per conversation."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from tracer.analysis.model import InspectReport
from tracer.analysis.pricing import Pricing
from tracer.vocab import plural, usd

__all__ = ["render_cost"]


def render_cost(
    reports: list[tuple[str, InspectReport]], pricing: Pricing, console: Console
) -> None:
    for name, report in reports:
        s = report.summary
        console.print(f"[bold]{name}[/bold]: {usd(s.cost_usd)}", highlight=False)
        if s.cost_usd is not None:
            written = (
                f"; writing the cache cost {usd(s.cache_write_usd)}"
                if s.cache_write_usd is not None
                else ""
            )
            console.print(
                f"  caching saved {usd(s.saved_by_cache_usd)}{written}; "
                f"warm-ups {usd(s.warmup_cost_usd)}",
                highlight=False,
            )
            resent = [
                (r, getattr(s, f"resent_{r}_usd")) for r in ("chain", "cache_loss", "transport")
            ]
            parts = [f"{usd(v)} {r.replace('_', ' ')}" for r, v in resent if v]
            if parts:
                console.print(
                    f"  resent context (an estimate, by bytes): {', '.join(parts)}", highlight=False
                )
        if s.unpriced_models:
            console.print(
                f"  no price for {', '.join(s.unpriced_models)}: give one with --pricing FILE",
                style="yellow",
                highlight=False,
            )
        table = Table(box=None, header_style="bold")
        for column in ("model", "turns", "input", "cached", "cache write", "output", "cost"):
            table.add_column(column, justify="left" if column == "model" else "right")
        for row in report.costs_by("model"):
            table.add_row(
                str(row["model"] or "-"),
                str(row["turns"]),
                _n(row["input_tokens"]),
                _n(row["cached_tokens"]),
                _n(row["cache_write_tokens"]),
                _n(row["output_tokens"]),
                usd(row["cost_usd"]),
            )
        console.print(table)
        conversations = report.costs_by("conversation")
        if len(conversations) > 1:
            console.print(
                f"  {plural(len(conversations), 'conversation')}: "
                + ", ".join(
                    f"#{r['conversation']} {usd(r['cost_usd'])}" for r in conversations[:8]
                ),
                highlight=False,
            )
    console.print(
        f"prices: tracer's table of {pricing.date}"
        + (f", extended by {', '.join(pricing.sources)}" if pricing.sources else "")
        + " (USD per million tokens; docs/analysis.md lists the sources)",
        style="dim",
        highlight=False,
    )


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"
