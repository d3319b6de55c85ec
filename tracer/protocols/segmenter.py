"""The segmenter: a trace's records in, typed turn events out, each connection read by the
protocol that claimed it (no I/O).

The segmenter keeps what every protocol shares: the connections with their frame and byte
counts, the caps, the turn numbering and the frames kept for the detail views. Which
protocol a connection speaks is the registry's decision (``tracer.protocols.registry``):
from its upgrade first, else from its first messages. A connection no protocol claims keeps
its connection figures, ``protocol`` None, and no turns: tracer never invents them.
"""

from __future__ import annotations

import functools
import itertools
import operator
import re
from collections.abc import Iterable, Iterator

from tracer.protocols.base import Book, Reader
from tracer.protocols.events import Event, TurnEnded
from tracer.protocols.registry import claim_message, claim_open
from tracer.protocols.turns import TEXT_LIMIT, Connection, loads
from tracer.trace.caps import frames_exceeded
from tracer.trace.errors import LimitExceeded
from tracer.trace.reader import FrameRun
from tracer.trace.records import (
    FRAME_KINDS,
    Close,
    Direction,
    Frame,
    Opcode,
    Open,
    Record,
    kind_byte,
)

__all__ = ["SNIFF_MESSAGES", "Segmenter"]

SNIFF_MESSAGES = 64
"""Messages of a connection its upgrade did not settle that are looked at for a protocol's
claim; past them the connection is of no protocol tracer knows."""

_CLIENT, _TEXT = Direction.CLIENT, Opcode.TEXT
_OBJECT = re.compile(rb"[ \t\r\n]*\{")  # how a JSON object starts: cheaper than a parse
_DATA = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)
_SERVER_TEXT = kind_byte(Direction.SERVER, Opcode.TEXT, True)  # a whole server text message
_OTHER_KINDS = re.compile(b"[^" + re.escape(bytes([_SERVER_TEXT])) + b"]")
_new_frame = functools.partial(tuple.__new__, Frame)
_scanners: dict[bytes, re.Pattern[bytes]] = {}


def _scanner(bulk: re.Pattern[bytes]) -> re.Pattern[bytes]:
    """For a reader's bulk pattern: one that matches at each separator of joined payloads,
    its group what the pattern's group finds in the message after it, or b"" (no match)."""
    scan = _scanners.get(bulk.pattern)
    if scan is None:
        scan = _scanners[bulk.pattern] = re.compile(rb"\xff(?:" + bulk.pattern + rb")?")
    return scan


class Segmenter(Book):
    """Feeds on records; yields ``TurnStarted`` and ``TurnEnded`` events as turns start and
    end (or when the input ends)."""

    def __init__(
        self,
        *,
        collect_text: bool = False,
        text_limit: int = TEXT_LIMIT,
        keep_frames: bool = False,
        frame_budget: int = 64 * 1024 * 1024,
        max_turns: int | None = None,
        max_connections: int | None = None,
        max_frames: int | None = None,
    ) -> None:
        super().__init__(
            collect_text=collect_text,
            text_limit=text_limit,
            keep_frames=keep_frames,
            frame_budget=frame_budget,
            max_turns=max_turns,
        )
        self.connections: dict[int, Connection] = {}
        # Caps (None: none): past them, LimitExceeded, rather than memory without bound.
        self.max_connections = max_connections
        self.max_frames = max_frames
        self._frame_cap = max_frames if max_frames is not None else float("inf")
        self.frames = 0
        self.t_first: int | None = None
        self.t_last: int = 0

    # -- records in, events out ------------------------------------------------------------

    def feed(self, records: Iterable[Record | FrameRun]) -> Iterator[Event]:
        """Process records in trace order, yielding the events they caused. A reader's
        ``FrameRun`` is read a batch at a time where the connection's protocol can: the
        same figures as its frames one by one, faster."""
        frame_type = Frame
        on_frame = self._frame
        for record in records:
            kind = type(record)
            if kind is frame_type:
                # Plain calls, not generators: most frames start or end nothing.
                events = on_frame(record)  # type: ignore[arg-type]
                if events:
                    yield from events
            elif kind is FrameRun:
                yield from self._run(record)  # type: ignore[arg-type]
            elif kind is Open:
                self._open(record)  # type: ignore[arg-type]
            elif kind is Close:
                yield from self._close(record)  # type: ignore[arg-type]

    def finish(self) -> Iterator[TurnEnded]:
        """Turns still in flight when the trace ended: status ``unfinished``."""
        pending = [t for c in self.connections.values() if c.reader for t in c.reader.finish()]
        for turn in sorted(pending, key=lambda t: t.index):
            yield TurnEnded(turn)

    def in_flight(self) -> int:
        """Turns started and not ended yet."""
        return sum(len(c.reader.pending()) for c in self.connections.values() if c.reader)

    def _connection(self, conn: int, t_ns: int) -> Connection:
        c = self.connections.get(conn)
        if c is None:  # frames of a connection whose open record is missing
            self._check_connections(conn)
            c = self.connections[conn] = Connection(conn=conn, t_open=t_ns)
        return c

    def _check_connections(self, conn: int) -> None:
        cap = self.max_connections
        if cap is not None and len(self.connections) >= cap and conn not in self.connections:
            raise LimitExceeded(
                f"the trace holds more than {cap:,} connections (the connections cap; "
                "raise it with TRACER_MAX_CONNECTIONS=N)"
            )

    def _open(self, record: Open) -> None:
        self._check_connections(record.conn)
        c = self.connections[record.conn] = Connection(
            conn=record.conn,
            url=record.url,
            transport=record.transport,
            t_open=record.t_ns,
            handshake_ns=record.handshake_ns,
            status=record.status,
            subprotocol=record.subprotocol,
        )
        protocol = claim_open(record.url, record.transport, record.subprotocol)
        if protocol is not None:
            c.protocol, c.reader = protocol.name, protocol.reader(self, c)
        self._stamp(record.t_ns)

    def _close(self, record: Close) -> list[Event]:
        c = self._connection(record.conn, record.t_ns)
        c.t_close = record.t_ns
        c.close_code, c.close_by, c.close_error = record.code, record.by, record.error
        self._stamp(record.t_ns)
        reader: Reader | None = c.reader
        if reader is None:
            return []
        return reader.close(record, _close_failure(record))

    def _stamp(self, t: int) -> None:
        if self.t_first is None:
            self.t_first = t
        if t > self.t_last:
            self.t_last = t

    def _frame(self, frame: Frame) -> list[Event] | None:
        conn, t, direction, opcode, payload, fin = frame  # unpacked: the hottest path
        c = self.connections.get(conn) or self._connection(conn, t)
        self.frames += 1
        if self.frames > self._frame_cap:
            raise LimitExceeded(frames_exceeded(self.max_frames or 0))
        if t > self.t_last:
            self.t_last = t
        if self.t_first is None:
            self.t_first = t
        client = direction is _CLIENT
        if client:
            c.client_frames += 1
            c.client_bytes += len(payload)
        else:
            c.server_frames += 1
            c.server_bytes += len(payload)
        if opcode is not _TEXT or not fin:
            if opcode in _DATA:
                c.message_types[f"{direction.label}:<{opcode.label}>"] += 1
            return None
        reader: Reader | None = c.reader
        if reader is not None:
            return reader.client(frame) if client else reader.server(frame)
        return self._sniff(c, frame, client)

    def _run(self, run: FrameRun) -> Iterator[Event]:
        """A batch of frames. Runs of whole server text messages on one connection that its
        reader counts in bulk (``Reader.bulk``: streaming deltas, found by a pattern over
        the batch's joined payloads) are counted without a step per frame; every other
        frame goes the way of a lone one."""
        conn = run.conn
        c = self.connections.get(conn) if type(conn) is int else None
        reader = c.reader if c is not None else None
        bulk = reader.bulk() if reader is not None and run.split else None
        if bulk is None or reader is None or c is None or self.keep_frames or self.collect_text:
            yield from self.feed(run)
            return
        scan = _scanner(bulk)
        payloads = run.payloads
        # Where each frame starts in the blob (one separator after the frame before).
        ones = itertools.repeat(1)
        starts = list(itertools.accumulate(map(operator.add, map(len, payloads), ones), initial=0))
        blob, times, kinds, n = run.blob, run.times, run.kinds, run.n
        prev = 0
        # Frames of other kinds are read one by one; between them, whole server messages.
        for end in [*(m.start() for m in _OTHER_KINDS.finditer(kinds)), n]:
            # Each message's kind as the pattern found it; b"": one read by itself (one the
            # pattern does not match, and frame ``end``, of another kind).
            found: list[bytes] = []
            if end > prev:
                stop = starts[end] - 1  # the end of frame end - 1
                if prev == 0:  # the first frame has no separator before it
                    first = bulk.match(blob, 0, starts[1] - 1)
                    found.append(first.group(1) if first else b"")
                    if end > 1:
                        found += scan.findall(blob, starts[1] - 1, stop)
                else:
                    found = scan.findall(blob, starts[prev] - 1, stop)
            if end < n:
                found.append(b"")
            i = 0
            while i < len(found):
                try:
                    j = found.index(b"", i)
                except ValueError:
                    j = len(found)
                if j > i:  # frames prev + i to prev + j - 1: counted in bulk
                    a, b = prev + i, prev + j
                    size = starts[b] - starts[a] - (b - a)
                    self._count_server(c, times, a, b, size)
                    reader.count_bulk(found[i:j], times, a)
                if j < len(found):
                    k = prev + j
                    yield from self._frame_at(run, payloads, k) or ()
                    if reader.bulk() is not bulk:  # the message changed how to read
                        yield from self.feed(itertools.islice(run, k + 1, None))
                        return
                i = j + 1
            prev = end + 1

    def _frame_at(self, run: FrameRun, payloads: list[bytes], i: int) -> list[Event] | None:
        """Frame ``i`` of a batch of one connection, read as a lone frame."""
        d, op, fin = FRAME_KINDS[run.kinds[i]]
        return self._frame(_new_frame((run.conn, run.times[i], d, op, payloads[i], fin)))

    def _count_server(self, c: Connection, times: list[int], i: int, j: int, size: int) -> None:
        """Frames ``i`` to ``j - 1`` of a batch, whole server text messages of ``size``
        bytes in all, counted as ``_frame`` counts each."""
        self.frames += j - i
        if self.frames > self._frame_cap:
            raise LimitExceeded(frames_exceeded(self.max_frames or 0))
        if self.t_first is None:
            self.t_first = times[i]
        last = max(itertools.islice(times, i, j))
        if last > self.t_last:
            self.t_last = last
        c.server_frames += j - i
        c.server_bytes += size

    def _sniff(self, c: Connection, frame: Frame, client: bool) -> list[Event] | None:
        """A message of a connection no protocol has claimed yet: its type may settle it."""
        side = "client" if client else "server"
        body = loads(frame.payload) if _OBJECT.match(frame.payload) else None
        kind = body.get("type") if isinstance(body, dict) else None
        # A message with no type may be named by its one key (Gemini Live's "setup").
        name = kind if kind is not None or not body else next(iter(body))
        if c.sniffed < SNIFF_MESSAGES and (isinstance(name, str) or c.transport == "http"):
            c.sniffed += 1
            protocol = claim_message(client, name if isinstance(name, str) else "")
            if protocol is not None:
                reader = protocol.reader(self, c)
                c.protocol, c.reader = protocol.name, reader
                return reader.client(frame) if client else reader.server(frame)
        if not isinstance(body, dict):
            c.message_types[f"{side}:<non-json>"] += 1
        else:
            c.message_types[f"{side}:{kind}"] += 1
            c.orphan_events += not client
        return None


def _close_failure(record: Close) -> str | None:
    """The error code of turns a close cut short, or None for a normal close."""
    if record.code is None:
        return "connection_dropped" if record.error else None
    if record.code in (1000, 1005):
        return None
    return f"websocket_close_{record.code}"
