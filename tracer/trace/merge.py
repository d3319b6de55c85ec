"""Append one trace's connections to another: a cassette's new episodes (no sockets)."""

from __future__ import annotations

import dataclasses
from typing import IO

from tracer.trace.reader import TraceReader
from tracer.trace.records import Annotation, Close, Frame, Open
from tracer.trace.writer import TraceWriter

__all__ = ["append_trace"]


def append_trace(base: IO[bytes], extra: IO[bytes], out: IO[bytes]) -> int:
    """Write ``base``'s records, then ``extra``'s connections and annotations after them,
    into ``out`` (one finished trace with ``base``'s header). ``extra``'s connection ids are
    renumbered after ``base``'s and its times moved onto ``base``'s clock (by the difference
    of the two anchors). Returns the number of connections appended."""
    first = TraceReader(base)
    writer = TraceWriter(out, header=first.header, flush_interval=None)
    top = 0
    for record in first:
        conn = getattr(record, "conn", None)
        if isinstance(conn, int):
            top = max(top, conn)
        writer.write(record)
    second = TraceReader(extra)
    shift = second.header.anchor_unix_ns - first.header.anchor_unix_ns
    added = 0
    for record in second:
        if type(record) is Frame:
            writer.write(record._replace(conn=record.conn + top, t_ns=record.t_ns + shift))
        elif isinstance(record, Open | Close):
            added += isinstance(record, Open)
            t = record.t_ns + shift
            writer.write(dataclasses.replace(record, conn=record.conn + top, t_ns=t))
        elif isinstance(record, Annotation):
            conn = None if record.conn is None else record.conn + top
            writer.write(dataclasses.replace(record, conn=conn, t_ns=record.t_ns + shift))
    writer.close()
    return added
