"""Keys split across records: WebSocket fragments, and streams of ``*.delta`` events.

A key streamed as ``"sk-pr"`` then ``"oj-…"`` is in no single frame, so redacting frame by
frame misses it. ``SplitKeys`` sits between the recorder's queue and the trace writer. It
joins the *joinable text* of the pieces of one stream: the whole payload of each fragment of
a message, or the ``delta`` string of each event of one delta stream, which is one event type
for one output item and content part (``item_id``, ``output_index``, ``content_index``) on
one connection and direction. Events of other streams may come in between (a Realtime
transcript's deltas interleave with audio deltas): they do not break the stream. Audio deltas
(base64) join nothing. A frame whose piece may still be continued (the joined text ends in
a run of key characters) is held back; keys found on the joined text are mapped back onto
the frames they cover: the marker goes where the key began and the rest of the key is cut
from the frames after it. Keys within one piece are left to the per-frame pass.

Order is kept per connection: a held frame holds back the later records of its own
connection only. A stream's held frames are let go as soon as its text moves past the open
token, when its item is done (a ``*.done`` event), when the connection closes, when the
caller says so (``release``), and at the latest ``hold_s`` after the oldest of them came in
(``expire``), whatever the other traffic does. An open token longer than ``MAX_TOKEN``
bytes lets its frames go (no key is that long). ``held_bytes`` is what it holds, for the
caller's memory budget.

A batch of one stream's deltas with no secret in its joined text (the usual burst) takes a
shorter way with the same outcome: one search reads every frame, and only the frames of the
open token are held.
"""

# Over 400 lines: one state machine, its general way and its one-stream way side by side.
from __future__ import annotations

import re
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from itertools import accumulate
from typing import Any

from tracer.trace.records import Close

__all__ = ["HOLD_S", "MAX_TOKEN", "SplitKeys"]

MAX_TOKEN = 8192  # an open token longer than this is let go (no key is that long)
HOLD_S = 1.0  # deltas come milliseconds apart: a held frame waits at most this long

# What a key (and a JSON escape inside one) is made of: a token ends at anything else.
_KEY_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-+/.\\"
_DELTA = re.compile(rb'"delta"\s*:\s*"((?:[^"\\]|\\.)*)"', re.DOTALL)
_TYPE = re.compile(rb'"type"\s*:\s*"([^"\\]{1,200})"')
# A delta event as services write it, in this order: one match finds what
# _TYPE, _DELTA and _stream_of would (the same bytes: each name's first occurrence, its
# value up to the next comma), without a search each. Anything else takes those.
_W = rb"\s{0,4}"  # the space JSON writers put around ':' and ','


def _compact(no: bytes) -> bytes:
    """The expression of a compact delta, ``no`` kept out of every run it has."""
    return (
        rb'\{' + _W + rb'"type"' + _W + rb":" + _W
        + rb'"([^"\\' + no + rb']{1,200})(?<!audio\.delta)"' + _W + rb","  # audio: no text
        + _W + rb'(?:"sequence_number"' + _W + rb":" + _W + rb"\d{1,20}" + _W + rb"," + _W + rb")?"
        + rb'"item_id"(' + _W + rb":" + _W + rb'"[A-Za-z0-9_\-]{0,200}"' + _W + rb"),"
        + _W + rb'"output_index"(' + _W + rb":" + _W + rb"\d{1,10}" + _W + rb"),"
        + _W + rb'"content_index"(' + _W + rb":" + _W + rb"\d{1,10}" + _W + rb"),"
        + _W + rb'"delta"' + _W + rb":" + _W + rb'"'
    )  # fmt: skip


_COMPACT_DELTA = re.compile(_compact(b"") + rb'((?:[^"\\]|\\.)*)"', re.DOTALL)
# The same over a batch's payloads each after b"\xff" (a byte no UTF-8 text holds, kept out
# of every run, so no match reaches into the next payload): one result a payload, empty
# where it is none, its head telling where the delta's text starts.
_BATCH_DELTA = re.compile(rb"\xff(?:(" + _compact(rb"\xff") + rb')((?:[^"\\\xff]|\\[^\xff])*)")?')
_CONTROL = 8  # opcodes from 8 on are control frames, allowed inside a fragmented message
_TEXT = 1

Item = tuple[Any, ...]  # (conn, t_ns, direction, opcode, payload, fin, seq)
Stream = tuple[Any, ...]  # (conn, direction, kind, item id and indexes)


class _Piece:
    __slots__ = ("cuts", "end", "entry", "start")

    def __init__(self, entry: list[Any], start: int, end: int) -> None:
        self.entry = entry  # the queue entry: [item, held]
        self.start, self.end = start, end  # the joinable bytes within the payload
        self.cuts: list[tuple[int, int, bytes]] = []  # (start, end, replacement) in payload


class _Run:
    """One stream's pieces joined so far: ``text`` is their joinable bytes end to end."""

    __slots__ = ("offsets", "pieces", "scanned", "since", "text")

    def __init__(self) -> None:
        self.pieces: list[_Piece] = []
        self.offsets: list[int] = []  # where each piece's bytes start in ``text``
        self.text = bytearray()
        self.scanned = 0  # keys before this offset are already mapped back
        self.since = 0.0  # when its oldest held piece came in


class SplitKeys:
    """Finds keys split across frames of one stream; see the module docstring.

    ``find(text, pos, endpos)`` yields ``(start, end, marker)`` for each key in ``text``;
    the redactor supplies it, so the patterns and markers are the per-frame pass's own, and
    ``shortest``, the length below which it finds nothing.
    """

    def __init__(
        self,
        find: Callable[[bytes, int, int], list[tuple[int, int, bytes]]],
        shortest: int = 1,
        *,
        hold_s: float = HOLD_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._find = find
        self._shortest = shortest  # no secret ``find`` knows is shorter: less is not searched
        self._hold = hold_s
        self._clock = clock
        self._queues: dict[int, deque[list[Any]]] = {}  # conn -> [item, held piece or None]
        self._runs: dict[Stream, _Run] = {}
        self._fragmenting: set[tuple[int, int]] = set()  # streams inside a fragmented message
        self.held_bytes = 0  # payload bytes of the frames it holds (and those behind them)
        self._fast = True  # take a batch of one stream's deltas at once (tests turn it off)

    @property
    def holding(self) -> bool:
        return bool(self._queues)

    def deadline(self) -> float | None:
        """When ``expire`` must next be called (on ``clock``), or None when nothing is held."""
        held = [run.since for run in self._runs.values() if run.pieces]
        return min(held) + self._hold if held else None

    def push(self, item: Any) -> list[Any]:
        """Take one queued item (a frame tuple or a record); return the items ready to
        write, frames with their split keys cut out, in order on each connection."""
        return self.push_many([item])

    def push_many(self, items: list[Any]) -> list[Any]:
        """``push`` for a batch of items at once: the same items come out, with the same
        keys cut out, but each stream's joined text is settled once for the batch, not
        once a frame. Items of one connection keep their order; the items let go come out
        in the order they came in (those held from an earlier batch first)."""
        if self._fast and (fast := self._one_stream(items)) is not None:
            return fast
        batch = object()  # marks this batch's entries until they are let go
        fresh: list[list[Any]] = []  # this batch's entries, in the order they came
        touched: dict[Stream, _Run] = {}  # the runs this batch's pieces joined
        conns: dict[int, None] = {}  # the connections this batch queued items on
        queues = self._queues
        for item in items:
            if type(item) is tuple:
                conn = item[0]
            else:
                conn = getattr(item, "conn", None)
                if conn is None or (conn not in queues and not isinstance(item, Close)):
                    fresh.append([item, None, item])  # nothing of its connection is held
                    continue
            # [the item, None or its held piece or its item with cuts, this batch's mark]
            entry: list[Any] = [item, None, batch]
            queue = queues.get(conn)
            if queue is None:
                queue = queues[conn] = deque()
            queue.append(entry)
            fresh.append(entry)
            conns[conn] = None
            if type(item) is tuple:
                self.held_bytes += len(item[4])
                self._frame(entry, item, touched)
            elif isinstance(item, Close):  # the connection's runs end with it
                for key in [k for k in self._runs if k[0] == conn]:
                    self._finish(key)
                self._fragmenting = {k for k in self._fragmenting if k[0] != conn}
        for key, run in touched.items():
            if self._runs.get(key) is run:  # not finished meanwhile
                self._settle(key, run)
        # Let go what is ready: what an earlier batch held first, then this batch's items
        # in the order they came.
        out: list[Any] = []
        for conn in conns:
            for entry in self._ready_entries(conn):
                if entry[2] is batch:
                    entry[2] = _let_go(entry)
                else:
                    out.append(_let_go(entry))
        out += [e[2] for e in fresh if e[2] is not batch]
        return out

    def _one_stream(self, items: list[Any]) -> list[Any] | None:
        """The usual batch at once: text deltas of one stream, nothing else of their
        connection held, no secret in the joined text. Returns what the general way would
        (the same items let go, the same held); None, with nothing changed, for any other
        batch. One search reads every frame; no frame is looked at one by one."""
        if set(map(type, items)) != {tuple}:
            return None
        heads = {(i[0], i[2], i[3], i[5]) for i in items}
        if len(heads) != 1:
            return None
        conn, direction, opcode, fin = heads.pop()
        if opcode != _TEXT or not fin or (conn, direction) in self._fragmenting:
            return None
        if _COMPACT_DELTA.match(items[0][4]) is None:
            return None  # its first frame is no text delta (audio fails at its type)
        payloads = [i[4] for i in items]
        blob = b"\xff" + b"\xff".join(payloads)
        if blob.count(b"\xff") != len(items):
            return None  # a separator inside a payload
        starts, kinds, ids, outs, parts, texts = zip(*_BATCH_DELTA.findall(blob), strict=True)
        if any(len(set(column)) != 1 for column in (kinds, ids, outs, parts)):
            return None  # not one stream (or not a compact delta)
        kind = kinds[0]
        if not kind.endswith(b".delta"):  # (an audio delta fails the expression at its type)
            return None
        key = (conn, int(direction), kind, ids[0], outs[0], parts[0])
        run = self._runs.get(key)
        queue = self._queues.get(conn)
        held = run.pieces if run is not None else []
        if queue and len(queue) != len(held):
            return None  # something else of the connection is held
        before = len(run.text) if run is not None else 0
        text = (bytes(run.text) if run is not None else b"") + b"".join(texts)
        token = len(text) - len(text.rstrip(_KEY_CHARS))
        open_at = len(text) - token
        scanned = run.scanned if run is not None else 0
        if token > MAX_TOKEN or before > open_at:
            return None  # a long token, or held frames that stay held
        if open_at - scanned >= self._shortest and self._find(text, scanned, open_at):
            return None  # a secret to cut out: the general way maps it onto the frames
        # Commit. Every held piece ends by the open token: it goes, its cuts made.
        out = [_done(piece) for piece in held]
        ends = list(accumulate(map(len, texts), initial=before))
        let_go = bisect_right(ends, open_at) - 1  # the new frames that end by it
        out += items[:let_go]
        self.held_bytes += sum(map(len, payloads[let_go:])) - sum(len(p.entry[0][4]) for p in held)
        if run is None:
            run = self._runs[key] = _Run()
        drop = ends[let_go]
        run.pieces = []
        for i in range(let_go, len(items)):
            start = len(starts[i])
            piece = _Piece([items[i], None, None], start, start + len(texts[i]))
            piece.entry[1] = piece
            run.pieces.append(piece)
        run.offsets = [end - drop for end in ends[let_go:-1]]
        run.text = bytearray(text[drop:])
        run.scanned = max(0, open_at - drop)
        if run.pieces:
            run.since = self._clock()
            self._queues[conn] = deque(p.entry for p in run.pieces)
        else:
            self._queues.pop(conn, None)
        return out

    def release(self) -> list[Any]:
        """Let every held frame go (recording ends)."""
        for key in list(self._runs):
            self._finish(key)
        return self._ready_all()

    def expire(self) -> list[Any]:
        """Let go of the streams whose oldest held frame came in ``hold_s`` ago or more."""
        limit = self._clock() - self._hold
        for key in [k for k, run in self._runs.items() if run.pieces and run.since <= limit]:
            self._finish(key)
        return self._ready_all()

    def _frame(self, entry: list[Any], item: Item, touched: dict[Stream, _Run]) -> None:
        conn, _t, direction, opcode, payload, fin, _seq = item
        op = int(opcode)
        if op >= _CONTROL:
            return  # pings may sit inside a fragmented message: they break no run
        side = (conn, int(direction))
        key: Stream | None = None
        start, end = 0, len(payload)
        if side in self._fragmenting or not fin:
            key = (*side, b"fragments")
            if fin:
                self._fragmenting.discard(side)
            else:
                self._fragmenting.add(side)
        elif op == _TEXT and (m := _compact_delta(payload)) is not None:
            key = (*side, m.group(1), m.group(2), m.group(3), m.group(4))
            start, end = m.span(5)
        elif op == _TEXT and b'"type"' in payload:
            typed = _TYPE.search(payload)
            kind = typed.group(1) if typed else b""
            if kind.endswith(b".delta"):
                if kind.endswith(b"audio.delta"):
                    return  # base64 audio: nothing to join
                delta = _DELTA.search(payload)
                if delta is None:
                    return
                key = (*side, kind, *_stream_of(payload))
                start, end = delta.span(1)
            elif kind.endswith((b".done", b".completed", b".incomplete", b".failed")):
                self._done(side, payload)
                return
        if key is None:
            return
        run = self._runs.get(key)
        if run is None:
            run = self._runs[key] = _Run()
        if not run.pieces:
            run.since = self._clock()
        piece = _Piece(entry, start, end)
        entry[1] = piece
        run.offsets.append(len(run.text))
        run.pieces.append(piece)
        run.text += payload[start:end]
        touched[key] = run  # settled once the batch is in

    def _done(self, side: tuple[int, int], payload: bytes) -> None:
        """An item (or the whole response) is done: its streams end."""
        item = _raw(payload, b'"item_id"')
        for key in [k for k in self._runs if k[:2] == side]:
            if not item or (len(key) > 3 and key[3] == item):
                self._finish(key)

    def _settle(self, key: Stream, run: _Run) -> None:
        """Map back the keys before the open token and let go of the pieces before it."""
        text = run.text
        token = len(text) - len(text.rstrip(_KEY_CHARS))
        if token > MAX_TOKEN:
            self._finish(key)
            return
        open_at = len(text) - token
        self._map(run, open_at)
        ends = [*run.offsets[1:], len(text)]
        keep = 0
        while keep < len(ends) and ends[keep] <= open_at:
            keep += 1
        if keep:
            for piece in run.pieces[:keep]:
                piece.entry[1] = _done(piece)
            drop = ends[keep - 1]
            del run.pieces[:keep]
            run.offsets = [o - drop for o in run.offsets[keep:]]
            del run.text[:drop]
            run.scanned = max(0, run.scanned - drop)
            if run.pieces:
                run.since = self._clock()

    def _finish(self, key: Stream) -> None:
        run = self._runs.pop(key, None)
        if run is None:
            return
        self._map(run, len(run.text))
        for piece in run.pieces:
            piece.entry[1] = _done(piece)

    def _map(self, run: _Run, upto: int) -> None:
        """Cut the keys found in ``run.text[scanned:upto]`` out of the pieces they span."""
        if upto - run.scanned < self._shortest:  # too short to hold a secret
            run.scanned = max(run.scanned, upto)
            return
        text = bytes(run.text)
        for s, e, mark in self._find(text, run.scanned, upto):
            first = _index(run.offsets, s)
            last = _index(run.offsets, e - 1)
            if first == last:
                continue  # within one frame: the per-frame pass redacts it alike
            for i in range(first, last + 1):
                piece, base = run.pieces[i], run.offsets[i]
                lo, hi = max(s, base) - base, min(e, base + piece.end - piece.start) - base
                piece.cuts.append((piece.start + lo, piece.start + hi, mark if i == first else b""))
        run.scanned = upto

    def _ready_entries(self, conn: int) -> list[list[Any]]:
        """Take the entries of ``conn`` no held piece holds back any more."""
        out = []
        queue = self._queues.get(conn)
        while queue and not isinstance(queue[0][1], _Piece):
            entry = queue.popleft()
            if type(entry[0]) is tuple:
                self.held_bytes -= len(entry[0][4])
            out.append(entry)
        if not queue:
            self._queues.pop(conn, None)
        return out

    def _ready(self, conn: int) -> list[Any]:
        return [_let_go(e) for e in self._ready_entries(conn)]

    def _ready_all(self) -> list[Any]:
        out = []
        for conn in list(self._queues):
            out += self._ready(conn)
        return out


def _let_go(entry: list[Any]) -> Any:
    """What an entry let go writes: its item with the cuts made, or the item as it came."""
    return entry[1] if entry[1] is not None else entry[0]


def _compact_delta(payload: bytes) -> re.Match[bytes] | None:
    """A text delta (not audio) written compactly in the usual order, else None."""
    m = _COMPACT_DELTA.match(payload)
    if m is None:
        return None
    kind = m.group(1)
    return m if kind.endswith(b".delta") else None  # audio: refused at its type


def _stream_of(payload: bytes) -> tuple[bytes, ...]:
    """What tells one delta stream from another in the same event type: the item id and the
    output and content indexes, as the event gives them (their raw bytes: one server writes
    them alike every time)."""
    return (_raw(payload, b'"item_id"'), _raw(payload, b'"output_index"'),
            _raw(payload, b'"content_index"'))  # fmt: skip


def _raw(payload: bytes, name: bytes) -> bytes:
    """The raw bytes after a top-level ``name`` up to the next ``,`` or ``}`` (b"" when the
    event has none); ``bytes.find`` is many times cheaper than a regular expression here."""
    at = payload.find(name)
    if at < 0:
        return b""
    at += len(name)
    end = payload.find(b",", at, at + 256)
    if end < 0:
        end = payload.find(b"}", at, at + 256)
    return payload[at:end] if end >= 0 else payload[at : at + 256]


def _index(offsets: list[int], at: int) -> int:
    """The piece whose bytes hold offset ``at`` (offsets ascending)."""
    lo, hi = 0, len(offsets) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if offsets[mid] <= at:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _done(piece: _Piece) -> Any:
    """The piece's item with its cuts applied (the item itself when there are none)."""
    item = piece.entry[0]
    if not piece.cuts:
        return item
    payload = item[4]
    parts, at = [], 0
    for s, e, mark in sorted(piece.cuts):
        parts += [payload[at:s], mark]
        at = max(at, e)
    parts.append(payload[at:])
    return (*item[:4], b"".join(parts), *item[5:])
