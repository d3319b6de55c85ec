"""Rich renderables for the interactive inspector, made from the report objects only."""

from __future__ import annotations

from typing import Any

import orjson
from rich.console import Group, RenderableType
from rich.json import JSON
from rich.text import Text

from tracer.analysis.diff import TurnDiff
from tracer.analysis.metrics import judge, label, with_unit
from tracer.analysis.model import InspectReport, Summary, TurnDetail, TurnReport
from tracer.trace.records import Direction, Frame
from tracer.views.output import resent_label
from tracer.vocab import (
    BEFORE_CREATE,
    DIFF_KINDS,
    FAILED,
    JUDGED,
    PHASES,
    REFERENCED_BY,
    RESENT,
    STATUS,
    TRIGGERS,
    audio_seconds,
    kb,
    ms,
    plural,
    usd,
)

__all__ = [
    "TURN_COLUMNS",
    "diff_text",
    "frame_body",
    "frame_cells",
    "summary_text",
    "turn_cells",
    "turn_text",
    "waterfall",
]

TURN_COLUMNS = ("#", "status", "sent", "resent", "cached", "ttft", "total", "client")


def status_label(t: TurnReport) -> Text:
    label = "loss" if t.cache_loss else t.status
    if t.warmup:
        label = "warm-up"
    return Text(label, style=STATUS.get(t.status, ""))


def turn_cells(t: TurnReport) -> list[Text | str]:
    """One row of the turn list: the columns of ``TURN_COLUMNS``."""
    share = t.resent_bytes / t.request_bytes if t.request_bytes else 0.0
    resent = Text(f"{share:.0%}", style="bold red" if t.resent_bytes else "dim")
    return [
        str(t.index),
        status_label(t),
        kb(t.request_bytes),
        resent,
        kb(t.cached_tokens),
        ms(t.ttft_ms),
        ms(t.duration_ms),
        ms(t.client_ms),
    ]


def summary_text(report: InspectReport, *, in_flight: int = 0, live: str | None = None) -> Text:
    """The running totals: two short lines that fit 80 columns."""
    s: Summary = report.summary
    t = Text()
    if live:
        t.append(f"{live} ", style="bold magenta")
    t.append(plural(s.turns, "turn"), style="bold")  # as every command counts them
    t.append(f", {s.connections} conn, {ms(s.wall_ms)}")
    if in_flight:
        t.append(f", {in_flight} in flight", style="magenta")
    t.append(f" | sent {kb(s.bytes_sent)}B, resent ")
    t.append(f"{kb(s.resent_bytes)}B", style="bold red" if s.resent_bytes else "")
    t.append(", referenced ")
    t.append(f"{kb(s.referenced_bytes)}B", style="green")
    t.append("\n")
    if s.input_tokens is None and s.output_tokens is None:
        t.append("tokens unknown")
    else:
        t.append(
            f"tokens {kb(s.input_tokens)} in ({kb(s.cached_tokens)} cached) "
            f"{kb(s.output_tokens)} out"
        )
    t.append(f" | ttft p50 {ms(s.ttft_p50_ms)}")
    if s.cost_usd is not None:
        t.append(f" | {usd(s.cost_usd)}")
    if s.voice_turns:
        t.append(f" | voice p50 {ms(s.voice_latency_p50_ms)}")
    if s.cache_losses:
        t.append(f" | {s.cache_losses} cache lost", style="bold red")
    if s.errors:
        t.append(f" | {s.errors} err", style="red")
    return t


def waterfall(t: TurnReport, width: int) -> Text:
    """A bar of the turn's phases scaled to ``width`` cells, and a legend with each phase's
    own length (+N ms), then the cumulative figures the turn table shows (ttft, total)."""
    parts = [(name, value) for name, value in t.phases() if value > 0]
    total = sum(v for _, v in parts) or 1.0
    bar = Text()
    legend = Text()
    for name, value in parts:
        phase = PHASES[name]
        cells = max(1, round(value / total * width))
        style = phase.style
        if name not in BEFORE_CREATE and not t.completed:
            style = FAILED.style
        bar.append(phase.glyph * cells, style=style)
        legend.append(phase.glyph, style=style)
        legend.append(f" {phase.short} +{ms(value)}  ")
    legend.append(f"\n(ttft {ms(t.ttft_ms)}, total {ms(t.duration_ms)})", style="dim")
    bar.truncate(width)
    return Text("\n").join([bar, legend])


def _voice_text(t: TurnReport) -> Text:
    """A voice turn's audio and voice latency, under its heading."""
    v = t.voice
    assert v is not None
    out = Text(
        f"\naudio {audio_seconds(v.input_audio_s)} in, {audio_seconds(v.output_audio_s)} out; "
        f"first audio {ms(v.ttfa_ms)}"
    )
    if v.voice_latency_ms is not None:
        out.append(f"\nvoice latency {ms(v.voice_latency_ms)}", style="bold")
        if v.perceived_latency_ms is not None:
            out.append(f", the speaker waits {ms(v.perceived_latency_ms)}")
    if v.interrupted:
        out.append("\ninterrupted", style="yellow")
        if v.output_audio_cut_s:
            out.append(f", {audio_seconds(v.output_audio_cut_s)} not played", style="yellow")
    return out


def _timing_lines(t: TurnReport) -> list[RenderableType]:
    """The split of a timed turn's first token (``--server-timing``), or nothing."""
    if t.server_timing is None:
        return []
    return [
        Text(
            f"first token, by the service's timing: outside {ms(t.ttft_outside_ms)}, "
            f"pre-inference + queue {ms(t.ttft_service_ms)}, engine {ms(t.ttft_engine_ms)}",
            style="dim",
        )
    ]


def turn_text(t: TurnReport, d: TurnDetail | None, width: int = 60) -> RenderableType:
    """The selected turn: what it sent (resent items marked), its waterfall and its output."""
    head = Text()
    head.append(f"turn {t.index}", style="bold")
    head.append(f" conn {t.conn}" + (f" lane {t.stream_id}" if t.stream_id else "") + ": ")
    head.append_text(Text(t.status, style=STATUS.get(t.status, "")))
    if t.error_code:
        head.append(f" ({t.error_code})", style="red")
    if t.cache_loss:
        head.append(f" cache lost: {t.cache_loss}", style="bold red")
    if t.voice is not None:
        head.append(f"\nresponse {t.response_id or '-'}: {TRIGGERS[t.trigger]}")
        head.append_text(_voice_text(t))
    else:
        head.append(f"\nresponse {t.response_id or '-'}\ncontinues {t.previous_response_id or '-'}")
    parts: list[RenderableType] = [head, Text(""), waterfall(t, max(10, width)), Text("")]
    parts[3:3] = _timing_lines(t)
    ctx = Text()
    ctx.append("request ", style="bold")
    ctx.append(f"{kb(t.request_bytes)}B: {t.input_items} input items, ")
    ctx.append(
        f"{t.resent_items} {resent_label(t.resent_reason)} ({kb(t.resent_bytes)}B)",
        style=_resent_style(t.resent_reason) if t.resent_items else "dim",
    )
    if t.resent_fields:
        ctx.append(f"; fields repeated: {', '.join(t.resent_fields)}", style="dim")
    parts.append(ctx)
    if t.referenced_items:
        parts.append(
            Text(
                f"  ↳ {t.referenced_items} earlier items ({kb(t.referenced_bytes)}B) "
                f"{REFERENCED_BY.get(t.protocol, 'referenced')}, not resent",
                style="green",
            )
        )
    if d is not None:
        for item in d.input:
            line = Text("  ")
            if item["resent"]:
                reason = str(item.get("reason") or "chain")
                line.append(f"{resent_label(reason)} ", style=_resent_style(reason))
            else:
                line.append("new    ", style="green")
            line.append(str(item["summary"]))
            line.truncate(max(20, width + 20), overflow="ellipsis")
            parts.append(line)
    tokens = Text()
    tokens.append("tokens ", style="bold")
    tokens.append(
        f"{t.input_tokens if t.input_tokens is not None else '-'} in "
        f"({t.cached_tokens if t.cached_tokens is not None else '-'} cached), "
        f"{t.output_tokens if t.output_tokens is not None else '-'} out"
    )
    parts.extend([Text(""), tokens, Text("output", style="bold")])
    if d is not None:
        if d.text:
            parts.append(Text("  " + d.text))
        for call in d.calls:
            parts.append(Text(f"  call {call['name']}({call['arguments']})", style="cyan"))
        if d.error_message:
            parts.append(Text(f"  error: {d.error_message}", style="red"))
        if d.event_types:
            kinds = ", ".join(f"{k} x{v}" for k, v in sorted(d.event_types.items()))
            parts.append(Text(f"events: {kinds}", style="dim"))
    return Group(*parts)


def event_type(payload: bytes) -> str:
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return ""
    return str(body.get("type", "")) if isinstance(body, dict) else ""


def frame_cells(frame: Frame, t0_ns: int) -> list[Text | str]:
    """One row of the frame view: time, direction, opcode, size, type and a preview."""
    client = frame.direction is Direction.CLIENT
    preview = frame.payload[:80].decode("utf-8", "replace").replace("\n", " ")
    return [
        f"{(frame.t_ns - t0_ns) / 1e9:.3f}",
        Text("C→S" if client else "S→C", style="cyan" if client else "green"),
        frame.opcode.label,
        kb(len(frame.payload)),
        event_type(frame.payload) if frame.opcode.label == "text" else "",
        preview,
    ]


def frame_body(frame: Frame) -> RenderableType:
    """A frame's payload: pretty-printed JSON, or its text, or a hex dump."""
    try:
        text = frame.payload.decode("utf-8")
    except UnicodeDecodeError:
        data = frame.payload[:4096]
        rows = [f"{i:06x}  {data[i : i + 16].hex(' ')}" for i in range(0, len(data), 16)]
        return Text("\n".join(rows) or "(empty)")
    try:
        orjson.loads(frame.payload)
    except orjson.JSONDecodeError:
        return Text(text or "(empty)", overflow="fold")
    pretty = JSON(text, indent=2).text  # rich's JSON does not wrap: a long message was cut
    pretty.no_wrap, pretty.overflow = False, "fold"
    return pretty


def diff_text(row: TurnDiff | None, a: str, b: str) -> RenderableType:
    """The aligned pair of a turn in two traces: what changed, and the metric deltas."""
    if row is None:
        return Text("this turn has no aligned turn in the other trace", style="yellow")
    head = Text()
    head.append(f"{a} turn {row.a if row.a is not None else '-'}", style="bold")
    head.append("  vs  ")
    head.append(f"{b} turn {row.b if row.b is not None else '-'}", style="bold")
    kind = DIFF_KINDS.get(row.kind)
    head.append(f": {kind.words if kind else row.kind}", style=kind.style if kind else "")
    lines: list[RenderableType] = [head]
    for change in row.changes:
        lines.append(Text(f"  • {change}"))
    if row.deltas:
        lines.append(Text(f"{'metric':<20}{'A':>11}{'B':>11}{'B - A':>12}", style="bold"))
        for name, delta in row.deltas.items():
            va: Any = row.a_values.get(name)
            vb: Any = row.b_values.get(name)
            style = JUDGED.get(judge(name, va, vb), "")  # better or worse, not the sign
            lines.append(
                Text(
                    f"{label(name):<20}{with_unit(name, va):>11}{with_unit(name, vb):>11}"
                    f"{with_unit(name, delta, signed=True):>12}",
                    style,
                )
            )
    return Group(*lines)


def _resent_style(reason: str | None) -> str:
    return RESENT[reason].style if reason in RESENT else "bold red"
