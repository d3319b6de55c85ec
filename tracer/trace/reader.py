"""A streaming trace reader with bounded memory that survives truncation."""

from __future__ import annotations

import contextlib
import functools
import itertools
import operator
import os
from collections.abc import Iterable, Iterator
from typing import IO, Any

import msgpack
import zstandard as zstd

from tracer.trace.format import (
    MAX_BATCH_FRAMES,
    MAX_TIME_UNIT_NS,
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
)

__all__ = ["DEFAULT_MAX_RECORD_SIZE", "TraceReader", "decode_record", "open_trace"]

DEFAULT_MAX_RECORD_SIZE = 128 * 1024 * 1024
"""The largest record the reader accepts; a larger one is reported as damage."""

# Compressed bytes handed to zstd per call. zstd can expand a few bytes into a 128 KiB
# block, so a small slice bounds what one call may allocate (4 KiB -> at most ~128 MiB
# for a hostile file, a few hundred KiB for a real one).
_SLICE = 4096
_FEED = 1 << 20  # decompressed bytes fed to the unpacker at a time
_READ = 1 << 20  # bytes read from the file at a time

_DIRECTIONS = {0: Direction.CLIENT, 1: Direction.SERVER}
_TIMED_KINDS = frozenset([Kind.OPEN, Kind.FRAME, Kind.CLOSE, Kind.ANNOTATION])
_OPCODES = {int(op): op for op in Opcode}


class TraceReader:
    """Iterates over a trace's records; the header is read first and kept as ``header``.

    Iteration yields every record after the header and before the footer, in file order.
    A file that ends early (a killed recorder) is not an error: iteration stops after the
    last complete record and ``truncated`` becomes True. Damage (garbage, bad checksums,
    malformed or oversized records) raises ``TraceError`` after the records before it.
    """

    def __init__(self, fileobj: IO[bytes], *, max_record_size: int = DEFAULT_MAX_RECORD_SIZE):
        self._file = fileobj
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
        self._records: Iterator[Record] = itertools.chain.from_iterable(self._decode())
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

    def _damage(self, what: str) -> TraceDamaged:
        return TraceDamaged(what, offset=self._offset, records=self.records)

    def _chunks(self) -> Iterator[bytes]:
        """Decompressed data, in bounded pieces; sets ``truncated`` at the end."""
        dobj = self._dobj
        while True:
            block = self._file.read(_READ)
            if not block:
                break
            for start in range(0, len(block), _SLICE):
                piece = block[start : start + _SLICE]
                if dobj.eof:
                    raise self._damage("unexpected data after the end of the trace")
                try:
                    out = dobj.decompress(piece)
                except zstd.ZstdError as exc:
                    raise self._damage(f"zstd: {exc}") from None
                self._offset += len(piece)
                feed = self._feed
                for pos in range(0, len(out), feed):
                    yield out[pos : pos + feed]
        self.truncated = not dobj.eof

    def _decode(self) -> Iterator[Iterable[Record]]:
        """Runs of records in file order: a batch's frames, or one record at a time."""
        unpacker = self._unpacker
        new_frame = tuple.__new__  # skips NamedTuple's Python-level __new__ on the hot path
        directions, opcodes = _DIRECTIONS, _OPCODES
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
                    # Frame batches: [6, conn(s), dts, kinds, sizes or nil, payloads]
                    if type(obj) is list and len(obj) >= 6 and obj[0] == 6:
                        if self.footer is not None:
                            raise self._damage("records after the footer")
                        try:
                            frames, n, last_q = _expand_batch(obj, last_q, unit, lo, hi)
                        except TraceDamaged as exc:
                            raise self._damage(exc.what) from None
                        self.records += n
                        yield frames
                        continue
                    self.records += 1
                    # Frames: [2, conn, dt, direction, opcode, payload(, fin)]
                    if type(obj) is list and len(obj) in (6, 7) and obj[0] == 2:
                        conn, dt, d, op, payload = obj[1], obj[2], obj[3], obj[4], obj[5]
                        if (
                            type(conn) is int
                            and type(dt) is int
                            and type(payload) is bytes
                            and d in directions
                            and op in opcodes
                        ):
                            fin = obj[6] if len(obj) == 7 else True
                            if (fin is True or fin is False) and self.footer is None:
                                last_q += dt
                                if not lo < last_q < hi:
                                    raise self._damage("a time out of range")
                                yield (
                                    new_frame(
                                        Frame,
                                        (
                                            conn,
                                            last_q * unit,
                                            directions[d],
                                            opcodes[op],
                                            payload,
                                            fin,
                                        ),
                                    ),
                                )
                                continue
                        raise self._damage("a frame record is malformed or follows the footer")
                    if self.footer is not None:
                        raise self._damage("records after the footer")
                    if type(obj) is list and len(obj) > 2 and obj[0] in _TIMED_KINDS:
                        if type(obj[2]) is not int:
                            raise self._damage(f"a {_kind_name(obj[0])} record has no time")
                        last_q += obj[2]
                        if not lo < last_q < hi:
                            raise self._damage("a time out of range")
                        obj[2] = last_q * unit
                    elif type(obj) is list and len(obj) > 1 and obj[0] == 5 and type(obj[1]) is int:
                        obj[1] *= unit  # the footer's time is absolute, in units too
                    try:
                        record = decode_record(obj)
                    except TraceDamaged as exc:
                        raise self._damage(exc.what) from None
                    if record is None:
                        if not _is_forward_compatible(obj):
                            raise self._damage("a record is not a msgpack array with a kind")
                        continue  # a record kind from a newer minor version: skip it
                    if type(record) is Footer:
                        self._check_footer(record)
                        self.footer = record
                        continue
                    if type(record) is Header:
                        if self.records > 1:
                            raise self._damage("a second header record")
                        unit = record.time_unit_ns
                        lo, hi = time_bounds(unit)
                    yield (record,)
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

    def _check_footer(self, footer: Footer) -> None:
        if footer.records != self.records - 1:
            raise self._damage(
                f"the footer counts {footer.records} records but {self.records - 1} precede it"
            )


# Lookup tables of a batch's kind bytes (records.FRAME_KINDS), by byte value.
_KIND_DIR: list[Direction | None] = [None] * 256
_KIND_OP: list[Opcode | None] = [None] * 256
_KIND_FIN: list[bool] = [True] * 256
for _b, (_d, _op, _fin) in FRAME_KINDS.items():
    _KIND_DIR[_b], _KIND_OP[_b], _KIND_FIN[_b] = _d, _op, _fin
_VALID_KIND_BYTES = bytes(sorted(FRAME_KINDS))
_new_frame = functools.partial(tuple.__new__, Frame)
_kind_columns_cache: dict[bytes, tuple[tuple[Any, ...], ...]] = {}


def _kind_columns(kinds: bytes) -> tuple[tuple[Any, ...], ...]:
    """The direction, opcode and fin columns of a batch's kind bytes (memoised: a live
    trace repeats the same few patterns)."""
    cols = _kind_columns_cache.get(kinds)
    if cols is None:
        if kinds.translate(None, _VALID_KIND_BYTES):
            raise TraceDamaged("a frame batch holds an invalid direction or opcode")
        cols = (
            tuple(map(_KIND_DIR.__getitem__, kinds)),
            tuple(map(_KIND_OP.__getitem__, kinds)),
            tuple(map(_KIND_FIN.__getitem__, kinds)),
        )
        if len(kinds) <= 64:
            if len(_kind_columns_cache) >= 4096:
                _kind_columns_cache.clear()
            _kind_columns_cache[kinds] = cols
    return cols


def _expand_batch(
    obj: list[Any], last_q: int, unit: int, lo: int, hi: int
) -> tuple[Iterator[Frame], int, int]:
    """The frames of one frame-batch record, their number, and the running time after them.

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
    directions, opcodes, fins = _kind_columns(kinds)
    if type(conn) is int:
        conns: Any = itertools.repeat(conn, n)
    elif type(conn) is list and len(conn) == n and set(map(type, conn)) == {int}:
        conns = conn
    else:
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
    ns = times if unit == 1 else map(operator.mul, times, itertools.repeat(unit, n))
    frames = zip(conns, ns, directions, opcodes, payloads, fins, strict=False)  # all n long
    return map(_new_frame, frames), n, last_q


def _is_forward_compatible(obj: Any) -> bool:
    return type(obj) is list and bool(obj) and type(obj[0]) is int and obj[0] > max(Kind)


def decode_record(obj: Any) -> Record | None:
    """Turn one unpacked msgpack object into a record; None for a kind this version skips.

    A malformed record of a known kind raises ``TraceError``.
    """
    if type(obj) is not list or not obj or type(obj[0]) is not int:
        return None
    kind = obj[0]
    try:
        if kind == 2:  # Kind.FRAME, the hot path
            n = len(obj)
            if n < 6:
                raise TraceDamaged("a frame record has too few fields")
            conn, t_ns, d, op, payload = obj[1], obj[2], obj[3], obj[4], obj[5]
            if type(conn) is not int or type(t_ns) is not int or type(payload) is not bytes:
                raise TraceDamaged("a frame record has fields of the wrong type")
            fin = obj[6] if n > 6 else True
            if type(fin) is not bool:
                raise TraceDamaged("a frame record's fin flag is not a boolean")
            return Frame(conn, t_ns, _DIRECTIONS[d], _OPCODES[op], payload, fin)
        if kind == Kind.OPEN:
            f = _fields(obj, 4)
            return Open(
                conn=_int(obj[1]),
                t_ns=_int(obj[2]),
                url=_str(f.get("url", "")),
                request_headers=_headers(f.get("req_headers", [])),
                response_headers=_headers(f.get("resp_headers", [])),
                status=_int(f.get("status", 101)),
                subprotocol=_opt_str(f.get("subprotocol")),
                client_addr=_opt_str(f.get("client_addr")),
                server_addr=_opt_str(f.get("server_addr")),
                handshake_ns=_opt_int(f.get("handshake_ns")),
                transport=_str(f.get("transport", "websocket")),
                extra={k: v for k, v in f.items() if k not in _OPEN_KEYS},
            )
        if kind == Kind.CLOSE:
            f = _fields(obj, 4)
            return Close(
                conn=_int(obj[1]),
                t_ns=_int(obj[2]),
                code=_opt_int(f.get("code")),
                reason=_str(f.get("reason", "")),
                by=_opt_str(f.get("by")),
                error=_opt_str(f.get("error")),
            )
        if kind == Kind.ANNOTATION:
            f = _fields(obj, 4)
            data = f.get("data", {})
            return Annotation(
                conn=_opt_int(obj[1]),
                t_ns=_int(obj[2]),
                label=_str(f.get("label", "")),
                note=_str(f.get("note", "")),
                data=data if type(data) is dict else {},
            )
        if kind == Kind.HEADER:
            f = _fields(obj, 2)
            meta = f.get("meta", {})
            unit = f.get("time_unit_ns", 1)
            if type(unit) is not int or not 1 <= unit <= MAX_TIME_UNIT_NS:
                raise TraceDamaged("the header's time unit is not a valid number of ns")
            return Header(
                format_version=_int(f.get("format")),
                tracer_version=_str(f.get("tracer", "")),
                anchor_unix_ns=_int(f.get("anchor_unix_ns")),
                metadata=meta if type(meta) is dict else {},
                time_unit_ns=unit,
            )
        if kind == Kind.FOOTER:
            f = _fields(obj, 3)
            return Footer(
                t_ns=_int(obj[1]),
                records=_int(f.get("records")),
                connections=_int(f.get("connections")),
                frames=_int(f.get("frames")),
                payload_bytes=_int(f.get("payload_bytes")),
                dropped_frames=_int(f.get("dropped_frames", 0)),
            )
    except (KeyError, IndexError, TypeError):
        raise TraceDamaged(f"a {_kind_name(kind)} record is malformed") from None
    return None


_OPEN_KEYS = frozenset(
    ["url", "req_headers", "resp_headers", "status", "subprotocol", "client_addr",
     "server_addr", "handshake_ns", "transport"]
)  # fmt: skip


def _kind_name(kind: int) -> str:
    try:
        return Kind(kind).name.lower()
    except ValueError:
        return f"kind-{kind}"


def _fields(obj: list[Any], size: int) -> dict[Any, Any]:
    if len(obj) < size or type(obj[size - 1]) is not dict:
        raise TraceDamaged(f"a {_kind_name(obj[0])} record has no field map")
    fields: dict[Any, Any] = obj[size - 1]
    return fields


def _int(v: Any) -> int:
    if type(v) is not int:
        raise TraceDamaged("a record field that should be an integer is not")
    return v


def _opt_int(v: Any) -> int | None:
    return None if v is None else _int(v)


def _str(v: Any) -> str:
    if type(v) is not str:
        raise TraceDamaged("a record field that should be text is not")
    return v


def _opt_str(v: Any) -> str | None:
    return None if v is None else _str(v)


def _headers(v: Any) -> list[tuple[str, str]]:
    if type(v) is not list:
        raise TraceDamaged("a header list is not a list")
    out = []
    for pair in v:
        if type(pair) is not list or len(pair) != 2:
            raise TraceDamaged("a header is not a name/value pair")
        out.append((_str(pair[0]), _str(pair[1])))
    return out


@contextlib.contextmanager
def open_trace(
    path: str | os.PathLike[str], *, max_record_size: int = DEFAULT_MAX_RECORD_SIZE
) -> Iterator[TraceReader]:
    """Open a trace file for reading; errors opening it become ``TraceError``."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise TraceError(f"cannot open {os.fspath(path)!r}: {exc.strerror or exc}") from None
    with f:
        yield TraceReader(f, max_record_size=max_record_size)
