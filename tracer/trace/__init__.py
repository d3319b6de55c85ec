"""The trace file format: records, a streaming writer and a streaming reader (no I/O of its own)."""

from __future__ import annotations

from tracer.trace.errors import LimitExceeded
from tracer.trace.format import FORMAT_VERSION, TraceDamaged, TraceError, TraceTruncated
from tracer.trace.reader import TraceReader, decode_record, open_trace
from tracer.trace.records import (
    Annotation,
    Close,
    Direction,
    Footer,
    Frame,
    Header,
    Kind,
    Opcode,
    Open,
    Record,
)
from tracer.trace.writer import TraceWriter, create_trace

__all__ = [
    "FORMAT_VERSION",
    "Annotation",
    "Close",
    "Direction",
    "Footer",
    "Frame",
    "Header",
    "Kind",
    "LimitExceeded",
    "Opcode",
    "Open",
    "Record",
    "TraceDamaged",
    "TraceError",
    "TraceReader",
    "TraceTruncated",
    "TraceWriter",
    "create_trace",
    "decode_record",
    "open_trace",
]
