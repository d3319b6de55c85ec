"""Voice sessions (Realtime, Gemini Live) in their own terms: the voice line of the summary, the
voice turns table, a voice turn's lines, and the voice latency percentiles."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from tracer.analysis.model import Summary, TurnReport
from tracer.views.fit import Column, fit_table, middle
from tracer.views.output import elided, omitted_count, omitted_note
from tracer.vocab import (
    PHASES,
    STATUS,
    TRIGGERS,
    VOICE_PHASES,
    audio_seconds,
    ms,
    plural,
    protocol_label,
)

__all__ = [
    "render_voice_turn",
    "render_voice_turns",
    "voice_legend",
    "voice_line",
    "voice_percentiles",
]


def voice_line(s: Summary) -> Text:
    audio_in, audio_out = audio_seconds(s.input_audio_s), audio_seconds(s.output_audio_s)
    t = Text(f"voice: {audio_in} of audio in, {audio_out} out")
    t.append(
        f"; voice latency (speech end to first audio) p50 {ms(s.voice_latency_p50_ms)} "
        f"p90 {ms(s.voice_latency_p90_ms)}"
    )
    if s.perceived_latency_p50_ms is not None:
        t.append(f", what the speaker waits p50 {ms(s.perceived_latency_p50_ms)}")
    if s.interruptions:
        t.append(f"; {plural(s.interruptions, 'interruption')}", style="yellow")
    t.append("\n")
    return t


VOICE_COLUMNS = [
    Column("#", drop=0),
    Column("conn", drop=4),
    Column("trigger", "left", drop=3),
    Column("response", "left", drop=8, elide=True, least=10),
    Column("items", drop=5),
    Column("audio in", drop=2),
    Column("audio out", drop=2),
    Column("ttfa", drop=6),
    Column("voice", drop=0),
    Column("waits", drop=1),
    Column("total", drop=0),
    Column("status", "left", drop=0, elide=True, least=19, cut="end"),
]
ESTIMATED = frozenset(["estimate", "transcript"])
"""Where a speech end is an estimate (the service sent none)."""

VOICE_LEGEND = (
    "trigger: client (a create) or vad (the server heard the speech end); audio: seconds; "
    "ttfa: turn start to first audio; voice: speech end to first audio; waits: the same plus "
    "the detection's silence, what the speaker waits; ~: the speech end estimated (the "
    "service gave none: the input transcript's end, or the last audible input audio)"
)


def voice_rows(turns: list[TurnReport]) -> list[list[str | Text]]:
    rows: list[list[str | Text]] = []
    head, omitted, tail = elided(turns)
    for t in [*head, None, *tail] if omitted else head:
        if t is None:
            rows.append(["…"])
            continue
        v = t.voice
        assert v is not None
        status = t.status + (f" {t.error_code}" if t.error_code else "")
        if v.interrupted and t.status == "completed":
            status += " (interrupted)"
        rows.append(
            [
                str(t.index),
                str(t.conn),
                t.trigger,
                middle(t.response_id or "-", 16),
                str(t.input_items),
                audio_seconds(v.input_audio_s) if v.input_audio_s else "-",
                audio_seconds(v.output_audio_s) if v.output_audio_s else "-",
                ms(v.ttfa_ms),
                ms(v.voice_latency_ms) + ("~" if v.speech_end in ESTIMATED else ""),
                ms(v.perceived_latency_ms),
                ms(t.duration_ms),
                Text(status, style=STATUS.get(t.status, "")),
            ]
        )
    return rows


def render_voice_turns(turns: list[TurnReport], console: Console) -> None:
    """The voice turns table, its legend, and how many rows it left out."""
    table, _ = fit_table(VOICE_COLUMNS, voice_rows(turns), console.width)
    console.print(table)
    omitted = omitted_count(len(turns))
    if omitted:
        console.print(omitted_note(omitted, "voice turns"), style="dim", markup=False)
    console.print(VOICE_LEGEND, style="dim", markup=False)


def voice_percentiles(s: Summary) -> str:
    """The session's voice latency percentiles, and what the speaker waits."""
    return (
        f"voice latency (speech end to first audio): p50 {ms(s.voice_latency_p50_ms)}  "
        f"p90 {ms(s.voice_latency_p90_ms)}  p99 {ms(s.voice_latency_p99_ms)};  "
        f"what the speaker waits (with the detection's silence): "
        f"p50 {ms(s.perceived_latency_p50_ms)}  p90 {ms(s.perceived_latency_p90_ms)}"
    )


SPEECH_END = {
    "client": ": the end the client sent",
    "transcript": "; an estimate: the input transcript's end_ms, placed on the audio sent",
    "estimate": "; an estimate: the service gave no speech end, the last audible input audio",
}


def render_voice_turn(t: TurnReport, console: Console) -> None:
    v = t.voice
    assert v is not None
    console.print(
        f"{protocol_label(t.protocol)} response {t.response_id or '-'}: {TRIGGERS[t.trigger]}",
        markup=False,
    )
    line = (
        f"audio {audio_seconds(v.input_audio_s)} in, {audio_seconds(v.output_audio_s)} out; "
        f"first audio {ms(v.ttfa_ms)} after the turn began"
    )
    if v.voice_latency_ms is not None:
        line += f"; voice latency {ms(v.voice_latency_ms)} (speech end to first audio"
        line += SPEECH_END.get(v.speech_end or "", "") + ")"
    if v.perceived_latency_ms is not None:
        line += f", the speaker waits {ms(v.perceived_latency_ms)}"
    if v.transcription_delay_ms is not None:
        line += f"; input transcript {ms(v.transcription_delay_ms)} after the speech ended"
    console.print(line, markup=False)
    if v.interrupted:
        cut = (
            f", {audio_seconds(v.output_audio_cut_s)} of its audio not played"
            if v.output_audio_cut_s
            else ""
        )
        console.print(f"interrupted{cut}", style="yellow", markup=False)


def voice_legend() -> Text:
    """The waterfall's phases as a voice turn reads them (speech end, detection, audio)."""
    t = Text("voice turns: ")
    for name, words in VOICE_PHASES.items():
        t.append(PHASES[name].glyph, style=PHASES[name].style)
        t.append(f" {words}  ")
    return t
