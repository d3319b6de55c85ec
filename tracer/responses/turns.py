"""What the protocol model knows of a turn and of a connection (plain data, no I/O)."""

from __future__ import annotations

import json
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from tracer.trace.caps import MAX_JSON_OBJECTS, cap, objects_exceeded
from tracer.trace.errors import LimitExceeded
from tracer.trace.records import Frame

try:  # a faster JSON parser when installed (see bench/bench_analysis.py)
    import orjson

    _loads: Any = orjson.loads
except ImportError:  # pragma: no cover - orjson is a declared dependency
    _loads = json.loads

__all__ = ["TEXT_LIMIT", "Connection", "Turn", "dict_items", "loads", "output_text"]


def dict_items(value: Any) -> list[dict[str, Any]]:
    """The dict elements of ``value`` when it is a list; nothing otherwise (hostile input)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def output_text(output: Any) -> str:
    """The text of a response's output: its messages' text parts, joined."""
    return "".join(
        str(part.get("text", ""))
        for item in dict_items(output)
        if item.get("type", "message") == "message"
        for part in dict_items(item.get("content"))
    )


TEXT_LIMIT = 256 * 1024
"""Characters of a turn's output text kept for its detail view (``tracer turn --all``
keeps all): the rest is counted, not held."""

_OBJECTS = cap("TRACER_MAX_JSON_OBJECTS", MAX_JSON_OBJECTS)
_PRECHECK = 64 * 1024  # a message shorter than this cannot hold the cap's worth of objects


def loads(data: bytes) -> Any:
    """Parse JSON bytes; None when they are not JSON. ``LimitExceeded`` for a message of
    more JSON objects than the objects cap (``tracer.trace.caps``): memory stays bounded."""
    if len(data) > _PRECHECK and data.count(b"{") > _OBJECTS:
        raise LimitExceeded(objects_exceeded(_OBJECTS))
    try:
        return _loads(data)
    except ValueError:
        return None


@dataclass(slots=True)
class Turn:
    """One request and what answered it: a ``response.create`` up to its end."""

    index: int  # order in which turns started, from 0
    conn: int
    stream_id: str | None
    t_create: int  # ns, when the create was sent
    request: dict[str, Any]  # the create's body (minus "type")
    request_bytes: int  # payload bytes of the create frame
    transport: str = "websocket"
    response_id: str | None = None
    previous_response_id: str | None = None
    status: str = "unfinished"  # completed, failed, incomplete, error, unfinished
    error_code: str | None = None
    error_message: str | None = None
    t_first_event: int | None = None
    t_first_token: int | None = None
    t_end: int | None = None
    usage: dict[str, Any] | None = None
    output: list[dict[str, Any]] = field(default_factory=list)
    text: list[str] = field(default_factory=list)  # output text deltas, in order (a prefix)
    text_chars: int = 0  # characters of output text the deltas carried, kept or not
    events: int = 0  # server events attributed to this turn
    event_bytes: int = 0
    event_types: Counter[str] = field(default_factory=Counter)
    steers: int = 0
    frames: list[Frame] = field(default_factory=list)  # with keep_frames: the turn's own
    frames_bytes: int = 0  # payload bytes of the frames offered to ``frames``
    frames_dropped: bool = False  # over the segmenter's budget: ``frames`` is empty
    done_items: list[dict[str, Any]] = field(default_factory=list)  # output_item.done items
    copies: list[dict[str, Any]] = field(default_factory=list)  # other copies of reasoning
    vendor_events: int = 0  # events that are not the protocol's, before response.created

    @property
    def warmup(self) -> bool:
        return self.request.get("generate") is False

    def add_text(self, delta: str, limit: int) -> None:
        """Keep an output text delta, up to ``limit`` characters of text in all (a hostile
        trace can stream a gibibyte); ``text_chars`` counts them all."""
        kept = self.text_chars
        self.text_chars += len(delta)
        if kept < limit:
            self.text.append(delta if kept + len(delta) <= limit else delta[: limit - kept])

    @property
    def input_items(self) -> list[Any]:
        value = self.request.get("input")
        if value is None:
            return []
        if isinstance(value, str):
            return [{"role": "user", "content": value}]
        if isinstance(value, list):
            return value
        return [value]


@dataclass(slots=True)
class Connection:
    """What the model knows about one connection of the trace."""

    conn: int
    url: str = ""
    transport: str = "websocket"
    t_open: int = 0
    t_close: int | None = None
    handshake_ns: int | None = None
    status: int = 101
    close_code: int | None = None
    close_by: str | None = None
    close_error: str | None = None
    client_frames: int = 0
    server_frames: int = 0
    client_bytes: int = 0
    server_bytes: int = 0
    message_types: Counter[str] = field(default_factory=Counter)  # "client:type" -> count
    orphan_events: int = 0  # server events that belong to no turn
    turns: int = 0
    named_lanes: bool = False  # a create with a stream_id was seen
    lanes: dict[str | None, deque[Turn]] = field(default_factory=dict)
