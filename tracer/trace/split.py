"""Keys split across records: WebSocket fragments, and runs of ``*.delta`` events.

A key streamed as ``"sk-pr"`` then ``"oj-…"`` is in no single frame, so redacting frame by
frame misses it. ``SplitKeys`` sits between the recorder's queue and the trace writer. It
joins the *joinable text* of consecutive pieces of one stream (a connection and direction):
the whole payload of each fragment of a message, or the ``delta`` string of each event of a
run of same-typed ``*.delta`` events. A frame whose piece may still be continued (the joined
text ends in a run of key characters) is held back; keys found on the joined text are mapped
back onto the frames they cover: the marker goes where the key began and the rest of the key
is cut from the frames after it. Keys within one piece are left to the per-frame pass.

Record order is kept: a held frame holds back every record after it, and a stream's held
frames are let go as soon as its text moves past the open token, when its run ends, when the
connection closes, or when the caller says the queue went idle (``release``). Holding is
bounded: an open token longer than ``MAX_TOKEN`` bytes lets its frames go.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from typing import Any

from tracer.trace.records import Close

__all__ = ["MAX_TOKEN", "SplitKeys"]

MAX_TOKEN = 8192  # an open token longer than this is let go (no key is that long)

# What a key (and a JSON escape inside one) is made of: a token ends at anything else.
_KEY_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-+/.\\"
_DELTA = re.compile(rb'"delta"\s*:\s*"((?:[^"\\]|\\.)*)"', re.DOTALL)
_TYPE = re.compile(rb'"type"\s*:\s*"([^"\\]{1,200}\.delta)"')
_CONTROL = 8  # opcodes from 8 on are control frames, allowed inside a fragmented message
_TEXT = 1

Item = tuple[Any, ...]  # (conn, t_ns, direction, opcode, payload, fin, seq)


class _Piece:
    __slots__ = ("cuts", "end", "entry", "start")

    def __init__(self, entry: list[Any], start: int, end: int) -> None:
        self.entry = entry  # the queue entry: [item, held]
        self.start, self.end = start, end  # the joinable bytes within the payload
        self.cuts: list[tuple[int, int, bytes]] = []  # (start, end, replacement) in payload


class _Run:
    """One stream's pieces joined so far: ``text`` is their joinable bytes end to end."""

    __slots__ = ("kind", "offsets", "pieces", "scanned", "text")

    def __init__(self, kind: bytes) -> None:
        self.kind = kind  # b"fragments", or the type of the delta events
        self.pieces: list[_Piece] = []
        self.offsets: list[int] = []  # where each piece's bytes start in ``text``
        self.text = bytearray()
        self.scanned = 0  # keys before this offset are already mapped back


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
    ) -> None:
        self._find = find
        self._shortest = shortest  # no secret ``find`` knows is shorter: less is not searched
        self._queue: deque[list[Any]] = deque()  # [item, held piece or None], in order
        self._runs: dict[tuple[int, int], _Run] = {}
        self._fragmenting: set[tuple[int, int]] = set()  # streams inside a fragmented message

    @property
    def holding(self) -> bool:
        return bool(self._queue)

    def push(self, item: Any) -> list[Any]:
        """Take one queued item (a frame tuple or a record); return the items ready to
        write, in order, frames with their split keys cut out."""
        entry: list[Any] = [item, None]
        self._queue.append(entry)
        if type(item) is tuple:
            self._frame(entry, item)
        else:
            if isinstance(item, Close):  # the connection's runs end with it
                conn = item.conn
                for key in [k for k in self._runs if k[0] == conn]:
                    self._finish(key)
                self._fragmenting = {k for k in self._fragmenting if k[0] != conn}
        return self._ready()

    def release(self) -> list[Any]:
        """Let every held frame go (the queue is idle, or recording ends)."""
        for key in list(self._runs):
            self._finish(key)
        return self._ready()

    def _frame(self, entry: list[Any], item: Item) -> None:
        conn, _t, direction, opcode, payload, fin, _seq = item
        op = int(opcode)
        if op >= _CONTROL:
            return  # pings may sit inside a fragmented message: they break no run
        key = (conn, int(direction))
        kind: bytes | None = None
        start, end = 0, len(payload)
        if key in self._fragmenting or not fin:
            kind = b"fragments"
            if fin:
                self._fragmenting.discard(key)
            else:
                self._fragmenting.add(key)
        elif op == _TEXT and b'.delta"' in payload:
            typed = _TYPE.search(payload)
            delta = _DELTA.search(payload) if typed else None
            if typed and delta:
                kind, (start, end) = typed.group(1), delta.span(1)
        run = self._runs.get(key)
        if run is not None and (kind is None or run.kind != kind):
            self._finish(key)
            run = None
        if kind is None:
            return
        if run is None:
            run = self._runs[key] = _Run(kind)
        piece = _Piece(entry, start, end)
        entry[1] = piece
        run.offsets.append(len(run.text))
        run.pieces.append(piece)
        run.text += payload[start:end]
        self._settle(key, run)

    def _settle(self, key: tuple[int, int], run: _Run) -> None:
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

    def _finish(self, key: tuple[int, int]) -> None:
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

    def _ready(self) -> list[Any]:
        out = []
        queue = self._queue
        while queue and not isinstance(queue[0][1], _Piece):
            item, done = queue.popleft()
            out.append(done if done is not None else item)
        return out


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
