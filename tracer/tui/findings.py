"""The inspector's findings panel: what went wrong, ranked, each leading to its turns."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from tracer.analysis.finding import Finding
from tracer.views.findings import SEVERITY_STYLE as _STYLE
from tracer.views.findings import where
from tracer.vocab import usd

__all__ = ["FindingsScreen"]


def finding_text(f: Finding) -> Text:
    """One finding in full: what happened, where, what it cost, the change."""
    t = Text()
    t.append(f"{f.code}", style="bold")
    t.append(f" ({f.severity})\n", style=_STYLE[f.severity])
    t.append(f"{f.what}\n")
    places = where(f)
    if places:
        t.append(f"where: {places}\n", style="cyan")
    if f.cost_usd is not None:
        t.append(f"cost: {usd(f.cost_usd)}\n")
    t.append(f"change: {f.change}\n", style="green")
    if f.turns:
        t.append("enter: go to its first turn", style="dim")
    return t


class FindingsScreen(ModalScreen[int | None]):
    """The session's findings; enter goes to the chosen finding's first turn."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,w", "dismiss", "Close"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, findings: list[Finding]) -> None:
        super().__init__()
        self.findings = findings

    def compose(self) -> ComposeResult:
        with Vertical(id="findings-box"):
            yield DataTable(id="findings", cursor_type="row")
            yield Static(id="finding-body")

    def on_mount(self) -> None:
        table = self.query_one("#findings", DataTable)
        for column in ("severity", "code", "cost", "turns"):
            table.add_column(column, key=column)
        for f in self.findings:
            table.add_row(
                Text(f.severity, style=_STYLE[f.severity]),
                f.code,
                usd(f.cost_usd),
                str(len(f.turns)) if f.turns else "-",
            )
        body = self.query_one("#finding-body", Static)
        if not self.findings:
            body.update(Text("no findings: nothing went wrong that tracer can see", "green"))
        else:
            body.update(finding_text(self.findings[0]))
        table.focus()

    @on(DataTable.RowHighlighted, "#findings")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if 0 <= event.cursor_row < len(self.findings):
            body = self.query_one("#finding-body", Static)
            body.update(finding_text(self.findings[event.cursor_row]))

    @on(DataTable.RowSelected, "#findings")
    def _selected(self, event: DataTable.RowSelected) -> None:
        f = self.findings[event.cursor_row] if event.cursor_row < len(self.findings) else None
        self.dismiss(f.turns[0] if f is not None and f.turns else None)

    async def action_dismiss(self, result: int | None = None) -> None:
        self.dismiss(result)
