"""Recorded connections as replay needs them, and how live messages match them (no I/O).

A recorded connection is a list of *exchanges*: a client message and the server frames that
followed it until the next client message (the first exchange may have no client message:
frames the server sent first). Matching decides whether a live client message is the one
recorded, in one of three modes:

- ``strict``: the payloads are equal once redaction markers are treated as wildcards;
- ``sequence``: the n-th message of the connection, whatever it holds;
- ``tolerant`` (the default): JSON-aware, ignoring key order, redaction markers, values that
  change from run to run (UUIDs, ISO timestamps, ``created_at``-like keys, per-run ids such
  as ``prompt_cache_key``) and the ids the server assigned (they are replayed as recorded,
  so a client echoes them back anyway). ``Ignore`` adds JSON paths to skip.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import orjson

from tracer.files import Spill
from tracer.trace.records import Close, Direction, Frame, Opcode, Open, Record

__all__ = [
    "DEFAULT_IGNORE",
    "MODES",
    "Exchange",
    "Ignore",
    "MatchMode",
    "Mismatch",
    "RecordedConnection",
    "RecordedRequest",
    "Recording",
    "load_connections",
    "load_recording",
    "load_requests",
    "match",
    "payload_of",
    "read_recording",
]

SPILL_AT = 64 * 1024
"""A recorded server frame's payload this large is kept in an anonymous temporary file
(0600, unlinked at once) and read when it is sent: replay's memory holds the recording's
structure, not a gibibyte of deltas."""


class Spilled(bytes):
    """An empty stand-in for a payload kept in a spill file (``payload_of`` reads it)."""

    spill: Spill
    offset: int
    size: int


def payload_of(frame: Frame) -> bytes:
    """A recorded frame's payload, read back from the spill file if it was kept there."""
    p = frame.payload
    if type(p) is Spilled:
        return p.spill.read(p.offset, p.size)
    return p


class _Keeper:
    """Keeps server frames, spilling the large payloads (one spill file, made on need)."""

    def __init__(self) -> None:
        self._spill: Spill | None = None  # lives as long as the frames that name it

    def __call__(self, frame: Frame) -> Frame:
        if len(frame.payload) < SPILL_AT:
            return frame
        if self._spill is None:
            self._spill = Spill()
        spilled = Spilled()
        spilled.spill = self._spill
        spilled.offset, spilled.size = self._spill.add(frame.payload)
        return frame._replace(payload=spilled)


class MatchMode(StrEnum):
    """How a live message is matched against the recorded one (``--match``)."""

    TOLERANT = "tolerant"
    STRICT = "strict"
    SEQUENCE = "sequence"


MODES = tuple(m.value for m in MatchMode)

_MARKER = re.compile(rb"\[REDACTED:[0-9a-f]{10}\]")
_UUID = re.compile(  # a UUID, maybe behind a short prefix: Codex's item ids are msg_<uuid>
    r"^([A-Za-z][A-Za-z0-9]{0,15}[_-])?"
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
_VOLATILE_KEYS = frozenset(
    ["created_at", "create_time", "update_time", "timestamp", "ts", "time", "event_id",
     "request_id", "client_request_id", "nonce", "idempotency_key", "session_id", "trace_id",
     "span_id", "conversation_id", "thread_id", "run_id"]
)  # fmt: skip
DEFAULT_IGNORE = (
    "$.prompt_cache_key", "$.metadata.*", "$.client_metadata.*", "$.safety_identifier", "$.user",
)  # fmt: skip
"""Paths of a request that hold per-run values (a session id as the cache key: opencode's
``ses_…``; run metadata, and Codex's ``client_metadata`` with its installation, session and
turn ids; a per-user identifier): ignored by tolerant matching."""


class Ignore:
    """JSON paths that tolerant matching skips: ``$.a.b``, ``*`` for any one key,
    ``[*]`` for any index (``$.metadata.*``, ``$.input[*].id``)."""

    def __init__(self, paths: Iterable[str] = (), *, defaults: bool = True) -> None:
        self.paths = tuple(DEFAULT_IGNORE if defaults else ()) + tuple(paths)
        for p in self.paths:
            if not p.startswith("$"):
                raise ValueError(f"an ignore path starts with $ ($.key, $.a.*): {p!r}")
        parts = [_path_regex(p) for p in self.paths]
        self._regex = re.compile("|".join(f"(?:{r})" for r in parts)) if parts else None

    def skips(self, path: str) -> bool:
        return self._regex is not None and self._regex.fullmatch(path) is not None


def _path_regex(path: str) -> str:
    out = re.escape(path)
    out = out.replace(r"\[\*\]", r"\[\d+\]")
    return out.replace(r"\*", r"[^.\[\]]+")


_DEFAULT = Ignore()


@dataclass(slots=True)
class Exchange:
    """A client message (None before the first) and the server frames that answered it."""

    client: bytes | None
    client_opcode: Opcode | None
    t_client: int  # ns; for the leading exchange, the connection's open time
    server: list[Frame] = field(default_factory=list)


@dataclass(slots=True)
class RecordedConnection:
    """One recorded connection: its path, its exchanges, how it ended."""

    conn: int
    path: str
    exchanges: list[Exchange]
    close_code: int | None = None
    close_reason: str = ""
    closed_by: str | None = None
    subprotocol: str | None = None

    @property
    def first_message(self) -> bytes | None:
        for ex in self.exchanges:
            if ex.client is not None:
                return ex.client
        return None

    @property
    def turns(self) -> int:
        return sum(ex.client is not None for ex in self.exchanges)


@dataclass(slots=True)
class RecordedRequest:
    """One recorded HTTP request (transport ``http``) and its answer: the status, the
    content type, and the server frames (one per server-sent event, or the whole body)."""

    conn: int
    path: str
    status: int
    content_type: str
    body: bytes
    t_request: int  # ns, when the request body crossed the recorder
    answer: list[Frame] = field(default_factory=list)

    @property
    def streamed(self) -> bool:
        """Answered with server-sent events (else with one body)."""
        return self.content_type.startswith("text/event-stream") or len(self.answer) > 1


@dataclass(slots=True)
class Recording:
    """What a trace holds for replay: its WebSocket connections and its HTTP requests."""

    connections: list[RecordedConnection]
    requests: list[RecordedRequest]


def read_recording(path: str | os.PathLike[str], *, max_frames: int | None = None) -> Recording:
    """A trace file's recording, read in one pass."""
    from tracer.trace.reader import open_trace

    with open_trace(path, max_frames=max_frames) as reader:
        return load_recording(reader)


def load_recording(records: Iterable[Record]) -> Recording:
    """Group a trace's records, in one pass, into recorded WebSocket connections (in the
    order they opened) and HTTP requests (in the order they were made) that got an answer;
    large server payloads are spilled (``payload_of`` reads one)."""
    conns: dict[int, RecordedConnection] = {}
    requests: dict[int, RecordedRequest] = {}
    keep = _Keeper()
    for r in records:
        kind = type(r)
        if kind is Open:
            assert isinstance(r, Open)
            if r.transport == "http":
                ctype = next((v for k, v in r.response_headers if k.lower() == "content-type"), "")
                requests[r.conn] = RecordedRequest(
                    r.conn, _path_of(r.url), r.status, ctype, b"", r.t_ns
                )
            elif r.transport == "websocket" and r.status == 101:
                conns[r.conn] = RecordedConnection(r.conn, _path_of(r.url),
                                                   [Exchange(None, None, r.t_ns)],
                                                   subprotocol=r.subprotocol)  # fmt: skip
        elif kind is Frame:
            assert isinstance(r, Frame)
            if (c := conns.get(r.conn)) is not None:
                _connection_frame(c, r, keep)
            elif (req := requests.get(r.conn)) is not None and r.opcode is Opcode.TEXT:
                if r.direction is Direction.CLIENT:
                    req.body += r.payload
                    req.t_request = r.t_ns
                else:
                    req.answer.append(keep(r))
        elif kind is Close:
            assert isinstance(r, Close)
            if (c := conns.get(r.conn)) is not None:
                c.close_code, c.close_reason, c.closed_by = r.code, r.reason, r.by
    return Recording(list(conns.values()), [r for r in requests.values() if r.answer])


def _connection_frame(c: RecordedConnection, r: Frame, keep: _Keeper) -> None:
    if r.opcode in (Opcode.PING, Opcode.PONG):
        return  # pings are the protocol's business, answered live
    if r.direction is Direction.CLIENT:
        if r.opcode in (Opcode.TEXT, Opcode.BINARY) and r.fin:
            c.exchanges.append(Exchange(r.payload, r.opcode, r.t_ns))
        elif r.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
            # A fragmented client message: replay compares whole messages.
            last = c.exchanges[-1]
            if r.opcode is Opcode.CONT and last.client is not None and not last.server:
                last.client += r.payload
            else:
                c.exchanges.append(Exchange(r.payload, r.opcode, r.t_ns))
    elif r.opcode is not Opcode.CLOSE:
        c.exchanges[-1].server.append(keep(r))


def load_requests(records: Iterable[Record]) -> list[RecordedRequest]:
    """The trace's recorded HTTP requests (``load_recording``)."""
    return load_recording(records).requests


def load_connections(records: Iterable[Record]) -> list[RecordedConnection]:
    """The trace's recorded WebSocket connections (``load_recording``)."""
    return load_recording(records).connections


def _path_of(url: str) -> str:
    """The path and query of a recorded URL (taps may have recorded it whole)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # a URL that does not parse is matched as it is
        return url
    if not parts.scheme:
        return url
    return parts.path + (f"?{parts.query}" if parts.query else "")


@dataclass(slots=True)
class Mismatch:
    """Why a live message does not match a recorded one."""

    where: str  # a JSON path, or "payload"
    recorded: str
    live: str

    def describe(self, *, recorded: bool = True) -> str:
        """Where the message differs and what was received; what the recording holds only
        with ``recorded`` (a client is told where, never the recording's contents)."""
        if recorded:
            return f"at {self.where}: recorded {self.recorded}, received {self.live}"
        return f"at {self.where}: received {self.live}, which is not what was recorded"


def _short(value: Any) -> str:
    try:
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
    except TypeError:  # nested deeper than orjson writes
        text = repr(value)
    return text if len(text) <= 80 else text[:79] + "…"


def match(live: bytes, recorded: bytes, mode: str, ignore: Ignore | None = None) -> Mismatch | None:
    """None when ``live`` matches ``recorded`` in ``mode``; else where they differ.
    ``ignore`` (tolerant mode): the paths to skip, ``DEFAULT_IGNORE`` when None."""
    if mode == "sequence":
        return None
    if mode == "strict":
        return None if _matches_bytes(live, recorded) else _first_difference(live, recorded)
    try:
        a, b = orjson.loads(recorded), orjson.loads(live)
        return _compare(a, b, "$", ignore or _DEFAULT)
    except (orjson.JSONDecodeError, RecursionError):  # not JSON, or nested past any sense
        return None if _matches_bytes(live, recorded) else _first_difference(live, recorded)


def _matches_bytes(live: bytes, recorded: bytes) -> bool:
    """``live`` equals ``recorded``, where each redaction marker of the recording stands for
    any run of characters of a JSON string (a secret the client sends again). A marker in
    the live message is not a wildcard: it must match the recording literally."""
    if not _MARKER.search(recorded):
        return live == recorded
    parts = [re.escape(p) for p in _MARKER.split(recorded)]
    return re.fullmatch(b'[^"\\\\]*'.join(parts), live, re.S) is not None


def _first_difference(live: bytes, recorded: bytes) -> Mismatch:
    n = next((i for i, (x, y) in enumerate(zip(live, recorded, strict=False)) if x != y), None)
    if n is None:
        n = min(len(live), len(recorded))
    return Mismatch(
        f"byte {n}",
        repr(recorded[max(0, n - 20) : n + 40].decode("utf-8", "replace")),
        repr(live[max(0, n - 20) : n + 40].decode("utf-8", "replace")),
    )


def _is_marker(v: Any) -> bool:
    return isinstance(v, str) and bool(_MARKER.search(v.encode()))


_AUDIO_FIELDS = {"input_audio_buffer.append": "audio", "session.input_audio.append": "audio"}
"""Messages whose audio tolerant matching compares by length, not content: a voice client
replayed offline speaks from a microphone, or from a file that was re-encoded (Realtime,
OpenAI Live; Gemini Live's ``realtimeInput.audio.data``, by its path: ``_AUDIO_PATHS``)."""

_AUDIO_PATHS = frozenset(["$.realtimeInput.audio.data", "$.realtime_input.audio.data"])


def _compare(recorded: Any, live: Any, path: str, ignore: Ignore) -> Mismatch | None:
    if _is_marker(recorded) and isinstance(live, str):  # a secret the recording redacted
        return None
    if isinstance(recorded, dict) and isinstance(live, dict):
        audio = _AUDIO_FIELDS.get(str(recorded.get("type"))) if path == "$" else None
        for key in sorted(set(recorded) | set(live)):
            where = f"{path}.{key}"
            if key in _VOLATILE_KEYS or ignore.skips(where):
                continue
            if (
                (key == audio or where in _AUDIO_PATHS)
                and isinstance(recorded.get(key), str)
                and isinstance(live.get(key), str)
            ):
                a, b = len(recorded[key]), len(live[key])
                if a != b:
                    return Mismatch(where, f"{a:,} characters of audio", f"{b:,} characters")
                continue
            if key not in live:
                return Mismatch(where, _short(recorded[key]), "nothing (key missing)")
            if key not in recorded:
                return Mismatch(where, "nothing (key absent)", _short(live[key]))
            found = _compare(recorded[key], live[key], where, ignore)
            if found:
                return found
        return None
    if isinstance(recorded, list) and isinstance(live, list):
        if len(recorded) != len(live):
            return Mismatch(f"{path}", f"{len(recorded)} items", f"{len(live)} items")
        for i, (x, y) in enumerate(zip(recorded, live, strict=True)):
            where = f"{path}[{i}]"
            if ignore.skips(where):
                continue
            found = _compare(x, y, where, ignore)
            if found:
                return found
        return None
    if isinstance(recorded, str) and isinstance(live, str):
        if recorded == live or _volatile_pair(recorded, live):
            return None
        return Mismatch(path, _short(recorded), _short(live))
    if recorded == live and type(recorded) is type(live):
        return None
    return Mismatch(path, _short(recorded), _short(live))


def _volatile_pair(recorded: str, live: str) -> bool:
    """Two values of a kind that changes from run to run: UUIDs (with the same prefix, if
    any), or ISO times."""
    a, b = _UUID.match(recorded), _UUID.match(live)
    if a is not None and b is not None:
        return a.group(1) == b.group(1)
    return bool(_ISO_TIME.match(recorded) and _ISO_TIME.match(live))
