"""A streaming, crash-safe trace writer over any binary file-like object."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import msgpack
import zstandard as zstd

from tracer._version import __version__
from tracer.trace.format import (
    FORMAT_VERSION,
    LIVE_LEVEL,
    LIVE_WINDOW_LOG,
    MAX_TIME_UNIT_NS,
    WINDOW_LOG,
    compression_params,
    encode_preamble,
    split_times,
    time_bounds,
)
from tracer.trace.records import (
    FRAME_KINDS,
    NOT_LAST,
    Footer,
    Frame,
    Header,
    Kind,
    Open,
    Record,
)

__all__ = ["TraceWriter", "WriterStats", "create_trace"]

DEFAULT_FLUSH_INTERVAL = 0.1
"""Seconds between forced zstd block flushes while records arrive."""

_BATCH_BYTES = 64 * 1024  # packed records collected before one call into zstd
LIVE_BATCH_BYTES = 64 * 1024
"""Payload bytes gathered into one frame-batch record while recording (a flush ends a batch
sooner)."""
COMPACT_BATCH_BYTES = 512 * 1024
_LARGE_BLOB = 1 << 20  # a batch's payloads this large are handed to zstd without a copy
"""Payload bytes per frame-batch record when nothing needs flushing (``tracer compact``)."""
_BATCH_FRAMES = 4096  # frames per batch record, at most
_SPLIT_TIMES_FROM = 32  # frames in a batch from which its times are stored in byte planes
_TIMED_KINDS = frozenset([Kind.OPEN, Kind.FRAME, Kind.CLOSE, Kind.ANNOTATION])
_KIND_BYTES = frozenset(k for k, (_, _, fin) in FRAME_KINDS.items() if fin)  # before NOT_LAST


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
    Timestamps are nanoseconds since the writer's anchor (``now_ns``); the file keeps them
    in units of ``time_unit_ns`` (1: exact; the recorder uses microseconds).

    Frames are gathered by column into frame-batch records (``docs/format.md``): consecutive
    frames until the next flush, another kind of record, or ``batch_bytes`` of payload.
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
        time_unit_ns: int | None = None,
        batch_bytes: int | None = None,
        window_log: int | None = None,
        table_log: int | None = None,
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
        self._last_q = 0  # times are stored as differences from the previous timed record
        if batch_bytes is None:
            batch_bytes = LIVE_BATCH_BYTES if flush_interval is not None else COMPACT_BATCH_BYTES
        self._batch_bytes = batch_bytes
        # The frame batch being gathered, by column.
        self._f_conn: list[int] = []
        self._f_dt: list[int] = []
        self._f_kind = bytearray()
        self._f_payload: list[bytes] = []
        self._f_bytes = 0
        if window_log is None:  # a live trace holds a smaller window (LIVE_WINDOW_LOG)
            window_log = LIVE_WINDOW_LOG if flush_interval is not None else WINDOW_LOG
        params = compression_params(level, window_log, table_log=table_log)
        self._cobj = zstd.ZstdCompressor(compression_params=params).compressobj()
        self.stats = WriterStats()
        self.dropped_frames = 0
        if header is None:
            header = Header(
                format_version=FORMAT_VERSION,
                tracer_version=__version__,
                anchor_unix_ns=time.time_ns(),
                metadata=dict(metadata or {}),
                time_unit_ns=1 if time_unit_ns is None else time_unit_ns,
            )
        else:
            header = dataclasses.replace(
                header,
                format_version=FORMAT_VERSION,
                time_unit_ns=header.time_unit_ns if time_unit_ns is None else time_unit_ns,
            )
        if not 1 <= header.time_unit_ns <= MAX_TIME_UNIT_NS:
            raise ValueError(f"time unit out of range: {header.time_unit_ns} ns")
        self._unit = header.time_unit_ns
        self._lo, self._hi = time_bounds(self._unit)
        self.header = header
        self._file.write(encode_preamble())
        self.write(self.header)
        self.flush()

    @property
    def time_unit_ns(self) -> int:
        """The resolution of the times this writer stores, in nanoseconds."""
        return self._unit

    def now_ns(self) -> int:
        """Nanoseconds since this trace's anchor, on the monotonic clock."""
        return self._clock() - self._anchor

    @property
    def pending(self) -> bool:
        """True when records were written since the last flush."""
        return self._pending

    def write(self, record: Record) -> None:
        """Append one record; flush a block if the flush interval has passed."""
        if type(record) is Frame:  # the hot path
            self.write_frames((record,))
            return
        if self._closed:
            raise ValueError("write to a closed TraceWriter")
        if self._f_kind:
            self._end_batch()
        arr = record.encode()
        if arr[0] in _TIMED_KINDS:
            t_ns = arr[2]
            q = t_ns // self._unit
            if not self._lo < q < self._hi:
                raise ValueError(f"time out of range: {t_ns}")
            arr[2] = q - self._last_q
            self._last_q = q
        elif arr[0] == Kind.FOOTER and self._unit != 1:
            arr[1] //= self._unit
        if type(record) is Open:
            self.stats.connections += 1
        data = self._pack(arr)
        self._batch.append(data)
        self.stats.records += 1
        self._packed(len(data))

    def write_frames(self, frames: Iterable[tuple[int, int, int, int, bytes, bool]]) -> None:
        """Append frames given as ``Frame`` or ``(conn, t_ns, direction, opcode, payload, fin)``.

        The recorder's hot path: the frames join the current batch column by column, and the
        flush interval is checked once, at the end.
        """
        if self._closed:
            raise ValueError("write to a closed TraceWriter")
        conns, dts, kinds, payloads = self._f_conn, self._f_dt, self._f_kind, self._f_payload
        unit = self._unit
        lo, hi = self._lo, self._hi
        last_q = self._last_q
        limit = self._batch_bytes
        size = self._f_bytes
        count = 0
        payload_bytes = 0
        try:
            for conn, t_ns, direction, opcode, payload, fin in frames:
                q = t_ns // unit
                if not lo < q < hi:
                    raise ValueError(f"time out of range: {t_ns}")
                kind = direction << 4 | opcode
                if kind not in _KIND_BYTES or type(conn) is not int:
                    raise ValueError(f"not a frame: {direction=}, {opcode=}, {conn=}")
                n = len(payload)
                if (size + n > limit and kinds) or len(kinds) >= _BATCH_FRAMES:
                    self._f_bytes = size
                    self._last_q = last_q
                    self._end_batch()
                    size = 0
                conns.append(conn)
                dts.append(q - last_q)
                kinds.append(kind if fin else kind | NOT_LAST)
                payloads.append(payload)
                last_q = q
                size += n
                payload_bytes += n
                count += 1
        finally:
            self._last_q = last_q
            self._f_bytes = size
            stats = self.stats
            stats.frames += count
            stats.records += count
            stats.payload_bytes += payload_bytes
        if count:
            self._packed(0)

    def _end_batch(self) -> None:
        """Pack the frames gathered so far as one frame-batch record."""
        conns, kinds, payloads = self._f_conn, self._f_kind, self._f_payload
        conn: int | list[int] = conns[0] if conns.count(conns[0]) == len(conns) else conns
        blob = b"\xff".join(payloads)
        # Text is UTF-8, which never holds 0xFF: the separators alone mark the payloads'
        # bounds. A payload holding 0xFF (binary, or broken text) needs the sizes instead.
        sizes = None
        if blob.count(b"\xff") != len(payloads) - 1:
            sizes = [len(p) for p in payloads]
            blob = b"".join(payloads)
        # Byte planes compress better but cost a reader about 2 us a batch to rejoin: worth
        # it for the long batches of busy traffic and compaction, not a live trace's few.
        dts = self._f_dt
        times = split_times(dts) if len(dts) >= _SPLIT_TIMES_FROM else dts
        if len(blob) < _LARGE_BLOB:
            parts = [self._pack([Kind.FRAMES, conn, times, bytes(kinds), sizes, blob])]
        else:  # the same bytes, without copying the blob into the packed record
            head = bytearray(self._pack([Kind.FRAMES, conn, times, bytes(kinds), sizes]))
            head[0] = 0x96  # the fixarray of 5 elements becomes one of 6: the blob follows
            parts = [bytes(head) + b"\xc6" + len(blob).to_bytes(4, "big"), blob]
        # Cleared in place: ``write_frames`` holds the same lists.
        conns.clear()
        self._f_dt.clear()
        kinds.clear()
        payloads.clear()
        self._f_bytes = 0
        self._batch += parts
        self._batched += sum(len(p) for p in parts)
        if self._batched >= _BATCH_BYTES:
            self._compress_batch()

    def _packed(self, size: int) -> None:
        """Account for ``size`` packed bytes just batched; compress and flush when due."""
        self._batched += size
        self._pending = True
        if self._batched >= _BATCH_BYTES:
            self._compress_batch()
        if self._interval_ns is not None and self._clock() - self._last_flush >= self._interval_ns:
            self.flush()

    def _compress_batch(self) -> None:
        # Small records are joined (one call to zstd); a large blob goes in as it is.
        small: list[bytes] = []
        for piece in self._batch:
            if len(piece) < _LARGE_BLOB:
                small.append(piece)
                continue
            if small:
                self._compress(b"".join(small))
                small = []
            self._compress(piece)
        if small:
            self._compress(b"".join(small))
        self._batch.clear()
        self._batched = 0

    def _compress(self, data: bytes) -> None:
        out = self._cobj.compress(data)
        if out:
            self._file.write(out)

    def flush(self) -> None:
        """End the current zstd block and hand everything to the file, readable from now on."""
        if self._f_kind:
            self._end_batch()
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
        if self._f_kind:
            self._end_batch()
        self._closed = True
        if self._batch:
            self._compress_batch()
        self._file.write(self._cobj.flush(zstd.COMPRESSOBJ_FLUSH_FINISH))
        self._file.flush()
        # The compressor's window (up to 32 MiB) goes back now, not when the writer does: a
        # recorder reads its trace back to verify it right after (its own window).
        del self._cobj

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
