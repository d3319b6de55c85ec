"""JSON Lines: one object per frame, the ``tracer frames --json`` shape."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from tracer.trace.records import Frame, Opcode, Record

__all__ = ["frame_json", "jsonl_lines", "payload_text"]


def payload_text(data: bytes, *, text: bool) -> tuple[str, bool]:
    """A payload as JSON text: (the UTF-8 text, False) when ``text`` and it decodes, else
    (its base64, True)."""
    if text:
        try:
            return data.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(data).decode("ascii"), True


def frame_json(
    frame: Frame, *, payload: bool = False, payload_limit: int | None = None
) -> dict[str, Any]:
    """The stable ``tracer frames --json`` object of one frame (docs/cli.md); with
    ``payload_limit``, a longer payload is cut to that many bytes and says so
    (``"payload_truncated": true``; ``size`` stays the whole size)."""
    obj: dict[str, Any] = {
        "conn": frame.conn,
        "from": frame.direction.label,
        "opcode": frame.opcode.label,
        "t": frame.t_ns / 1e9,
        "size": len(frame.payload),
    }
    if not frame.fin:
        obj["fin"] = False
    if payload:
        is_text = frame.opcode is Opcode.TEXT or frame.opcode is Opcode.CONT
        data = frame.payload
        if payload_limit is not None and len(data) > payload_limit:
            data = data[:payload_limit]
            obj["payload_truncated"] = True
        obj["payload"], encoded = payload_text(data, text=is_text)
        if encoded:
            obj["encoding"] = "base64"
    return obj


def jsonl_lines(records: Iterable[Record], *, payload: bool = True) -> Iterator[bytes]:
    """One JSON line (with its newline) per frame record, in trace order."""
    for r in records:
        if type(r) is Frame:
            yield orjson.dumps(frame_json(r, payload=payload)) + b"\n"
