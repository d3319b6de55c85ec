"""Waterfalls in the terminal: a turn's phases as glyphs on a shared time axis, their legend
and a time axis with round ticks (``tracer inspect`` and ``tracer latency``)."""

from __future__ import annotations

import math

from rich.text import Text

from tracer.analysis.model import TurnReport

__all__ = ["bar", "ms", "round_step", "time_axis", "timeline_legend"]


def ms(v: float | None) -> str:
    """A time for the terminal views: "34ms", "1.02s", "-" when unknown."""
    return "-" if v is None else (f"{v / 1000:.2f}s" if v >= 1000 else f"{v:.0f}ms")


_BAR_CELLS = {  # TurnReport.phases() name: glyph, style
    "client": ("·", "blue"),
    "handshake": ("▓", "magenta"),
    "ttfe": ("░", "dim"),
    "token_wait": ("▒", "yellow"),
    "finish": ("╌", "dim"),
    "generation": ("█", "green"),
}
_BEFORE_CREATE = ("client", "handshake")  # phases that end where the create is sent
_PHASE_NAMES = {"client": "client time", "handshake": "handshake", "ttfe": "to first event",
                "token_wait": "to first token", "generation": "generation",
                "finish": "the rest, no tokens"}  # fmt: skip


def timeline_legend() -> Text:
    """What each glyph of a waterfall stands for (distinct glyphs: readable without colour)."""
    parts: list[str | tuple[str, str]] = [("timeline: ", "bold")]
    for name, (char, style) in _BAR_CELLS.items():
        parts += [(char, style), f" {_PHASE_NAMES[name]}  "]
    parts += [("█", "red"), " failed or cut short"]
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
    client time and handshake ending where the create was sent."""
    bar = Text()
    phases = [(name, value / 1000) for name, value in t.phases()]
    begin = round(t.t_start_s / scale) if scale else 0
    before = sum(round(v / scale) for n, v in phases if n in _BEFORE_CREATE) if scale else 0
    bar.append(" " * min(max(0, begin - before), width))
    for name, seconds in phases:
        char, style = _BAR_CELLS[name]
        if name in ("generation", "finish") and t.status != "completed":
            style = "red"
        n = round(seconds / scale) if scale else 0
        bar.append(char * n, style=style)
    if not t.duration_ms:
        bar.append("▏", style="red")
    bar.truncate(width)
    return bar
