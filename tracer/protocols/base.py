"""What a protocol model is to the segmenter: a claim on connections and a reader of each
connection it claimed (no I/O)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from tracer.protocols.events import Event
from tracer.protocols.turns import Connection, Turn
from tracer.trace.records import Close, Frame

if TYPE_CHECKING:
    from tracer.protocols.segmenter import Segmenter

__all__ = ["Protocol", "Reader", "Tokens", "json_type_is", "token_count"]


class Tokens(NamedTuple):
    """A turn's token counts as the service reported them; None: not reported."""

    input: int | None = None
    cached: int | None = None
    output: int | None = None
    input_audio: int | None = None
    output_audio: int | None = None


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


class Reader:
    """Reads one connection's messages for its protocol; the segmenter has counted their
    frames and bytes already. Returns the events each message caused (None: none)."""

    def client(self, frame: Frame) -> list[Event] | None:
        return None

    def server(self, frame: Frame) -> list[Event] | None:
        return None

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

    def reader(self, segmenter: Segmenter, connection: Connection) -> Reader:
        raise NotImplementedError

    def starts_turn(self, client: bool, payload: bytes, http: bool) -> bool:
        """Whether a whole text message starts a turn, for the recorder's live count: a
        cheap byte test first, as it runs on every frame."""
        return False

    def tokens(self, usage: Any) -> Tokens:
        return Tokens()
