"""Integrity check of a trace file: what it holds and whether it is whole."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import IO, Any

from tracer.trace.format import TraceDamaged, TraceError, TraceTruncated
from tracer.trace.reader import DEFAULT_MAX_RECORD_SIZE, FrameRun, TraceReader
from tracer.trace.records import Annotation, Frame, Open

TRUNCATED_SOURCE = "tracer.truncated_source"  # the label compact gives a truncated copy

__all__ = ["Integrity", "verify_trace"]


@dataclass(slots=True)
class Integrity:
    """What ``tracer verify`` reports about one trace file."""

    ok: bool
    truncated: bool
    records: int
    connections: int
    frames: int
    payload_bytes: int
    error: str | None
    error_offset: int | None = None
    format_version: int | None = None
    tracer_version: str | None = None
    dropped_frames: int = 0
    complete: bool = False  # ends with a footer whose counts match
    truncated_source: bool = False  # a compacted copy of a truncated trace (it says so)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def verify_trace(
    fileobj: IO[bytes], *, max_record_size: int = DEFAULT_MAX_RECORD_SIZE
) -> Integrity:
    """Read a whole trace and report its integrity; never raises for a damaged file."""
    report = Integrity(
        ok=False, truncated=False, records=0, connections=0, frames=0, payload_bytes=0, error=None
    )
    reader: TraceReader | None = None
    try:
        reader = TraceReader(fileobj, max_record_size=max_record_size)
        report.format_version = reader.version
        report.tracer_version = reader.header.tracer_version
        for run in reader.runs():
            if type(run) is FrameRun:  # a batch: counted without building its frames
                report.frames += run.n
                report.payload_bytes += run.payload_bytes
                continue
            for record in run:
                if type(record) is Frame:
                    report.frames += 1
                    report.payload_bytes += len(record.payload)
                elif type(record) is Open:
                    report.connections += 1
                elif type(record) is Annotation and record.label == TRUNCATED_SOURCE:
                    report.truncated_source = True
    except TraceError as exc:
        report.error = str(exc)
        damaged_at = exc.offset if isinstance(exc, TraceDamaged) else None
        report.error_offset = damaged_at or 0  # the preamble's, when it is not known
        report.truncated = isinstance(exc, TraceTruncated)
    if reader is not None:
        report.records = reader.records
        if reader.truncated:
            report.truncated = True
        if reader.footer is not None:
            report.complete = True
            report.dropped_frames = reader.footer.dropped_frames
    if report.truncated_source:
        report.truncated = True  # whole as a file, but what it holds was cut short
    report.ok = report.error is None and not report.truncated
    return report
