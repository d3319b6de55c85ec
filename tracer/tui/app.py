"""``tracer tui``: an interactive inspector of a session (Textual), and its live mode.

The app holds a ``Session`` (the incremental analysis) and shows what it reports: a turn list,
the selected turn's detail and waterfall, the raw frames of a turn, and with ``against`` the
aligned turn of another trace. In live mode a worker thread follows the trace file as the
recorder writes it and hands each run of new records to the app.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.events import Resize
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Input, Static

from tracer.analysis.diff import DiffReport, TurnDiff
from tracer.analysis.findings import find
from tracer.analysis.model import InspectReport, TurnReport
from tracer.analysis.search import frame_matches, turn_matches
from tracer.analysis.session import Session, select_frames
from tracer.live import follow
from tracer.trace.format import TraceError
from tracer.trace.reader import open_trace
from tracer.trace.records import Frame, Record
from tracer.tui.findings import FindingsScreen
from tracer.tui.render import (
    TURN_COLUMNS,
    diff_text,
    frame_body,
    frame_cells,
    summary_text,
    turn_cells,
    turn_text,
)

__all__ = ["InspectorApp"]

NARROW = 110  # below this many columns the turn list sits above the detail


class FramesScreen(Screen[None]):
    """The raw frames of one turn: a list, the selected frame pretty-printed, and search."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("slash", "search", "Search"),
        Binding("q", "app.quit", "Quit"),  # as everywhere in the app: never "back"
    ]

    def __init__(self, title: str, frames: list[Frame], t0_ns: int) -> None:
        super().__init__()
        self.title_text = title
        self.frames = frames
        self.t0_ns = t0_ns
        self.shown: list[Frame] = []

    def compose(self) -> ComposeResult:
        yield Static(id="frames-title")
        with Horizontal(id="frames-body"):
            yield DataTable(id="frames", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="frame-view"):
                yield Static(id="frame-json")
        yield Input(placeholder="search the payloads (Enter: keep, Esc: clear)", id="search")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#frames", DataTable)
        table.add_columns("t (s)", "from", "opcode", "size", "type", "payload")
        self.query_one("#search", Input).display = False
        self._fill("")
        table.focus()

    def _fill(self, query: str) -> None:
        table = self.query_one("#frames", DataTable)
        table.clear()
        self.shown = [f for f in self.frames if not query or frame_matches(f, query)]
        for i, frame in enumerate(self.shown):
            table.add_row(*frame_cells(frame, self.t0_ns), key=str(i))
        title = f"{self.title_text}: {len(self.shown)} of {len(self.frames)} frames"
        if query:
            title += f" matching {query!r}"
        self.query_one("#frames-title", Static).update(Text(title, style="bold"))
        self._show(0)

    def _show(self, row: int) -> None:
        body = self.query_one("#frame-json", Static)
        if 0 <= row < len(self.shown):
            body.update(frame_body(self.shown[row]))
        else:
            body.update(Text("no frames", style="dim"))

    @on(DataTable.RowHighlighted, "#frames")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show(event.cursor_row)

    def action_search(self) -> None:
        box = self.query_one("#search", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        self._fill(event.value.strip())

    @on(Input.Submitted, "#search")
    def _search_done(self, event: Input.Submitted) -> None:
        event.input.display = False
        self.query_one("#frames", DataTable).focus()

    def action_back(self) -> None:
        box = self.query_one("#search", Input)
        if box.value:  # the first Esc clears an active search
            box.value = ""
            box.display = False
            self.query_one("#frames", DataTable).focus()
            return
        self.app.pop_screen()


class DiffScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,d", "dismiss", "Close"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, row: TurnDiff | None, a: str, b: str) -> None:
        super().__init__()
        self.row, self.a, self.b = row, a, b

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="diff-box"):
            yield Static(diff_text(self.row, self.a, self.b), id="diff-body")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)


class InspectorApp(App[None]):
    """The inspector. Give it a finished ``Session`` or, with ``live``, a trace to follow."""

    TITLE = "tracer"
    CSS = """
    #summary { height: auto; max-height: 3; padding: 0 1; }
    #body { height: 1fr; }
    #turns { width: 64; height: 100%; }
    #detail { width: 1fr; height: 100%; padding: 0 1; border-left: solid $primary-darken-2; }
    #body.narrow { layout: vertical; }
    #body.narrow #turns { width: 100%; height: 45%; }
    #body.narrow #detail { width: 100%; height: 1fr; border-left: none;
                           border-top: solid $primary-darken-2; }
    #filter, #search { dock: bottom; margin-bottom: 1; }
    #frames-title { height: 1; padding: 0 1; }
    #frames-body { height: 1fr; }
    #frames { width: 3fr; }
    #frame-view { width: 2fr; border-left: solid $primary-darken-2; }
    #frames-body.narrow { layout: vertical; }
    #frames-body.narrow #frames { width: 100%; height: 50%; }
    #frames-body.narrow #frame-view { width: 100%; height: 1fr; border-left: none; }
    DiffScreen { align: center middle; }
    #diff-box { width: 80%; max-width: 90; height: 80%; border: round $primary; padding: 0 1;
                background: $surface; }
    FindingsScreen { align: center middle; }
    #findings-box { width: 90%; max-width: 110; height: 85%; border: round $primary;
                    padding: 0 1; background: $surface; }
    #findings { height: auto; max-height: 50%; }
    #finding-body { height: auto; padding-top: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("slash", "filter", "Filter"),
        Binding("f", "frames", "Frames"),
        Binding("d", "diff", "Diff"),
        Binding("w", "findings", "What went wrong"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(
        self,
        name: str,
        session: Session | None = None,
        *,
        live: Path | None = None,
        against: DiffReport | None = None,
        banner: str | None = None,
        path: Path | None = None,
    ) -> None:
        super().__init__()
        self.trace_name = name
        self.path = path or live  # where frames over the session's budget are read again
        self.banner = banner
        self.session = session or Session(details=True)
        self.report: InspectReport = self.session.report()
        self.live = live
        self.live_state: str | None = "following" if live else None
        self.against = against
        self.query_text = ""
        self.shown: list[TurnReport] = []
        self._stop = threading.Event()

    def compose(self) -> ComposeResult:
        yield Static(id="summary")
        with Horizontal(id="body"):
            yield DataTable(id="turns", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="detail"):
                yield Static(id="detail-body")
        yield Input(placeholder="filter: words, status:S, type:EVENT, conn:N, loss:", id="filter")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.banner or self.trace_name
        table = self.query_one("#turns", DataTable)
        for name in TURN_COLUMNS:
            table.add_column(name, key=name)
        self.query_one("#filter", Input).display = False
        self._layout(self.size.width)
        self._refill()
        table.focus()
        if self.live is not None:
            self._follow(self.live)

    def on_unmount(self) -> None:
        self._stop.set()

    def on_resize(self, event: Resize) -> None:
        self._layout(event.size.width)

    def _layout(self, width: int) -> None:
        for body in self.query("#body"):
            body.set_class(width < NARROW, "narrow")
        for screen in self.screen_stack:
            for body in screen.query("#frames-body"):
                body.set_class(width < NARROW, "narrow")

    # --- data -----------------------------------------------------------------------------

    @work(thread=True, exclusive=True)
    def _follow(self, path: Path) -> None:
        try:
            result = follow(
                path, lambda batch: self.call_from_thread(self.add_records, batch), stop=self._stop
            )
            how = result.how
        except TraceError as exc:
            how = f"error: {exc}"
        if not self._stop.is_set():
            self.call_from_thread(self._live_ended, how)

    def _live_ended(self, how: str) -> None:
        self.live_state = {"finished": "recording finished"}.get(how, how)
        self.report = self.session.finish() if how == "finished" else self.session.report()
        self._update_summary()

    def add_records(self, records: list[Record]) -> None:
        """New records of a live trace: analyse them and show the turns that ended."""
        ended = self.session.feed(records)
        self.report = self.session.report()
        table = self.query_one("#turns", DataTable)
        at_end = table.row_count == 0 or table.cursor_row >= table.row_count - 1
        for t in ended:
            if self._matches(t):
                self.shown.append(t)
                table.add_row(*turn_cells(t), key=str(t.index))
        if ended and at_end and table.row_count:
            table.move_cursor(row=table.row_count - 1)
        self._update_summary()

    def _matches(self, t: TurnReport) -> bool:
        return not self.query_text or turn_matches(t, self.session.detail(t.index), self.query_text)

    def _update_summary(self) -> None:
        live = None
        if self.live_state is not None:
            live = f"● {self.live_state}, {self.session.records:,} records |"
        text = summary_text(self.report, in_flight=self.session.in_flight, live=live)
        if self.banner:
            text = Text.assemble((self.banner, "dim"), "\n", text)
        if self.query_text:
            text.append(f" | filter {self.query_text!r}: {len(self.shown)} shown", style="cyan")
        self.query_one("#summary", Static).update(text)

    def _refill(self) -> None:
        table = self.query_one("#turns", DataTable)
        keep = self.selected
        table.clear()
        self.shown = [t for t in self.report.turns if self._matches(t)]
        for t in self.shown:
            table.add_row(*turn_cells(t), key=str(t.index))
        if keep is not None:
            for row, t in enumerate(self.shown):
                if t.index == keep.index:
                    table.move_cursor(row=row)
        self._update_summary()
        self._show_detail()

    @property
    def selected(self) -> TurnReport | None:
        tables = self.query("#turns").results(DataTable)
        table = next(tables, None)
        if table is None:
            return None
        row = table.cursor_row
        return self.shown[row] if 0 <= row < len(self.shown) else None

    def _show_detail(self) -> None:
        body = self.query_one("#detail-body", Static)
        t = self.selected
        if t is None:
            body.update(Text("no turns" + (" match the filter" if self.query_text else ""), "dim"))
            return
        width = self.query_one("#detail").size.width - 2
        body.update(turn_text(t, self.session.detail(t.index), width=max(20, width)))

    @on(DataTable.RowHighlighted, "#turns")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    # --- actions --------------------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.value = self.query_text
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.query_text = event.value.strip()
        self._refill()

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        event.input.display = False
        self.query_one("#turns", DataTable).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.query_text = ""
        self._refill()
        self.query_one("#turns", DataTable).focus()

    def action_frames(self) -> None:
        t = self.selected
        if t is None:
            self.notify("no turn selected", severity="warning")
            return
        detail = self.session.detail(t.index)
        frames = detail.frames if detail is not None else []
        title = f"turn {t.index}"
        if detail is not None and not detail.frames_kept and self.path is not None:
            try:
                with open_trace(self.path) as reader:
                    frames = select_frames(reader, t.conn, detail.t_create_ns, detail.t_end_ns)
            except TraceError as exc:
                self.notify(f"cannot read the frames again: {exc}", severity="error")
            title += " (frames read again from the trace: all of the connection's in its time)"
        screen = FramesScreen(title, frames, self.report.summary.t0_ns)
        self.push_screen(screen)
        self.call_after_refresh(self._layout, self.size.width)

    def action_diff(self) -> None:
        if self.against is None:
            self.notify("no other trace: start with --against B", severity="warning")
            return
        t = self.selected
        if t is None:
            return
        row = next((r for r in self.against.turns if r.a == t.index), None)
        self.push_screen(DiffScreen(row, self.against.a, self.against.b))

    def action_findings(self) -> None:
        self.push_screen(FindingsScreen(find(self.report)), self._go_to_turn)

    def _go_to_turn(self, index: int | None) -> None:
        """Select turn ``index`` in the list (clearing a filter that hides it)."""
        if index is None:
            return
        if all(t.index != index for t in self.shown):
            self.action_clear_filter()
        for row, t in enumerate(self.shown):
            if t.index == index:
                self.query_one("#turns", DataTable).move_cursor(row=row)
                self._show_detail()
