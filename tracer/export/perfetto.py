"""Chrome trace-event JSON for Perfetto and chrome://tracing: the latency waterfall (no I/O).

One process (the session) with one track per connection and lane. Each turn is a slice with
nested slices for the wait for the first token and the generation; the client's own time
before a turn is a slice of its own on the same track; cache losses and errors are instant
events. Times are microseconds since the trace's first record.
"""

from __future__ import annotations

from typing import Any

from tracer.analysis.model import InspectReport, TurnReport

__all__ = ["export_perfetto"]

_PID = 1


def _turn_name(t: TurnReport) -> str:
    name = f"turn {t.index}"
    if t.warmup:
        name += " (warm-up)"
    if t.status != "completed":
        name += f" [{t.status}]"
    return name


# Over 60 lines: the trace events' mapping, read top to bottom.
def export_perfetto(report: InspectReport, *, title: str = "tracer") -> dict[str, Any]:
    """The trace-event document of a session report."""
    events: list[dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": _PID, "tid": 0, "args": {"name": title}},
    ]
    tracks: dict[tuple[int, str | None], int] = {}
    urls = {c.conn: c.url for c in report.connections}
    for t in report.turns:
        key = (t.conn, t.stream_id)
        tid = tracks.get(key)
        if tid is None:
            tid = tracks[key] = len(tracks) + 1
            label = f"conn {t.conn} {t.transport} {urls.get(t.conn, '')}".rstrip()
            if t.stream_id:
                label += f" lane {t.stream_id}"
            events.append(
                {"ph": "M", "name": "thread_name", "pid": _PID, "tid": tid, "args": {"name": label}}
            )
            events.append(
                {"ph": "M", "name": "thread_sort_index", "pid": _PID, "tid": tid,
                 "args": {"sort_index": tid}}
            )  # fmt: skip
        start = round(t.times_ms(report.summary.t0_ns)[1] * 1e3, 3)  # µs since it began
        dur = round((t.duration_ms or 0.0) * 1e3, 3)
        base = {"pid": _PID, "tid": tid}
        if t.client_ms:
            client = round(t.client_ms * 1e3, 3)
            events.append(
                {**base, "ph": "X", "cat": "client", "name": "client time",
                 "ts": round(start - client, 3), "dur": client, "args": {"before_turn": t.index}}
            )  # fmt: skip
        events.append(
            {
                **base,
                "ph": "X",
                "cat": "turn",
                "name": _turn_name(t),
                "ts": start,
                "dur": dur,
                "args": {
                    "response_id": t.response_id,
                    "previous_response_id": t.previous_response_id,
                    "status": t.status,
                    "model": t.model,
                    "request_bytes": t.request_bytes,
                    "resent_bytes": t.resent_bytes,
                    "resent_reason": t.resent_reason,
                    "conversation": t.conversation,
                    "referenced_bytes": t.referenced_bytes,
                    "input_tokens": t.input_tokens,
                    "cached_tokens": t.cached_tokens,
                    "output_tokens": t.output_tokens,
                    "ttft_ms": t.ttft_ms,
                },
            }
        )
        if t.duration_ms is not None:
            first = t.ttft_ms if t.ttft_ms is not None else t.duration_ms
            wait = round(first * 1e3, 3)
            events.append(
                {**base, "ph": "X", "cat": "latency",
                 "name": "time to first token" if t.ttft_ms is not None else "waiting",
                 "ts": start, "dur": wait}
            )  # fmt: skip
            if t.ttft_ms is not None:
                events.append(
                    {**base, "ph": "X", "cat": "latency", "name": "generation",
                     "ts": round(start + wait, 3), "dur": round(dur - wait, 3)}
                )  # fmt: skip
        if t.cache_loss:
            events.append(
                {**base, "ph": "i", "s": "t", "cat": "cache", "ts": start,
                 "name": f"cache lost ({t.cache_loss})",
                 "args": {"previous_response_id": t.previous_response_id}}
            )  # fmt: skip
        if t.failed:
            events.append(
                {**base, "ph": "i", "s": "t", "cat": "error", "ts": round(start + dur, 3),
                 "name": f"error {t.error_code or t.status}"}
            )  # fmt: skip
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {"generator": "tracer", "turns": report.summary.turns},
    }
