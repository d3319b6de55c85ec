"""A streaming trace reader with bounded memory that survives truncation."""

# Over 400 lines: bounded decompression, every record's checks, frame batches as columns.
from __future__ import annotations

import contextlib
import functools
import itertools
import operator
import os
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import msgpack
import zstandard as zstd

from tracer.trace.caps import frames_exceeded
from tracer.trace.compat import FRAME_V1, v1_frame
from tracer.trace.errors import LimitExceeded
from tracer.trace.format import (
    MAX_BATCH_FRAMES,
    MAX_WINDOW_SIZE,
    PREAMBLE_SIZE,
    T_LIMIT,
    TraceDamaged,
    TraceError,
    TraceTruncated,
    join_times,
    parse_preamble,
    time_bounds,
)
from tracer.trace.records import (
    CONN_MAX,
    CONN_MIN,
    FRAME_KINDS,
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
    kind_name,
)

__all__ = ["DEFAULT_MAX_RECORD_SIZE", "FrameRun", "TraceReader", "decode_record", "open_trace"]

DEFAULT_MAX_RECORD_SIZE = 128 * 1024 * 1024
"""The largest record the reader accepts; a larger one is reported as damage."""

# Compressed bytes handed to zstd per call. zstd can expand a few bytes into a 128 KiB
# block, so a small slice bounds what one call may allocate (4 KiB -> at most ~128 MiB
# for a hostile file, a few hundred KiB for a real one).
_SLICE = 4096
_TINY_SLICE = 64  # compressed bytes fed at once after a large output (at most a few MiB)
_BIG_OUTPUT = 1 << 20
_FEED = 1 << 20  # decompressed bytes fed to the unpacker at a time
_READ = 1 << 20  # bytes read from the file at a time

_TIMED_KINDS = frozenset([Kind.OPEN, Kind.FRAME, Kind.CLOSE, Kind.ANNOTATION])


class TraceReader:
    """Iterates over a trace's records; the header is read first and kept as ``header``.

    Iteration yields every record after the header and before the footer, in file order.
    A file that ends early (a killed recorder) is not an error: iteration stops after the
    last complete record and ``truncated`` becomes True. Damage (garbage, bad checksums,
    malformed or oversized records) raises ``TraceError`` after the records before it.
    """

    def __init__(
        self,
        fileobj: IO[bytes],
        *,
        max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
        max_frames: int | None = None,
    ):
        self._file = fileobj
        self._max_frames = max_frames  # past it, LimitExceeded (tracer.trace.caps)
        self.frames = 0  # frames read so far
        self._max = max_record_size
        self.version = parse_preamble(fileobj.read(PREAMBLE_SIZE))
        self._offset = PREAMBLE_SIZE  # compressed bytes consumed so far
        self._dobj = zstd.ZstdDecompressor(max_window_size=MAX_WINDOW_SIZE).decompressobj()
        self._feed = min(_FEED, max_record_size)
        self._unpacker = msgpack.Unpacker(
            raw=False,
            # A record may straddle two feeds: the buffer holds at most one record plus one
            # feed, and no single string or payload may exceed the record limit.
            max_buffer_size=max_record_size + self._feed,
            max_bin_len=max_record_size,
            max_str_len=max_record_size,
            strict_map_key=False,
        )
        # Runs of records, chained in C: a batch's frames reach the caller without a
        # generator step each.
        self._runs = self._decode()
        self._records: Iterator[Record] = itertools.chain.from_iterable(self._runs)
        self.records = 0  # records read so far, header included
        self.footer: Footer | None = None
        self.truncated: bool | None = None  # known once iteration has ended
        first = next(self._records, None)
        if first is None:
            if self.truncated:
                raise TraceTruncated("truncated: the file ends before its header record")
            raise TraceDamaged("the trace has no header record")
        if not isinstance(first, Header):
            raise TraceDamaged("the first record is not a header")
        self.header: Header = first

    @property
    def offset(self) -> int:
        """Compressed bytes of the file consumed so far."""
        return self._offset

    def __iter__(self) -> Iterator[Record]:
        return self._records

    def runs(self) -> Iterator[FrameRun | tuple[Record, ...]]:
        """The records as runs, for a reader that only counts: each frame batch as one
        ``FrameRun`` (its frame count and payload bytes, its frames built only if iterated),
        any other record as a 1-tuple. Use either this or plain iteration, not both."""
        return self._runs  # type: ignore[return-value]

    def _damage(self, what: str) -> TraceDamaged:
        return TraceDamaged(what, offset=self._offset, records=self.records)

    def _chunks(self) -> Iterator[bytes]:
        """Decompressed data, in bounded pieces; sets ``truncated`` at the end."""
        dobj = self._dobj
        while True:
            block = self._file.read(_READ)
            if not block:
                break
            # Highly compressed data (a few bytes can stand for 128 KiB) would come out of
            # one slice as hundreds of MiB: after a large output, feed smaller slices.
            start, step = 0, _SLICE
            while start < len(block):
                piece = block[start : start + step]
                start += len(piece)
                if dobj.eof:
                    raise self._damage("unexpected data after the end of the trace")
                try:
                    out = dobj.decompress(piece)
                except zstd.ZstdError as exc:
                    raise self._damage(f"zstd: {exc}") from None
                self._offset += len(piece)
                step = _TINY_SLICE if len(out) > _BIG_OUTPUT else min(_SLICE, step * 2)
                feed = self._feed
                for pos in range(0, len(out), feed):
                    yield out[pos : pos + feed]
        self.truncated = not dobj.eof

    def _decode(self) -> Iterator[Iterable[Record]]:
        """Runs of records in file order: a batch's frames, or one record at a time."""
        unpacker = self._unpacker
        unit = 1  # nanoseconds per stored time unit: the header says
        last_q = 0  # the running time, in units
        lo, hi = -T_LIMIT, T_LIMIT  # the bounds of last_q
        fed = 0
        for chunk in self._chunks():
            fed += len(chunk)
            try:
                unpacker.feed(chunk)
            except msgpack.BufferFull:
                raise self._damage(f"a record is larger than the {self._max}-byte limit") from None
            try:
                for obj in unpacker:
                    kind = obj[0] if type(obj) is list and obj else None
                    if kind == _BATCH and len(obj) >= 6:  # the bulk of a v2 trace
                        if self.footer is not None:
                            raise self._damage("records after the footer")
                        run, last_q = _expand_batch(obj, last_q, unit, lo, hi)
                        self.records += run.n
                        self.frames += run.n
                        if self._max_frames is not None and self.frames > self._max_frames:
                            raise LimitExceeded(frames_exceeded(self._max_frames))
                        yield run
                        continue
                    self.records += 1
                    if self.footer is not None:
                        raise self._damage("records after the footer")
                    if kind == FRAME_V1:
                        self.frames += 1
                        if self._max_frames is not None and self.frames > self._max_frames:
                            raise LimitExceeded(frames_exceeded(self._max_frames))
                        frame, last_q = v1_frame(obj, last_q, unit, lo, hi)
                        yield (frame,)
                        continue
                    record, last_q = self._record(obj, last_q, unit, lo, hi)
                    if type(record) is Header:
                        unit = record.time_unit_ns
                        lo, hi = time_bounds(unit)
                    if record is not None:
                        yield (record,)
            except TraceDamaged as exc:
                if exc.offset is not None:
                    raise
                raise self._damage(exc.what) from None
            except ValueError as exc:
                if "exceeds max" in str(exc):
                    raise self._damage(
                        f"a record is larger than the {self._max}-byte limit"
                    ) from None
                raise self._damage(f"invalid msgpack: {exc}") from None
            except (TypeError, msgpack.ExtraData, msgpack.StackError) as exc:
                raise self._damage(f"invalid msgpack: {exc}") from None
        if unpacker.tell() != fed:
            self.truncated = True  # the file ends inside a record
        if not self.truncated and self.footer is None:
            self.truncated = True  # a finished zstd frame without a footer: not cleanly closed

    def _record(
        self, obj: Any, last_q: int, unit: int, lo: int, hi: int
    ) -> tuple[Record | None, int]:
        """One record other than frames, and the running time after it. None: the footer
        (kept in ``footer``) or a kind from a newer minor version (skipped)."""
        if type(obj) is list and len(obj) > 2 and obj[0] in _TIMED_KINDS:
            if type(obj[2]) is not int:
                raise self._damage(f"a {kind_name(obj[0])} record has no time")
            last_q += obj[2]
            if not lo < last_q < hi:
                raise self._damage("a time out of range")
            obj[2] = last_q * unit
        elif type(obj) is list and len(obj) > 1 and obj[0] == _FOOTER and type(obj[1]) is int:
            obj[1] *= unit  # the footer's time is absolute, in units too
        record = decode_record(obj)
        if record is None:
            if not _is_forward_compatible(obj):
                raise self._damage("a record is not a msgpack array with a kind")
            return None, last_q  # a record kind from a newer minor version: skip it
        if type(record) is Footer:
            self._check_footer(record)
            self.footer = record
            return None, last_q
        if type(record) is Header and self.records > 1:
            raise self._damage("a second header record")
        return record, last_q

    def _check_footer(self, footer: Footer) -> None:
        if footer.records != self.records - 1:
            raise self._damage(
                f"the footer counts {footer.records} records but {self.records - 1} precede it"
            )


_BATCH = int(Kind.FRAMES)  # record kinds compared on the hot path, as plain ints
_FOOTER = int(Kind.FOOTER)

# Lookup tables of a batch's kind bytes (records.FRAME_KINDS), by byte value.
_KIND_DIR: list[Direction | None] = [None] * 256
_KIND_OP: list[Opcode | None] = [None] * 256
_KIND_FIN: list[bool] = [True] * 256
for _b, (_d, _op, _fin) in FRAME_KINDS.items():
    _KIND_DIR[_b], _KIND_OP[_b], _KIND_FIN[_b] = _d, _op, _fin
_VALID_KIND_BYTES = bytes(sorted(FRAME_KINDS))
_new_frame = functools.partial(tuple.__new__, Frame)
_kind_columns_cache: dict[bytes, tuple[Iterable[Any], ...]] = {}


def _kind_columns(kinds: bytes) -> tuple[Iterable[Any], ...]:
    """The direction, opcode and fin columns of a batch's kind bytes (memoised: a live
    trace repeats the same few patterns); a long batch's are lazy, made only if its frames
    are built."""
    cols = _kind_columns_cache.get(kinds)
    if cols is None:
        if kinds.translate(None, _VALID_KIND_BYTES):
            raise TraceDamaged("a frame batch holds an invalid direction or opcode")
        if len(kinds) > 64:
            return (
                map(_KIND_DIR.__getitem__, kinds),
                map(_KIND_OP.__getitem__, kinds),
                map(_KIND_FIN.__getitem__, kinds),
            )
        cols = (
            tuple(map(_KIND_DIR.__getitem__, kinds)),
            tuple(map(_KIND_OP.__getitem__, kinds)),
            tuple(map(_KIND_FIN.__getitem__, kinds)),
        )
        if len(_kind_columns_cache) >= 4096:
            _kind_columns_cache.clear()
        _kind_columns_cache[kinds] = cols
    return cols


class FrameRun:
    """The frames of one frame-batch record, as the columns the record holds them in:
    ``n`` frames holding ``payload_bytes`` bytes; iterating (once) builds them.

    The columns, for a reader that works on a batch at once: ``conn`` (one connection for
    every frame, or a list), ``times`` (each frame's time, in ns), ``kinds`` (each frame's
    kind byte, ``records.FRAME_KINDS``) and ``payloads``; and ``blob``, the payloads
    joined: by ``0xFF`` separators when ``split`` (as text frames are written; no payload of
    such a batch holds that byte), else end to end."""

    __slots__ = (
        "_columns",
        "_times",
        "_unit",
        "blob",
        "conn",
        "kinds",
        "n",
        "payload_bytes",
        "payloads",
        "split",
    )

    def __init__(
        self,
        conn: int | list[int],
        times: list[int],
        unit: int,
        kinds: bytes,
        blob: bytes,
        payloads: list[bytes],
        split: bool,
    ) -> None:
        self._columns = _kind_columns(kinds)  # (checks that each byte is a valid kind)
        self.conn, self._times, self._unit, self.kinds, self.blob = conn, times, unit, kinds, blob
        self.payloads, self.split, self.n = payloads, split, len(kinds)
        # Without the separators.
        self.payload_bytes = len(blob) - (self.n - 1) if split else len(blob)

    @property
    def times(self) -> list[int]:
        """Each frame's time, in ns."""
        if self._unit != 1:
            self._times = list(map(operator.mul, self._times, itertools.repeat(self._unit)))
            self._unit = 1
        return self._times

    def __iter__(self) -> Iterator[Frame]:
        conn, unit = self.conn, self._unit
        conns: Any = itertools.repeat(conn, self.n) if type(conn) is int else conn
        ns = self._times if unit == 1 else map(operator.mul, self._times, itertools.repeat(unit))
        directions, opcodes, fins = self._columns
        frames = zip(conns, ns, directions, opcodes, self.payloads, fins, strict=False)
        return map(_new_frame, frames)


def _expand_batch(obj: list[Any], last_q: int, unit: int, lo: int, hi: int) -> tuple[FrameRun, int]:
    """The frames of one frame-batch record, and the running time after them.

    ``last_q`` is the running time in units before the batch; stored times must stay within
    the exclusive bounds ``lo``, ``hi``. Anything inconsistent raises ``TraceError``.
    """
    conn, column, kinds, sizes, blob = obj[1], obj[2], obj[3], obj[4], obj[5]
    if type(kinds) is not bytes or type(blob) is not bytes:
        raise TraceDamaged("a frame batch has columns of the wrong type")
    n = len(kinds)
    if not 0 < n <= MAX_BATCH_FRAMES:
        raise TraceDamaged("a frame batch's columns disagree on the number of frames")
    if type(column) is list:
        if len(column) != n:
            raise TraceDamaged("a frame batch's columns disagree on the number of frames")
        dts = column
    elif type(column) is bytes:
        dts = join_times(column, n)  # type: ignore[assignment]
        if dts is None:
            raise TraceDamaged("a frame batch's columns disagree on the number of frames")
    else:
        raise TraceDamaged("a frame batch has columns of the wrong type")
    if not (type(conn) is int and CONN_MIN <= conn <= CONN_MAX) and not (
        type(conn) is list
        and len(conn) == n
        and set(map(type, conn)) == {int}
        and min(conn) >= CONN_MIN
        and max(conn) <= CONN_MAX
    ):
        raise TraceDamaged("a frame batch's connection column is malformed")
    # Running sums; a value that is not an integer fails here or leaves a non-integer sum.
    try:
        dts[0] += last_q
        times = list(itertools.accumulate(dts))
    except TypeError:
        raise TraceDamaged("a frame batch's times are malformed") from None
    last_q = times[-1]
    if type(last_q) is not int:
        raise TraceDamaged("a frame batch's times are malformed")
    if not lo < min(times) or not max(times) < hi:
        raise TraceDamaged("a time out of range")
    if sizes is None:
        payloads = blob.split(b"\xff", n)
        if len(payloads) != n:
            raise TraceDamaged("a frame batch's payloads do not match its frames")
    elif (
        type(sizes) is list
        and len(sizes) == n
        and set(map(type, sizes)) == {int}
        and min(sizes) >= 0
        and sum(sizes) == len(blob)
    ):
        ends = itertools.accumulate(sizes)
        payloads = [blob[e - k : e] for k, e in zip(sizes, ends, strict=False)]
    else:
        raise TraceDamaged("a frame batch's payload sizes do not match its payloads")
    return FrameRun(conn, times, unit, kinds, blob, payloads, sizes is None), last_q


def _is_forward_compatible(obj: Any) -> bool:
    return type(obj) is list and bool(obj) and type(obj[0]) is int and obj[0] > max(Kind)


_DECODERS: dict[int, Callable[[list[Any]], Record]] = {
    Kind.HEADER: Header.decode,
    Kind.OPEN: Open.decode,
    Kind.CLOSE: Close.decode,
    Kind.ANNOTATION: Annotation.decode,
    Kind.FOOTER: Footer.decode,
    # A lone v1 frame (its time taken as absolute): what decode_record gives for one.
    Kind.FRAME: lambda obj: v1_frame(obj, 0, 1, -T_LIMIT, T_LIMIT)[0],
}


def decode_record(obj: Any) -> Record | None:
    """Turn one unpacked msgpack object into a record; None for a kind this version skips
    (and for frame batches, which the reader expands). A malformed record of a known kind
    raises ``TraceDamaged``."""
    if type(obj) is not list or not obj or type(obj[0]) is not int:
        return None
    decode = _DECODERS.get(obj[0])
    if decode is None:
        return None
    try:
        return decode(obj)
    except (KeyError, IndexError, TypeError):
        raise TraceDamaged(f"a {kind_name(obj[0])} record is malformed") from None


@contextlib.contextmanager
def open_trace(
    path: str | os.PathLike[str],
    *,
    max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
    max_frames: int | None = None,
) -> Iterator[TraceReader]:
    """Open a trace file for reading; errors opening it become ``TraceError``. With
    ``max_frames``, reading past that many frames raises ``LimitExceeded``."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise TraceError(f"cannot open {os.fspath(path)!r}: {exc.strerror or exc}") from None
    with f:
        yield TraceReader(f, max_record_size=max_record_size, max_frames=max_frames)
