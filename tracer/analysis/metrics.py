"""What each compared metric is called, its unit, and which way is better (no I/O).

One table for every view of a diff (terminal, TUI, HTML): a change is judged, not signed.
Less resent context or latency is better, more cached tokens is better; the number of
turns or the client's own time is neither, and is shown without a judgement.
"""

from __future__ import annotations

from dataclasses import dataclass

from tracer.vocab import size

__all__ = ["METRICS", "Metric", "judge", "label", "with_unit"]


@dataclass(frozen=True, slots=True)
class Metric:
    label: str  # the human name
    unit: str  # "B" (bytes), "tok", "ms", "s" (seconds of audio), "$" (USD), "" (a count)
    better: int  # +1: more is better, -1: less is better, 0: neither


METRICS: dict[str, Metric] = {
    "request_bytes": Metric("sent", "B", -1),
    "bytes_sent": Metric("sent", "B", -1),
    "input_bytes": Metric("input items", "B", 0),
    "resent_bytes": Metric("resent", "B", -1),
    "referenced_bytes": Metric("referenced", "B", +1),
    "resent_field_bytes": Metric("fields resent", "B", -1),
    "incremental_bytes": Metric("if fully incremental", "B", 0),
    "cached_tokens": Metric("cached tokens", "tok", +1),
    "input_tokens": Metric("input tokens", "tok", -1),
    "output_tokens": Metric("output tokens", "tok", 0),
    "turns": Metric("turns", "", 0),
    "connections": Metric("connections", "", 0),
    "cache_losses": Metric("cache losses", "", -1),
    "errors": Metric("errors", "", -1),
    "handshake_ms": Metric("handshake", "ms", -1),
    "ttfe_ms": Metric("to first event", "ms", -1),
    "ttft_ms": Metric("to first token", "ms", -1),
    "generation_ms": Metric("generation", "ms", 0),
    "duration_ms": Metric("turn time", "ms", -1),
    "client_ms": Metric("client time", "ms", 0),
    "ttft_p50_ms": Metric("to first token p50", "ms", -1),
    "ttft_p90_ms": Metric("to first token p90", "ms", -1),
    "duration_p50_ms": Metric("turn time p50", "ms", -1),
    "duration_p90_ms": Metric("turn time p90", "ms", -1),
    "wall_ms": Metric("wall time", "ms", 0),
    "voice_latency_ms": Metric("voice latency", "ms", -1),
    "voice_latency_p50_ms": Metric("voice latency p50", "ms", -1),
    "voice_latency_p90_ms": Metric("voice latency p90", "ms", -1),
    "input_audio_s": Metric("audio in", "s", 0),
    "output_audio_s": Metric("audio out", "s", 0),
    "interruptions": Metric("interruptions", "", 0),
    "cost_usd": Metric("cost", "$", -1),
}


def label(name: str) -> str:
    """The human name of a metric (its key when it has none)."""
    m = METRICS.get(name)
    return m.label if m else name.replace("_", " ")


def judge(name: str, a: float | None, b: float | None) -> str:
    """How B compares with A on this metric: "better", "worse", "same" or "changed" (a
    change that is neither better nor worse), or "" when one side has no value."""
    if a is None or b is None:
        return ""
    if a == b or (name.endswith("_ms") and round(a) == round(b)):
        return "same"
    m = METRICS.get(name)
    if m is None or m.better == 0:
        return "changed"
    return "better" if (b > a) == (m.better > 0) else "worse"


def with_unit(name: str, value: float | None, *, signed: bool = False) -> str:
    """A value of this metric with its unit: "1.6 kB", "34 ms", "316 tok", "3"."""
    if value is None:
        return "-"
    unit = METRICS[name].unit if name in METRICS else ""
    if unit in ("ms", "tok") or (unit == "B" and abs(value) < 1e3):
        value = round(value)  # what is shown: no "+0 ms" or "-0 ms" for a rounding
    sign = "+" if signed and value > 0 else ("-" if value < 0 else "")
    v = abs(value)
    if unit == "ms":
        return f"{sign}{v:,.0f} ms"
    if unit == "B":
        return sign + size(v)
    if unit == "tok":
        return f"{sign}{v:,.0f} tok"
    if unit == "s":
        return f"{sign}{v:,.2f} s"
    if unit == "$":
        return f"{sign}${v:,.4f}"
    return f"{sign}{v:,.0f}" if float(v).is_integer() else f"{sign}{v:,.1f}"
