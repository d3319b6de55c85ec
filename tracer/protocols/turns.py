"""What every protocol model knows of a turn and of a connection (plain data, no I/O).

The protocol-neutral core: a ``Turn`` is one request of the client (or one answer the
server started on its own) and what answered it; a ``Connection`` is one connection of the
trace with its byte and frame counts and the protocol that claimed it. What only one
protocol knows sits in the turn's ``voice`` part (Realtime) or in its protocol's reader.
"""

from __future__ import annotations

import json
from collections import Counter
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

__all__ = ["TEXT_LIMIT", "Connection", "Turn", "VoiceTurn", "dict_items", "loads"]


def dict_items(value: Any) -> list[dict[str, Any]]:
    """The dict elements of ``value`` when it is a list; nothing otherwise (hostile input)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


TEXT_LIMIT = 256 * 1024
"""Characters of a turn's output text kept for its detail view (``tracer turn --all``
keeps all): the rest is counted, not held."""

_OBJECTS = cap("TRACER_MAX_JSON_OBJECTS", MAX_JSON_OBJECTS)
# Each object takes two bytes at least ("{}"): a shorter message cannot exceed the cap.
_PRECHECK = 2 * (_OBJECTS + 1)


def loads(data: bytes) -> Any:
    """Parse JSON bytes; None when they are not JSON. ``LimitExceeded`` for a message of
    more JSON objects than the objects cap (``tracer.trace.caps``): memory stays bounded."""
    if len(data) >= _PRECHECK and data.count(b"{") > _OBJECTS:
        raise LimitExceeded(objects_exceeded(_OBJECTS))
    try:
        return _loads(data)
    except ValueError:
        return None


@dataclass(slots=True)
class VoiceTurn:
    """What a voice protocol (Realtime, Gemini Live) knows of a turn besides the core: audio
    in and out and the moments voice latency is measured between (ns; None: never seen)."""

    input_audio_bytes: int = 0  # PCM bytes appended for the turn (decoded from base64)
    output_audio_bytes: int = 0  # PCM bytes of output audio streamed in the turn
    input_rate: int = 0  # bytes per second of the input audio format (0: unknown)
    output_rate: int = 0
    t_speech_stopped: int | None = None  # the server's speech_stopped that led to the turn
    t_first_audio: int | None = None  # the first output audio delta
    t_transcribed: int | None = None  # the input transcript completed
    silence_ms: int | None = None  # the turn detection's silence_duration_ms
    interrupted: bool = False
    cut_bytes: int = 0  # output audio bytes the client truncated (played no further)
    played: dict[str, int] = field(default_factory=dict)  # truncated item -> bytes played
    items: list[str] = field(default_factory=list)  # output item ids
    audio_item: str | None = None  # the user audio item that started the turn
    text: bool = False  # the turn's output was text (no audio expected)
    # Where t_speech_stopped comes from: "server" (the service's event), "client" (the
    # client's end-of-audio message), "transcript" (the input transcript's end_ms, placed
    # on the appends' timeline) or "estimate" (the last audible input audio).
    speech_end: str | None = "server"
    billed_s: float | None = None  # seconds the service billed for the turn (OpenAI Live)
    context_ratio: float | None = None  # the context window's use after the turn (Live)

    def seconds(self, n: int, rate: int) -> float | None:
        return round(n / rate, 3) if rate else None


@dataclass(slots=True)
class Turn:
    """One request and what answered it: a ``response.create`` up to its end, or a
    response the server started on its own (Realtime voice activity detection)."""

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
    event_types: Counter[str] = field(default_factory=Counter)
    steers: int = 0
    frames: list[Frame] = field(default_factory=list)  # with keep_frames: the turn's own
    frames_bytes: int = 0  # payload bytes of the frames offered to ``frames``
    frames_dropped: bool = False  # over the segmenter's budget: ``frames`` is empty
    done_items: list[dict[str, Any]] = field(default_factory=list)  # output_item.done items
    copies: list[dict[str, Any]] = field(default_factory=list)  # other copies of reasoning
    vendor_events: int = 0  # events that are not the protocol's, before response.created
    protocol: str = "responses"  # the protocol's name (``tracer.protocols``)
    trigger: str = "client"  # "client" (a create) or "vad" (the server heard speech end)
    continues: bool = False  # the server holds the connection's conversation (Realtime)
    voice: VoiceTurn | None = None  # the voice part (Realtime)
    model: str | None = None  # the session's model, where the request does not name one
    timing: dict[str, Any] | None = None  # the service's timing_metrics of the turn
    kind: str = "response"  # or "compaction" (a compact call); warm-ups: see ``warmup``
    # A session resumed on a new connection (Gemini Live): the handle it resumed from, and
    # the handles the server issued after this turn (a later connection may resume one).
    resumes: str | None = None
    handles: list[str] = field(default_factory=list)
    injected: list[Any] = field(default_factory=list)  # items the server accepted mid-turn
    rejected: list[str] = field(default_factory=list)  # codes of injections it refused

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
    subprotocol: str | None = None
    protocol: str | None = None  # the protocol that claimed it; None: none (yet)
    reader: Any = None  # the claiming protocol's reader of this connection
    sniffed: int = 0  # messages looked at before a protocol claimed it
