"""Record types of a tracer trace, and their msgpack encoding.

Every record is a msgpack array whose first element is its kind. Frames, the
bulk of any trace, are positional arrays so that they stay small and fast to
decode; the rarer records carry a map of named fields so they can grow.
``docs/format.md`` is the specification; this module is its implementation.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "FRAME_KINDS",
    "NOT_LAST",
    "Annotation",
    "Close",
    "Direction",
    "Footer",
    "Frame",
    "Header",
    "Kind",
    "Opcode",
    "Open",
    "Record",
]


class Kind(enum.IntEnum):
    """The kind of a record: the first element of its msgpack array."""

    HEADER = 0
    OPEN = 1
    FRAME = 2
    CLOSE = 3
    ANNOTATION = 4
    FOOTER = 5
    FRAMES = 6  # a batch of frames, stored by column (format version 2)


class Direction(enum.IntEnum):
    """Who sent a frame."""

    CLIENT = 0  # client -> server
    SERVER = 1  # server -> client

    @property
    def label(self) -> str:
        return "client" if self is Direction.CLIENT else "server"


class Opcode(enum.IntEnum):
    """A WebSocket opcode, with the values RFC 6455 gives them."""

    CONT = 0
    TEXT = 1
    BINARY = 2
    CLOSE = 8
    PING = 9
    PONG = 10

    @property
    def label(self) -> str:
        return _OPCODE_LABELS[self]


_OPCODE_LABELS = {
    Opcode.CONT: "continuation",
    Opcode.TEXT: "text",
    Opcode.BINARY: "binary",
    Opcode.CLOSE: "close",
    Opcode.PING: "ping",
    Opcode.PONG: "pong",
}


NOT_LAST = 0x20
"""In a frame batch's kind byte: set for a fragment that is not the last of its message."""

FRAME_KINDS: dict[int, tuple[Direction, Opcode, bool]] = {
    d << 4 | op | (0 if fin else NOT_LAST): (d, op, fin)
    for d in Direction
    for op in Opcode
    for fin in (True, False)
}
"""Every valid kind byte of a frame batch (bits 0-3 the opcode, bit 4 the direction, and
``NOT_LAST``), with the direction, opcode and fin flag it stands for."""


@dataclass(frozen=True, slots=True)
class Header:
    """The first record of a trace: format version, clock anchor and metadata."""

    format_version: int
    tracer_version: str
    anchor_unix_ns: int  # wall-clock time of t_ns == 0
    metadata: dict[str, Any] = field(default_factory=dict)
    time_unit_ns: int = 1  # the file stores times as counts of this many nanoseconds

    def encode(self) -> list[Any]:
        fields = {
            "format": self.format_version,
            "tracer": self.tracer_version,
            "anchor_unix_ns": self.anchor_unix_ns,
            "meta": self.metadata,
        }
        if self.time_unit_ns != 1:
            fields["time_unit_ns"] = self.time_unit_ns
        return [Kind.HEADER, fields]


@dataclass(frozen=True, slots=True)
class Open:
    """A connection was opened: its id, address, redacted headers and handshake timing."""

    conn: int
    t_ns: int  # when the upgrade completed, relative to the header's anchor
    url: str
    request_headers: list[tuple[str, str]] = field(default_factory=list)
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    status: int = 101
    subprotocol: str | None = None
    client_addr: str | None = None
    server_addr: str | None = None
    handshake_ns: int | None = None  # TCP + TLS + upgrade, measured by the recorder
    transport: str = "websocket"  # or "http" for a request/response recorded as frames
    extra: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> list[Any]:
        fields: dict[str, Any] = {
            "url": self.url,
            "req_headers": [list(h) for h in self.request_headers],
            "resp_headers": [list(h) for h in self.response_headers],
            "status": self.status,
            "subprotocol": self.subprotocol,
            "client_addr": self.client_addr,
            "server_addr": self.server_addr,
            "handshake_ns": self.handshake_ns,
            "transport": self.transport,
        }
        fields.update(self.extra)
        return [Kind.OPEN, self.conn, self.t_ns, fields]


class Frame(NamedTuple):
    """One WebSocket message or frame as it crossed the wire, payload bytes as sent."""

    conn: int
    t_ns: int
    direction: Direction
    opcode: Opcode
    payload: bytes
    fin: bool = True  # False for all but the last fragment of a fragmented message

    def encode(self) -> list[Any]:
        if self.fin:
            return [Kind.FRAME, self.conn, self.t_ns, self.direction, self.opcode, self.payload]
        return [Kind.FRAME, self.conn, self.t_ns, self.direction, self.opcode, self.payload, False]


@dataclass(frozen=True, slots=True)
class Close:
    """A connection ended: close code and reason, who closed it, or the error that ended it."""

    conn: int
    t_ns: int
    code: int | None = None
    reason: str = ""
    by: str | None = None  # "client", "server", "recorder", or None when unknown
    error: str | None = None

    def encode(self) -> list[Any]:
        return [
            Kind.CLOSE,
            self.conn,
            self.t_ns,
            {"code": self.code, "reason": self.reason, "by": self.by, "error": self.error},
        ]


@dataclass(frozen=True, slots=True)
class Annotation:
    """A user's mark or note at a point in time, optionally tied to a connection."""

    t_ns: int
    label: str
    note: str = ""
    conn: int | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> list[Any]:
        return [
            Kind.ANNOTATION,
            self.conn,
            self.t_ns,
            {"label": self.label, "note": self.note, "data": self.data},
        ]


@dataclass(frozen=True, slots=True)
class Footer:
    """The last record of a cleanly finished trace: counts for a quick integrity check."""

    t_ns: int
    records: int  # records before the footer, header included
    connections: int
    frames: int
    payload_bytes: int
    dropped_frames: int = 0  # frames the recorder could not write (e.g. disk full)

    def encode(self) -> list[Any]:
        return [
            Kind.FOOTER,
            self.t_ns,
            {
                "records": self.records,
                "connections": self.connections,
                "frames": self.frames,
                "payload_bytes": self.payload_bytes,
                "dropped_frames": self.dropped_frames,
            },
        ]


Record = Header | Open | Frame | Close | Annotation | Footer
