"""JSON Lines: one object per frame, the ``tracer frames --json`` shape."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from tracer.trace.records import Frame, Opcode, Record

__all__ = ["frame_json", "jsonl_lines"]


def frame_json(frame: Frame, *, payload: bool = False) -> dict[str, Any]:
    """The stable ``tracer frames --json`` object of one frame (docs/cli.md)."""
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
        if frame.opcode is Opcode.TEXT or frame.opcode is Opcode.CONT:
            try:
                obj["payload"] = frame.payload.decode("utf-8")
            except UnicodeDecodeError:
                obj["payload"] = base64.b64encode(frame.payload).decode("ascii")
                obj["encoding"] = "base64"
        else:
            obj["payload"] = base64.b64encode(frame.payload).decode("ascii")
            obj["encoding"] = "base64"
    return obj


def jsonl_lines(records: Iterable[Record], *, payload: bool = True) -> Iterator[bytes]:
    """One JSON line (with its newline) per frame record, in trace order."""
    for r in records:
        if type(r) is Frame:
            yield orjson.dumps(frame_json(r, payload=payload)) + b"\n"
