"""Filters for the interactive views: which turns and frames match a query (no I/O).

A query is case-insensitive text. ``status:S``, ``type:T``, ``conn:N``, ``model:M`` and
``loss:`` (any cache loss) test one field; plain words must all appear somewhere in the
turn: its status, error, cache loss, model, ids, event types, output text, function calls
or input items.
"""

from __future__ import annotations

from tracer.analysis.model import TurnDetail, TurnReport
from tracer.trace.records import Frame

__all__ = ["frame_matches", "turn_matches"]

_FIELDS = ("status", "type", "conn", "model", "loss")


def _haystack(t: TurnReport, d: TurnDetail | None) -> str:
    parts = [
        t.status,
        t.error_code or "",
        t.cache_loss or "",
        t.model or "",
        t.response_id or "",
        t.previous_response_id or "",
        t.stream_id or "",
        "warmup" if t.warmup else "",
    ]
    if d is not None:
        parts.extend(d.event_types)
        parts.append(d.text)
        parts.append(d.error_message or "")
        parts.extend(f"{c.get('name')} {c.get('arguments')}" for c in d.calls)
        parts.extend(i["summary"] for i in d.input)
    return "\n".join(parts).lower()


def turn_matches(t: TurnReport, d: TurnDetail | None, query: str) -> bool:
    """True when every term of ``query`` matches the turn."""
    haystack: str | None = None
    for term in query.lower().split():
        key, sep, value = term.partition(":")
        if sep and key in _FIELDS:
            if key == "status" and not (t.status.startswith(value) or value == t.error_code):
                return False
            if key == "type" and not (d and any(value in k.lower() for k in d.event_types)):
                return False
            if key == "conn" and value != str(t.conn):
                return False
            if key == "model" and value not in (t.model or "").lower():
                return False
            if key == "loss" and not (t.cache_loss and t.cache_loss.startswith(value)):
                return False
            continue
        if haystack is None:
            haystack = _haystack(t, d)
        if term not in haystack:
            return False
    return True


def frame_matches(frame: Frame, query: str) -> bool:
    """True when the frame's payload (as text) contains every term of ``query``."""
    text = frame.payload.decode("utf-8", "replace").lower()
    text += f"\n{frame.direction.label}\n{frame.opcode.label}"
    return all(term in text for term in query.lower().split())
