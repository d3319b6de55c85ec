"""Waterfalls in the terminal: a turn's phases as glyphs on a shared time axis, their legend
and a time axis with round ticks (``tracer inspect`` and ``tracer latency``)."""

from __future__ import annotations

import math

from rich.text import Text

from tracer.analysis.model import TurnReport
from tracer.vocab import BEFORE_CREATE, FAILED, PHASES, ms

__all__ = ["bar", "round_step", "time_axis", "timeline_legend"]


def timeline_legend() -> Text:
    """What each glyph of a waterfall stands for (distinct glyphs: readable without colour)."""
    parts: list[str | tuple[str, str]] = [("timeline: ", "bold")]
    for phase in PHASES.values():
        parts += [(phase.glyph, phase.style), f" {phase.short}  "]
    parts += [(FAILED.glyph, FAILED.style), f" {FAILED.label}"]
    return Text.assemble(*parts)


def time_axis(wall_ms: float, width: int, indent: int) -> str:
    """A time axis under ``width`` cells of waterfall covering ``wall_ms``: round ticks."""
    if wall_ms <= 0 or width < 12:
        return ""
    step = round_step(wall_ms / max(1, width // 12))
    line = [" "] * (width + 2)  # the rows' bars end at ``width``; a label may run 2 past
    t = 0.0
    while t <= wall_ms:
        at = round(t / wall_ms * (width - 1))
        label = f"|{ms(t) if t else '0'}"
        if at + len(label) <= len(line) and all(c == " " for c in line[at : at + len(label)]):
            line[at : at + len(label)] = label
        t += step
    return " " * indent + "".join(line).rstrip()


def round_step(raw: float) -> float:
    """The round value (1, 2 or 5 times a power of ten) at or above ``raw``."""
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 5, 10):
        if m * power >= raw:
            return float(m * power)
    return float(10 * power)


def bar(t: TurnReport, start_s: float, scale: float, width: int) -> Text:
    """A turn's waterfall on a shared time axis: its phases (``TurnReport.phases``), the
    client time and handshake ending where the create was sent. A turn too short for a cell
    of its own still gets one, so a failure of under a cell's time shows."""
    bar = Text()
    phases = [(name, value / 1000) for name, value in t.phases()]
    begin = round(t.t_start_s / scale) if scale else 0
    before = sum(round(v / scale) for n, v in phases if n in BEFORE_CREATE) if scale else 0
    bar.append(" " * min(max(0, begin - before), width))
    ended = t.completed
    drawn = 0
    for name, seconds in phases:
        phase = PHASES[name]
        style = phase.style if ended or name in BEFORE_CREATE else FAILED.style
        n = round(seconds / scale) if scale else 0
        bar.append(phase.glyph * n, style=style)
        drawn += n if name not in BEFORE_CREATE else 0
    if not drawn:
        bar.append("▏" if ended else FAILED.glyph, style="dim" if ended else FAILED.style)
    bar.truncate(width)
    return bar
