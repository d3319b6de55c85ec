"""Record types of a tracer trace, and their msgpack encoding and decoding.

Every record is a msgpack array whose first element is its kind. Frames, the
bulk of any trace, are positional arrays so that they stay small and fast to
decode; the rarer records carry a map of named fields so they can grow. Each
record type's ``decode`` stands next to its ``encode``; frames are decoded by
the reader's batch path (and ``compat`` for version 1's single frames).
``docs/format.md`` is the specification; this module is its implementation.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from tracer.trace.errors import TraceDamaged
from tracer.trace.format import MAX_TIME_UNIT_NS

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
    "kind_byte",
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


def kind_byte(direction: Direction, opcode: Opcode, fin: bool) -> int:
    """A frame's kind byte in a frame batch: bits 0-3 the opcode, bit 4 the direction, and
    ``NOT_LAST`` for a fragment that is not its message's last."""
    return direction << 4 | opcode | (0 if fin else NOT_LAST)


FRAME_KINDS: dict[int, tuple[Direction, Opcode, bool]] = {
    kind_byte(d, op, fin): (d, op, fin) for d in Direction for op in Opcode for fin in (True, False)
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

    @classmethod
    def decode(cls, obj: list[Any]) -> Header:
        f = _fields(obj, 2)
        meta = f.get("meta", {})
        unit = f.get("time_unit_ns", 1)
        if type(unit) is not int or not 1 <= unit <= MAX_TIME_UNIT_NS:
            raise TraceDamaged("the header's time unit is not a valid number of ns")
        return cls(
            format_version=_int(f.get("format")),
            tracer_version=_str(f.get("tracer", "")),
            anchor_unix_ns=_int(f.get("anchor_unix_ns")),
            metadata=meta if type(meta) is dict else {},
            time_unit_ns=unit,
        )


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

    @classmethod
    def decode(cls, obj: list[Any]) -> Open:
        f = _fields(obj, 4)
        return cls(
            conn=_conn(obj[1]),
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

    @classmethod
    def decode(cls, obj: list[Any]) -> Close:
        f = _fields(obj, 4)
        return cls(
            conn=_conn(obj[1]),
            t_ns=_int(obj[2]),
            code=_opt_int(f.get("code")),
            reason=_str(f.get("reason", "")),
            by=_opt_str(f.get("by")),
            error=_opt_str(f.get("error")),
        )


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

    @classmethod
    def decode(cls, obj: list[Any]) -> Annotation:
        f = _fields(obj, 4)
        data = f.get("data", {})
        return cls(
            conn=None if obj[1] is None else _conn(obj[1]),
            t_ns=_int(obj[2]),
            label=_str(f.get("label", "")),
            note=_str(f.get("note", "")),
            data=data if type(data) is dict else {},
        )


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

    @classmethod
    def decode(cls, obj: list[Any]) -> Footer:
        f = _fields(obj, 3)
        return cls(
            t_ns=_int(obj[1]),
            records=_int(f.get("records")),
            connections=_int(f.get("connections")),
            frames=_int(f.get("frames")),
            payload_bytes=_int(f.get("payload_bytes")),
            dropped_frames=_int(f.get("dropped_frames", 0)),
        )


Record = Header | Open | Frame | Close | Annotation | Footer

_OPEN_KEYS = frozenset(
    ["url", "req_headers", "resp_headers", "status", "subprotocol", "client_addr",
     "server_addr", "handshake_ns", "transport"]
)  # fmt: skip


def kind_name(kind: Any) -> str:
    """A record kind's name, for messages ("kind-N" for one this version does not know)."""
    try:
        return Kind(kind).name.lower()
    except ValueError:
        return f"kind-{kind}"


# Field checks of the decoders: a value of the wrong type is damage, never a crash.


def _fields(obj: list[Any], size: int) -> dict[Any, Any]:
    if len(obj) < size or type(obj[size - 1]) is not dict:
        raise TraceDamaged(f"a {kind_name(obj[0])} record has no field map")
    fields: dict[Any, Any] = obj[size - 1]
    return fields


def _int(v: Any) -> int:
    if type(v) is not int:
        raise TraceDamaged("a record field that should be an integer is not")
    return v


def _opt_int(v: Any) -> int | None:
    return None if v is None else _int(v)


CONN_MIN, CONN_MAX = -(2**63), 2**63 - 1
"""Connection ids fit a signed 64-bit column (Parquet, DuckDB): anything else is damage."""


def _conn(v: Any) -> int:
    if type(v) is not int or not CONN_MIN <= v <= CONN_MAX:
        raise TraceDamaged("a connection id is not an integer of 64 bits")
    return v


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
