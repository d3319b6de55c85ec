"""What a protocol model is to the segmenter: a claim on connections and a reader of each
connection it claimed (no I/O)."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import orjson

from tracer.protocols.events import Event
from tracer.protocols.turns import TEXT_LIMIT, Connection, Turn
from tracer.trace.errors import LimitExceeded
from tracer.trace.records import Close, Frame

__all__ = ["Book", "Protocol", "Reader", "Tokens", "json_type_is", "token_count"]


class Tokens(NamedTuple):
    """A turn's token counts as the service reported them; None: not reported."""

    input: int | None = None
    cached: int | None = None
    output: int | None = None
    input_audio: int | None = None
    output_audio: int | None = None
    cache_write: int | None = None  # input tokens written to the cache (billed from gpt-5.6)


def token_count(usage: Any, *path: str) -> int | None:
    """A token count from a usage object, or None when the server did not report it."""
    value: Any = usage
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def json_type_is(payload: bytes, kind: str) -> bool:
    """Whether a JSON message's ``type`` is ``kind`` (parsed: the test that is sure)."""
    try:
        message = orjson.loads(payload)
    except ValueError:
        return False
    return isinstance(message, dict) and message.get("type") == kind


class Book:
    """What every reader asks of the segmenter that owns it: numbers for new turns (within
    the turns cap), and the frames and text each turn keeps for the detail views."""

    def __init__(
        self,
        *,
        collect_text: bool = False,
        text_limit: int = TEXT_LIMIT,
        keep_frames: bool = False,
        frame_budget: int = 64 * 1024 * 1024,
        max_turns: int | None = None,
    ) -> None:
        self.collect_text = collect_text
        self.text_limit = text_limit  # characters of output text kept per turn
        self.keep_frames = keep_frames  # each turn keeps its create, steers and events
        self.frame_budget = frame_budget  # payload bytes of frames one turn keeps at most
        self.max_turns = max_turns
        self._next_index = 0

    def next_index(self, c: Connection) -> int:
        """The number of a new turn on ``c``; ``LimitExceeded`` past the turns cap."""
        if self.max_turns is not None and self._next_index >= self.max_turns:
            raise LimitExceeded(
                f"the trace holds more than {self.max_turns:,} turns (the turns cap; "
                "raise it with TRACER_MAX_TURNS=N)"
            )
        index = self._next_index
        self._next_index += 1
        c.turns += 1
        return index

    def attribute(self, turn: Turn, frame: Frame, kind: str) -> None:
        """A server message belongs to ``turn``: count it, and keep it for the frame view."""
        turn.events += 1
        turn.event_types[kind] += 1
        self.keep(turn, frame)

    def keep(self, turn: Turn, frame: Frame) -> None:
        """Keep a frame for the turn's frame view, within the turn's budget."""
        if not self.keep_frames or turn.frames_dropped:
            return
        turn.frames_bytes += len(frame.payload)
        if turn.frames_bytes > self.frame_budget:
            turn.frames, turn.frames_dropped = [], True  # read them again when asked
        else:
            turn.frames.append(frame)


class Reader:
    """Reads one connection's messages for its protocol; the segmenter has counted their
    frames and bytes already. Returns the events each message caused (None: none)."""

    def client(self, frame: Frame) -> list[Event] | None:
        return None

    def server(self, frame: Frame) -> list[Event] | None:
        return None

    def bulk(self) -> re.Pattern[bytes] | None:
        """A pattern matching the start of the server messages this reader can count a run
        of at once (``count_bulk``), with one group that names each one's kind; it must not
        match a ``0xFF`` byte. None: every message is read one by one (``server``)."""
        return None

    def count_bulk(self, kinds: list[bytes], times: list[int], first: int) -> None:
        """A run of consecutive server messages ``bulk`` matched,
        each one's kind as the pattern's group found it; the first one's time is
        ``times[first]``, the next ones' follow. Counts them as ``server`` would."""
        raise NotImplementedError

    def pending(self) -> list[Turn]:
        """The turns in flight, in the order they started."""
        return []

    def close(self, record: Close, failure: str | None) -> list[Event]:
        """The connection closed: end what is in flight (cut short when ``failure``, the
        close's error code, says the close was not a normal one)."""
        return []

    def finish(self) -> list[Turn]:
        """The trace ended: the turns still in flight, handed over and forgotten."""
        return []


class Protocol:
    """One protocol tracer understands: which connections are its, how to read them, and
    how its usage objects name token counts. A new protocol is a new module with one of
    these, listed in ``tracer.protocols.registry``."""

    name = ""  # as reports name it (``tracer.vocab.PROTOCOLS`` has the words for it)

    def claims_open(self, path: str, transport: str, subprotocol: str | None) -> bool:
        """Whether a connection is this protocol's from its upgrade (or HTTP request)."""
        return False

    def claims_message(self, client: bool, kind: str) -> bool:
        """Whether a connection no upgrade settled is this protocol's, from a message's
        ``type`` (sent by the client when ``client``)."""
        return False

    def reader(self, book: Book, connection: Connection) -> Reader:
        raise NotImplementedError

    def starts_turn(self, client: bool, payload: bytes, http: bool) -> bool:
        """Whether a whole text message starts a turn, for the recorder's live count: a
        cheap byte test first, as it runs on every frame."""
        return False

    def tokens(self, usage: Any) -> Tokens:
        return Tokens()
