"""What ``tracer record`` shows: a live status line while recording, a summary at the end."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.text import Text

from tracer.vocab import plural, size

if TYPE_CHECKING:
    from tracer.capture.recorder import RecorderStats

__all__ = ["RecordSummary", "live_status", "render_summary", "title_status"]


@dataclass(slots=True)
class RecordSummary:
    """The outcome of one ``tracer record`` run."""

    trace: str
    connections: int
    frames: int
    bytes: int
    creates: int
    dropped_frames: int
    write_error: str | None
    command_exit: int | None
    trace_ok: bool
    unrecorded: list[dict[str, Any]] = field(default_factory=list)  # per connection
    compact_error: str | None = None  # recompressing on exit failed: kept as recorded
    compacting_pid: int | None = None  # recompressing in the background, by this process
    warning: str | None = None  # a launched command made no connection through the proxy
    tunnelled: int | None = None  # --forward: connections passed through unrecorded
    refused_tls: int | None = None  # --forward: clients that refused the run's certificate

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _StatusLine:
    def __init__(self, stats: RecorderStats, url: str) -> None:
        self.stats = stats
        self.url = url

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        line = self.text()
        line.no_wrap = True
        line.truncate(options.max_width, overflow="ellipsis")  # one line, whatever the width
        yield line

    def text(self) -> Text:
        s = self.stats
        line = Text.assemble(
            ("● rec ", "bold red"),
            f"{self.url}  ",
            (f"{s.open_connections}", "bold"),
            f" open / {plural(s.connections, 'connection')}  ",
            (f"{s.frames:,}", "bold"),
            f" frames  {size(s.bytes)}  ",
            (f"{s.creates}", "bold"),
            " turns",
        )
        if s.dropped_frames:
            line.append(f"  {s.dropped_frames} dropped", style="bold yellow")
        if s.write_error:
            line.append(f"  write error: {s.write_error}", style="bold red")
        return line


def live_status(stats: RecorderStats, url: str, console: Console) -> Live:
    """A status line on ``console`` (stderr) that redraws itself in place four times a
    second, cut to the terminal's width (start() / stop())."""
    return Live(_StatusLine(stats, url), console=console, refresh_per_second=4, transient=True)


def title_status(stats: RecorderStats) -> str:
    """The status for a terminal's title, while a launched command owns the screen: the
    escape sequence that sets it (OSC 0)."""
    text = (
        f"tracer record: {plural(stats.connections, 'connection')}, "
        f"{plural(stats.frames, 'frame')}, {plural(stats.creates, 'turn')}"
    )
    return f"\x1b]0;{text}\x07"


def render_summary(summary: RecordSummary, console: Console) -> None:
    console.print(
        f"tracer record: {plural(summary.connections, 'connection')}, "
        f"{plural(summary.frames, 'frame')}, {plural(summary.bytes, 'byte')}, "
        f"{plural(summary.creates, 'turn')} → {summary.trace}"
        + ("" if summary.trace_ok else " [red](trace damaged)[/red]")
    )
    if summary.dropped_frames:
        console.print(f"  [yellow]{summary.dropped_frames} frames were not recorded:[/yellow]")
        for gap in summary.unrecorded:
            spans = ", ".join(f"#{a}" if a == b else f"#{a}-#{b}" for a, b in gap["ranges"])
            console.print(
                f"    connection {gap['conn']}: {gap['frames']} frames ({spans})"
                + ("" if gap["exact"] else ", the last range approximate"),
                markup=False,
            )
    if summary.tunnelled:
        console.print(
            f"  {plural(summary.tunnelled, 'connection')} to other hosts passed through "
            "unrecorded (--intercept HOST records one)"
        )
    if summary.refused_tls:
        console.print(
            f"  [yellow]{plural(summary.refused_tls, 'client')} refused tracer's certificate: "
            "not recorded (does the client trust the run's CA?)[/yellow]"
        )
    if summary.write_error:
        console.print(f"  [red]write error: {summary.write_error}[/red]")
    if summary.compacting_pid is not None:
        console.print(
            f"  recompressing it in the background (pid {summary.compacting_pid}); "
            "it reads the same meanwhile",
            style="dim",
        )
