"""Rich views of the session report: inspect, cache, latency and turn."""

from __future__ import annotations

from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tracer.analysis.model import FullTurn, InspectReport, Summary, TurnReport
from tracer.views.findings import render_top_findings
from tracer.views.fit import GAP, Column, fit_table, middle, natural_width
from tracer.views.output import (
    elided,
    omitted_count,
    omitted_note,
    resent_label,
    tokens_phrase,
)
from tracer.views.timeline import bar, time_axis, timeline_legend
from tracer.views.voice import (
    render_voice_turn,
    render_voice_turns,
    voice_legend,
    voice_line,
    voice_percentiles,
)
from tracer.vocab import (
    CONNECTION_STARTS,
    NOT_UNDERSTOOD,
    PHASES,
    RESENT,
    STATUS,
    duration,
    kb,
    plural,
    protocol_label,
    turns_phrase,
    usd,
)
from tracer.vocab import ms as _ms

__all__ = [
    "render_cache",
    "render_inspect",
    "render_latency",
    "render_turn",
]


def _resent_style(t: TurnReport) -> str:
    if not t.resent_bytes:
        return "dim"
    return RESENT[t.resent_reason].style if t.resent_reason in RESENT else "bold red"


def _protocols_phrase(s: Summary) -> str:
    """Which protocols the connections speak: `` (Realtime API)``, or a count of each."""
    kinds = {protocol_label(name): n for name, n in s.protocols.items()}
    if s.unknown_connections:
        kinds[NOT_UNDERSTOOD] = s.unknown_connections
    if len(kinds) == 1:
        return f" ({next(iter(kinds))})"
    return " (" + ", ".join(f"{n} {label}" for label, n in kinds.items()) + ")"


def _summary_lines(s: Summary) -> Text:
    t = Text()
    t.append(
        f"{plural(s.connections, 'connection')}{_protocols_phrase(s)}, "
        f"{turns_phrase(s.turns, s.warmups, s.compactions)}",
        style="bold",
    )
    t.append(f", {duration(s.wall_ms)} wall\n")
    if not s.turns:
        if s.unknown_connections:
            t.append(
                f"No turns: {plural(s.unknown_connections, 'connection')} of a protocol "
                "tracer does not understand (protocol null); its frames and bytes are below.\n"
            )
        else:
            t.append("No turns.\n")
        return t
    if s.voice_turns:
        t.append(voice_line(s))
    t.append(f"sent {kb(s.bytes_sent)}B")
    t.append(f" (a fully incremental client: {kb(s.incremental_bytes)}B)")
    t.append(f", input items {kb(s.input_bytes)}B, ")
    t.append(f"resent {kb(s.resent_bytes)}B", style="bold red" if s.resent_bytes else "")
    reasons = [
        f"{kb(n)}B {RESENT[r].legend.split(':')[0].removeprefix('resent ')}"
        for r, n in (("cache_loss", s.resent_cache_loss_bytes),
                     ("transport", s.resent_transport_bytes))
        if n
    ]  # fmt: skip
    if reasons:
        t.append(f" ({', '.join(reasons)})")
    t.append(f", repeated request fields {kb(s.resent_field_bytes)}B, ")
    t.append(f"referenced {kb(s.referenced_bytes)}B", style="bold green")
    if s.referenced_share is not None:
        t.append(f" ({s.referenced_share:.0%} of the context was referenced, not resent)")
    t.append("\n")
    t.append(tokens_phrase(s))
    if s.cache_losses:
        t.append(f", {plural(s.cache_losses, 'cache loss')}", style="bold red")
    if s.errors:
        t.append(f", {plural(s.errors, 'error')}", style="red")
    t.append("\n")
    if s.cost_usd is not None:
        t.append(f"cost {usd(s.cost_usd)}", style="bold")
        t.append(f" (caching saved {usd(s.saved_by_cache_usd)}")
        if s.unpriced_models:
            t.append(f"; no price for {', '.join(s.unpriced_models)}", style="yellow")
        t.append("; tracer cost explains it)\n")
    t.append(
        f"time to first token p50 {_ms(s.ttft_p50_ms)} p90 {_ms(s.ttft_p90_ms)}; "
        f"turn p50 {_ms(s.duration_p50_ms)} p90 {_ms(s.duration_p90_ms)}; "
        f"client time {_ms(s.client_ms)} in all"
    )
    return t


TURN_COLUMNS = [
    Column("#", drop=0),
    Column("conn", drop=4),
    Column("lane", "left", drop=9),
    Column("response", "left", drop=8, elide=True, least=10),
    Column("items", drop=3),
    Column("sent", drop=0),
    Column("resent", drop=0),
    Column("ref", drop=5),
    Column("cached", drop=6),
    Column("ttft", drop=0),
    Column("total", drop=0),
    Column("client", drop=7),
    Column("status", "left", drop=0, elide=True, least=19, cut="end"),
]
TURN_LEGEND = (
    "sent, resent, cached: bytes and tokens (k = 1,000); ref: items referenced by "
    "previous_response_id; ttft, total, client: time to first token, the turn, the client's "
    "time before it"
)
_MIN_TIMELINE = 24


def turn_rows(report: InspectReport) -> list[list[str | Text]]:
    rows: list[list[str | Text]] = []
    slow = set(report.summary.slowest_turns)
    head, omitted, tail = elided([t for t in report.turns if t.voice is None])
    for t in [*head, None, *tail] if omitted else head:
        if t is None:
            rows.append(["…"])
            continue
        status = t.status + (" (warm-up)" if t.warmup else "")
        if t.error_code:
            status += f" {t.error_code}"
        rows.append(
            [
                str(t.index),
                str(t.conn),
                t.stream_id or "",
                middle(t.response_id or "-", 16),
                str(t.input_items),
                kb(t.request_bytes),
                Text(kb(t.resent_bytes), style="bold red" if t.resent_bytes else "dim"),
                str(t.referenced_items),
                kb(t.cached_tokens),
                _ms(t.ttft_ms),
                Text(_ms(t.duration_ms), style="bold yellow" if t.index in slow else ""),
                _ms(t.client_ms),
                Text(status, style=STATUS.get(t.status, "")),
            ]
        )
    return rows


def turn_table(report: InspectReport, *, width: int) -> tuple[Table, bool]:
    """The turns table in ``width`` cells, with a timeline column if there is room for it."""
    rows = turn_rows(report)
    room = width - natural_width(TURN_COLUMNS, rows) - GAP
    if room < _MIN_TIMELINE:
        table, _ = fit_table(TURN_COLUMNS, rows, width)
        return table, False
    wall = report.summary.wall_ms / 1000 or 1.0
    scale = wall / room
    by_index = {t.index: t for t in report.turns}
    for row in rows:
        t = by_index.get(int(_plain_text(row[0]))) if row[0] != "…" else None
        row.append(bar(t, 0.0, scale, room) if t is not None else "")
    columns = [*TURN_COLUMNS, Column("timeline", "left", drop=0)]
    table, _ = fit_table(columns, rows, width)
    return table, True


def _plain_text(cell: str | Text) -> str:
    return cell.plain if isinstance(cell, Text) else cell


def _note_omitted(console: Console, rows: int, what: str) -> None:
    omitted = omitted_count(rows)
    if omitted:
        console.print(omitted_note(omitted, what), style="dim", markup=False)


def render_inspect(report: InspectReport, console: Console) -> None:
    console.print(_summary_lines(report.summary))
    voiced = [t for t in report.turns if t.voice is not None]
    others = len(report.turns) - len(voiced)
    if others:
        table, timeline = turn_table(report, width=console.width)
        console.print(table)
        _note_omitted(console, others, "turns")
        console.print(TURN_LEGEND, style="dim", markup=False)
        if timeline:
            console.print(timeline_legend())
    if voiced:
        render_voice_turns(voiced, console)
    if not report.turns:
        render_connections(report, console)
    render_top_findings(report, console)


def render_connections(report: InspectReport, console: Console) -> None:
    table = Table(box=None, header_style="bold")
    for name in ("conn", "url", "protocol", "frames C→S", "bytes C→S", "frames S→C", "bytes S→C",
                 "messages"):  # fmt: skip
        table.add_column(name)
    head, omitted, tail = elided(report.connections)
    for c in [*head, None, *tail] if omitted else head:
        if c is None:
            table.add_row("…")
            continue
        kinds = ", ".join(f"{k} x{v}" for k, v in list(c.message_types.items())[:6])
        table.add_row(
            str(c.conn),
            c.url,
            protocol_label(c.protocol),
            str(c.client_frames),
            kb(c.client_bytes),
            str(c.server_frames),
            kb(c.server_bytes),
            kinds,
        )
    console.print(table)
    _note_omitted(console, len(report.connections), "connections")


CACHE_COLUMNS = [
    Column("#"),
    Column("conn", drop=4),
    Column("new"),
    Column("resent"),
    Column("fields resent", drop=3),
    Column("ref items", drop=2),
    Column("ref bytes"),
    Column("cached tok", drop=1),
    Column("note", "left", elide=True, least=16, cut="end"),
]
CACHE_LEGEND = (
    "new, resent, fields resent, ref bytes: bytes (k = 1,000); ref: what "
    "previous_response_id stood for (Realtime: what the connection's conversation held); "
    "cached tok: input tokens the server had cached"
)


def render_cache(report: InspectReport, console: Console) -> None:
    s = report.summary
    console.print(_summary_lines(s))
    rows: list[list[str | Text]] = []
    head, omitted, tail = elided(report.turns)
    for t in [*head, None, *tail] if omitted else head:
        if t is None:
            rows.append(["…"])
            continue
        note = ", ".join(t.resent_fields) if t.resent_fields else ""
        if t.resent_items and t.resent_reason != "chain":
            note = resent_label(t.resent_reason) + (f"; {note}" if note else "")
        if t.cache_loss:
            note = f"cache lost ({t.cache_loss})" + (f"; {note}" if note else "")
        rows.append(
            [
                str(t.index),
                str(t.conn),
                kb(t.new_bytes),
                Text(kb(t.resent_bytes), style=_resent_style(t)),
                kb(t.resent_field_bytes),
                Text(str(t.referenced_items), style="green"),
                Text(kb(t.referenced_bytes), style="green"),
                kb(t.cached_tokens),
                note,
            ]
        )
    table, _ = fit_table(CACHE_COLUMNS, rows, console.width)
    console.print(table)
    _note_omitted(console, len(report.turns), "turns")
    console.print(CACHE_LEGEND, style="dim", markup=False)
    for loss in report.cache_losses:
        cost = (
            f"recovered at turn {loss.recovery_turn} by sending {kb(loss.recovery_input_bytes)}B, "
            f"{kb(loss.recovery_resent_bytes)}B of it resent (the price of the loss)"
            if loss.recovery_turn is not None
            else "never recovered"
        )
        console.print(
            f"[bold red]cache loss[/bold red] at turn {loss.turn} (connection {loss.conn}, "
            f"{loss.kind}): {cost}"
        )
    console.print(
        f"savings: the client sent {kb(s.bytes_sent)}B; sending only new context would have "
        f"been {kb(s.incremental_bytes)}B, {kb(s.saved_bytes)}B less (resent items "
        f"{kb(s.resent_bytes)}B, repeated request fields {kb(s.resent_field_bytes)}B)"
    )


def render_latency(report: InspectReport, console: Console) -> None:
    s = report.summary
    table = Table(title="where the time went", box=None, header_style="bold")
    table.add_column("bucket")
    table.add_column("total", justify="right")
    table.add_column("share of wall", justify="right")
    for name, value, share in s.time_buckets():
        table.add_row(PHASES[name].label, _ms(value), "-" if share is None else f"{share:.0%}")
    table.add_row("wall", _ms(s.wall_ms), "100%" if s.wall_ms > 0 else "-")
    console.print(table)
    console.print(
        f"time to first token: p50 {_ms(s.ttft_p50_ms)}  p90 {_ms(s.ttft_p90_ms)}  "
        f"p99 {_ms(s.ttft_p99_ms)};  turn: p50 {_ms(s.duration_p50_ms)}  "
        f"p90 {_ms(s.duration_p90_ms)}  p99 {_ms(s.duration_p99_ms)}"
    )
    if s.voice_turns:
        console.print(voice_percentiles(s))
    if s.timed_turns:
        console.print(
            f"time to first token by the service's timing ({plural(s.timed_turns, 'turn')}, "
            f"p50): outside the service {_ms(s.ttft_outside_p50_ms)}, its pre-inference and "
            f"queue {_ms(s.ttft_service_p50_ms)}, the engine {_ms(s.ttft_engine_p50_ms)}"
        )
    if s.slowest_turns:
        by_index = {t.index: t for t in report.turns}
        names = ", ".join(
            f"#{i} ({_ms(by_index[i].duration_ms)})" for i in s.slowest_turns if i in by_index
        )
        console.print(f"slowest turns: {names}")
    if report.turns:
        width = max(20, console.width - 16)
        scale = (s.wall_ms / 1000 or 1.0) / width
        console.print(timeline_legend())
        if s.voice_turns:
            console.print(voice_legend())
        console.print(f"{'#':>4} {'total':>8}  (each row on one time axis, 0 to {_ms(s.wall_ms)})")
        head, omitted, tail = elided(report.turns)
        starts = report.connection_starts()
        for t in [*head, None, *tail] if omitted else head:
            if t is None:
                console.print(omitted_note(omitted, "turns"), style="dim")
                continue
            if t.conn in starts:
                word = CONNECTION_STARTS[starts.pop(t.conn)]
                console.print(f"{'':>14}── connection {t.conn} ({word}) ──", style="bold")
            mark = " cache lost" if t.cache_loss else (f" {t.trigger}" if t.voice else "")
            console.print(
                Text.assemble(
                    f"{t.index:>4} {_ms(t.duration_ms):>8} ",
                    bar(t, 0, scale, width - len(mark)),
                    (mark, "bold red"),
                )
            )
        console.print(time_axis(s.wall_ms, width, 14), style="dim", markup=False)


def render_turn(full: FullTurn, console: Console) -> None:
    t, d = full.turn, full.detail
    console.print(
        f"[bold]turn {t.index}[/bold] on connection {t.conn}"
        + (f", lane {escape(t.stream_id)}" if t.stream_id else "")
        + f": {t.status}"
        + (f" ({escape(t.error_code)})" if t.error_code else ""),
        highlight=False,
    )
    if t.voice is not None:
        render_voice_turn(t, console)
    else:
        console.print(
            f"response {t.response_id or '-'}, continues {t.previous_response_id or '-'}",
            markup=False,
        )
    console.print(
        f"sent {t.request_bytes} bytes: {t.input_items} input items "
        f"({t.resent_items} {resent_label(t.resent_reason)}, {t.resent_bytes} bytes), "
        f"{t.referenced_items} items referenced; repeated fields: "
        f"{', '.join(t.resent_fields) or 'none'}",
        markup=False,
    )
    console.print(
        f"first event {_ms(t.ttfe_ms)}, first token {_ms(t.ttft_ms)}, "
        f"generation {_ms(t.generation_ms)}, total {_ms(t.duration_ms)}, "
        f"client time before {_ms(t.client_ms)}"
    )
    if t.server_timing is not None:
        console.print(
            f"first token, by the service's timing: outside it {_ms(t.ttft_outside_ms)}, "
            f"pre-inference and queue {_ms(t.ttft_service_ms)}, engine {_ms(t.ttft_engine_ms)}"
        )
    console.print("[bold]input[/bold]")
    for item in d.input:
        mark = f"[red]{resent_label(item.get('reason'))}[/red] " if item.get("resent") else ""
        console.print(f"  {mark}{escape(item['summary'])}", highlight=False)
    more = d.input_omitted
    if more > 0:
        console.print(f"  [dim]… {more:,} more input items (--all lists them)[/dim]")
    console.print("[bold]output[/bold]")
    if d.text:
        console.print(Group(Text("  " + d.text)))
    cut = d.text_omitted
    if cut > 0:
        console.print(f"  [dim]… {cut:,} more characters of text (--all shows them)[/dim]")
    for call in d.calls:
        console.print(f"  call {escape(str(call['name']))}({escape(str(call['arguments']))})")
    if d.error_message:
        console.print(f"  [red]error[/red]: {escape(d.error_message)}")
