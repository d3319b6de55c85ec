"""Recompress a finished trace at a high zstd level."""

from __future__ import annotations

from typing import IO

from tracer.trace.format import (
    COMPACT_LARGE,
    COMPACT_LARGE_LEVEL,
    COMPACT_LEVEL,
    COMPACT_TABLE_LOG,
    WINDOW_LOG,
    TraceError,
)
from tracer.trace.reader import DEFAULT_MAX_RECORD_SIZE, FrameRun, TraceReader
from tracer.trace.records import Annotation, Frame
from tracer.trace.writer import TraceWriter

__all__ = ["compact_trace"]


def compact_trace(
    src: IO[bytes],
    dst: IO[bytes],
    *,
    level: int | None = None,
    max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
    time_unit_ns: int | None = None,
    max_frames: int | None = None,
    table_log: int | None = COMPACT_TABLE_LOG,
) -> TraceReader:
    """Copy every record of ``src`` into ``dst`` as one zstd frame at ``level``.

    Live traces are flushed in small blocks so that a crash loses little; a finished trace
    no longer needs that and compresses better in one pass. A truncated source is copied as
    far as it reads and ends with a ``tracer.truncated_source`` annotation. The copy is of
    the current format version; it keeps the source's time unit unless ``time_unit_ns``
    is given. Returns the source reader, whose ``truncated`` tells what was copied.

    The zstd window is no larger than the records (a small trace needs no 32 MiB window)
    and the match tables are capped (``table_log``, None for zstd's own): memory stays bounded;
    with no ``level``, it is ``COMPACT_LEVEL``, or ``COMPACT_LARGE_LEVEL`` past
    ``COMPACT_LARGE`` bytes of payload. A seekable source is read twice: first to size it.
    """
    size = _payload_bytes(src, max_record_size, max_frames) if src.seekable() else None
    if level is None:
        level = COMPACT_LEVEL if size is None or size <= COMPACT_LARGE else COMPACT_LARGE_LEVEL
    window = WINDOW_LOG if size is None else max(20, min(WINDOW_LOG, (size + 1).bit_length()))
    reader = TraceReader(src, max_record_size=max_record_size, max_frames=max_frames)
    header = reader.header
    writer = TraceWriter(
        dst,
        level=level,
        flush_interval=None,
        header=header,
        time_unit_ns=time_unit_ns,
        window_log=window,
        table_log=table_log,
    )
    last_t = 0
    for run in reader.runs():
        if type(run) is FrameRun:  # a batch of frames: written as one
            frames = list(run)
            writer.write_frames(frames)
            last_t = frames[-1].t_ns
            continue
        for record in run:
            writer.write(record)
            last_t = getattr(record, "t_ns", last_t)
    if reader.footer is not None:
        writer.dropped_frames = reader.footer.dropped_frames
        last_t = reader.footer.t_ns
    else:
        writer.write(
            Annotation(
                t_ns=last_t,
                label="tracer.truncated_source",
                note="the source trace was truncated; this copy ends where it did",
            )
        )
    writer.close(footer_t_ns=last_t)
    return reader


def _payload_bytes(src: IO[bytes], max_record_size: int, max_frames: int | None) -> int:
    """The payload bytes of a trace (batches are counted, not built); ``src`` is rewound.
    A damaged or truncated source counts up to the damage: the copy reports it."""
    start = src.tell()
    total = 0
    try:
        reader = TraceReader(src, max_record_size=max_record_size, max_frames=max_frames)
        for run in reader.runs():
            if type(run) is FrameRun:
                total += run.payload_bytes
            else:
                total += sum(len(r.payload) for r in run if type(r) is Frame)
    except TraceError:
        pass
    src.seek(start)
    return total
