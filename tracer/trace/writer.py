"""A streaming, crash-safe trace writer over any binary file-like object."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import msgpack
import zstandard as zstd

from tracer import __version__
from tracer.trace.format import (
    FORMAT_VERSION,
    LIVE_LEVEL,
    T_LIMIT,
    compression_params,
    encode_preamble,
)
from tracer.trace.records import Footer, Frame, Header, Kind, Open, Record

__all__ = ["TraceWriter", "WriterStats", "create_trace"]

DEFAULT_FLUSH_INTERVAL = 0.1
"""Seconds between forced zstd block flushes while records arrive."""

_BATCH_BYTES = 64 * 1024  # packed records collected before one call into zstd
_TIMED_KINDS = frozenset([Kind.OPEN, Kind.FRAME, Kind.CLOSE, Kind.ANNOTATION])


class WriterStats:
    """Running counts of what a writer has written."""

    __slots__ = ("connections", "frames", "payload_bytes", "records")

    def __init__(self) -> None:
        self.records = 0
        self.connections = 0
        self.frames = 0
        self.payload_bytes = 0


class TraceWriter:
    """Writes records as msgpack into one zstd frame, flushing a complete block periodically.

    The writer does no I/O of its own beyond ``fileobj.write`` and ``fileobj.flush``: the
    caller owns the file. After a flush every record written so far can be read back, so a
    recorder killed at any moment loses at most ``flush_interval`` seconds of records.
    Timestamps are nanoseconds since the writer's anchor (``now_ns``).
    """

    def __init__(
        self,
        fileobj: IO[bytes],
        *,
        metadata: dict[str, Any] | None = None,
        level: int = LIVE_LEVEL,
        flush_interval: float | None = DEFAULT_FLUSH_INTERVAL,
        clock: Callable[[], int] = time.monotonic_ns,
        header: Header | None = None,
    ) -> None:
        self._file = fileobj
        self._clock = clock
        self._anchor = clock()
        self._interval_ns = None if flush_interval is None else int(flush_interval * 1e9)
        self._last_flush = self._anchor
        self._pending = False
        self._closed = False
        self._pack = msgpack.Packer(use_bin_type=True, autoreset=True).pack
        self._batch: list[bytes] = []  # packed records not yet handed to zstd
        self._batched = 0
        self._last_t = 0  # timestamps are stored as deltas from the previous timed record
        self._cobj = zstd.ZstdCompressor(compression_params=compression_params(level)).compressobj()
        self.stats = WriterStats()
        self.dropped_frames = 0
        self.header = header or Header(
            format_version=FORMAT_VERSION,
            tracer_version=__version__,
            anchor_unix_ns=time.time_ns(),
            metadata=dict(metadata or {}),
        )
        self._file.write(encode_preamble())
        self.write(self.header)
        self.flush()

    def now_ns(self) -> int:
        """Nanoseconds since this trace's anchor, on the monotonic clock."""
        return self._clock() - self._anchor

    @property
    def pending(self) -> bool:
        """True when records were written since the last flush."""
        return self._pending

    def write(self, record: Record) -> None:
        """Append one record; flush a block if the flush interval has passed."""
        if self._closed:
            raise ValueError("write to a closed TraceWriter")
        stats = self.stats
        if type(record) is Frame:  # the hot path
            conn, t_ns, direction, opcode, payload, fin = record
            if not -T_LIMIT < t_ns < T_LIMIT:
                raise ValueError(f"time out of range: {t_ns}")
            arr: list[Any] = [2, conn, t_ns - self._last_t, direction, opcode, payload]
            if not fin:
                arr.append(False)
            self._last_t = t_ns
            stats.frames += 1
            stats.payload_bytes += len(payload)
        else:
            arr = record.encode()
            if arr[0] in _TIMED_KINDS:
                t_ns = arr[2]
                if not -T_LIMIT < t_ns < T_LIMIT:
                    raise ValueError(f"time out of range: {t_ns}")
                arr[2] = t_ns - self._last_t
                self._last_t = t_ns
            if type(record) is Open:
                stats.connections += 1
        data = self._pack(arr)
        self._batch.append(data)
        stats.records += 1
        self._packed(len(data))

    def _packed(self, size: int) -> None:
        """Account for ``size`` packed bytes just batched; compress and flush when due."""
        self._batched += size
        self._pending = True
        if self._batched >= _BATCH_BYTES:
            self._compress_batch()
        if self._interval_ns is not None and self._clock() - self._last_flush >= self._interval_ns:
            self.flush()

    def _compress_batch(self) -> None:
        out = self._cobj.compress(b"".join(self._batch))
        if out:
            self._file.write(out)
        self._batch.clear()
        self._batched = 0

    def write_frames(self, frames: Iterable[tuple[int, int, int, int, bytes, bool]]) -> None:
        """Append many frames given as ``(conn, t_ns, direction, opcode, payload, fin)``.

        The same records as ``write(Frame(...))`` for each, for a fraction of the cost: the
        recorder's hot path. The flush interval is checked once, at the end.
        """
        if self._closed:
            raise ValueError("write to a closed TraceWriter")
        pack = self._pack
        batch = self._batch
        last_t = self._last_t
        count = 0
        size = 0
        payload_bytes = 0
        for conn, t_ns, direction, opcode, payload, fin in frames:
            if not -T_LIMIT < t_ns < T_LIMIT:
                raise ValueError(f"time out of range: {t_ns}")
            if fin:
                data = pack([2, conn, t_ns - last_t, direction, opcode, payload])
            else:
                data = pack([2, conn, t_ns - last_t, direction, opcode, payload, False])
            last_t = t_ns
            batch.append(data)
            size += len(data)
            payload_bytes += len(payload)
            count += 1
        if not count:
            return
        self._last_t = last_t
        stats = self.stats
        stats.frames += count
        stats.records += count
        stats.payload_bytes += payload_bytes
        self._packed(size)

    def flush(self) -> None:
        """End the current zstd block and hand everything to the file, readable from now on."""
        if self._batch:
            self._compress_batch()
        self._file.write(self._cobj.flush(zstd.COMPRESSOBJ_FLUSH_BLOCK))
        self._file.flush()
        self._last_flush = self._clock()
        self._pending = False

    def close(self, *, footer: bool = True, footer_t_ns: int | None = None) -> None:
        """Write the footer, end the zstd frame and flush. Does not close ``fileobj``."""
        if self._closed:
            return
        if footer:
            s = self.stats
            self.write(
                Footer(
                    t_ns=self.now_ns() if footer_t_ns is None else footer_t_ns,
                    records=s.records,
                    connections=s.connections,
                    frames=s.frames,
                    payload_bytes=s.payload_bytes,
                    dropped_frames=self.dropped_frames,
                )
            )
        self._closed = True
        if self._batch:
            self._compress_batch()
        self._file.write(self._cobj.flush(zstd.COMPRESSOBJ_FLUSH_FINISH))
        self._file.flush()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def create_trace(path: str | os.PathLike[str], **kwargs: Any) -> Iterator[TraceWriter]:
    """Create (or replace) a trace file readable by its owner only, and write to it.

    The trace is finished (footer, end of frame) when the block exits, also on an error, so
    what was recorded stays readable.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode otherwise
    with os.fdopen(fd, "wb") as f:
        writer = TraceWriter(f, **kwargs)
        try:
            yield writer
        finally:
            writer.close()
