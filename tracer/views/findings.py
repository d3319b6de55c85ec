"""``tracer findings``: what went wrong, what it cost, what to change; and, over many
traces, which problem costs the most."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tracer.analysis.findings import Finding, find, group
from tracer.analysis.model import InspectReport
from tracer.vocab import plural, size, usd

__all__ = ["SEVERITY_STYLE", "finding_line", "render_findings", "render_top_findings", "where"]

SEVERITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "dim"}


def finding_line(f: Finding) -> str:
    """One finding in one line: its code, what happened and what it cost."""
    costs = [
        text
        for text in (
            usd(f.cost_usd) if f.cost_usd is not None else None,
            f"{size(f.bytes)}" if f.bytes is not None else None,
        )
        if text
    ]
    return f"{f.code}: {f.what}" + (f" ({', '.join(costs)})" if costs else "")


def where(f: Finding, limit: int = 12) -> str:
    """Where a finding happened: "turns 1, 2; connections 3" (the first ``limit`` each)."""
    parts = []
    if f.turns:
        more = " …" if len(f.turns) > limit else ""
        parts.append("turns " + ", ".join(map(str, f.turns[:limit])) + more)
    if f.connections:
        parts.append("connections " + ", ".join(map(str, f.connections[:limit])))
    return "; ".join(parts)


def render_top_findings(report: InspectReport, console: Console, top: int = 3) -> None:
    """The weightiest findings of a session, a line each (``tracer inspect``)."""
    found = find(report)[:top]
    if found:
        console.print("[bold]findings[/bold] (tracer findings explains them):")
    for f in found:
        line = Text("  ")
        line.append(f.severity, style=SEVERITY_STYLE[f.severity])
        line.append(" " + finding_line(f))
        console.print(line)


def render_findings(found: list[tuple[str, list[Finding]]], console: Console) -> None:
    for name, findings in found:
        console.print(f"[bold]{name}[/bold]: {plural(len(findings), 'finding')}", highlight=False)
        for f in findings:
            console.print(
                f"  [{SEVERITY_STYLE[f.severity]}]{f.severity:6}[/] {finding_line(f)}",
                highlight=False,
            )
            places = where(f)
            if places:
                console.print(f"         where: {places}", style="dim", markup=False)
            console.print(f"         change: {f.change}", markup=False)
    if len(found) > 1 and any(findings for _, findings in found):
        table = Table(title="by code, over every trace", box=None, header_style="bold")
        for column in ("code", "traces", "findings", "bytes", "cost"):
            table.add_column(column, justify="left" if column == "code" else "right")
        for code, row in group(found).items():
            table.add_row(
                code,
                str(row["traces"]),
                str(row["findings"]),
                size(row["bytes"]) if row["bytes"] else "-",
                usd(row["cost_usd"]),
            )
        console.print(table)
