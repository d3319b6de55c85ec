"""Gemini Live's protocol model (``BidiGenerateContent``): a connection's frames -> turn
events (no I/O).

Messages are JSON objects named by their one key (``setup``, ``clientContent``,
``realtimeInput``, ``toolResponse``; ``setupComplete``, ``serverContent``, ``toolCall``,
``usageMetadata``, ``goAway``, ``sessionResumptionUpdate``), camelCase or snake_case. A
turn is one model turn: asked for by ``clientContent`` with ``turnComplete``, by a
``toolResponse``, or by the end of the client's audio (``audioStreamEnd``, ``activityEnd``):
trigger ``client``; or started by the service's voice detection, with no client message
marking the end of speech: trigger ``vad``. It ends with ``turnComplete``, or with a
``toolCall`` (the model waits for the results: the next turn). Its input is what the
session gained since the turn before; the service holds the session, so every turn refers to
what came before (``Turn.continues``).

Voice latency runs from the end of the user's speech to the first output audio. The service
says nothing of where speech ended: with the client's ``audioStreamEnd``/``activityEnd``
that message is the end (``speech_end`` ``client``); with the service's detection, the end
is estimated as the last input audio chunk that was not silent (``speech_end``
``estimate``, peak amplitude under ``SILENCE_PEAK``). Usage, transcripts and resumption
handles that follow a turn's end belong to it, so a turn is reported when the next starts.
"""

# Over 400 lines: the whole Gemini Live model, every message and its turn accounting.
from __future__ import annotations

import array
import base64
import binascii
import re
import sys
from typing import Any

import orjson

from tracer.protocols.base import Book, Protocol, Reader, Tokens, token_count
from tracer.protocols.events import Event, TurnEnded, TurnStarted
from tracer.protocols.turns import Connection, Turn, VoiceTurn, loads
from tracer.trace.records import Close, Frame

__all__ = [
    "GEMINI_LIVE",
    "GeminiLiveProtocol",
    "GeminiLiveReader",
    "audible",
    "decode_audio",
    "get_field",
    "message_kind",
    "pcm_rate",
]

SILENCE_PEAK = 500
"""Peak PCM16 amplitude under which an input audio chunk counts as silence."""

DEFAULT_INPUT_RATE = 32_000  # bytes per second: 16-bit PCM at 16 kHz, Gemini's input
DEFAULT_OUTPUT_RATE = 48_000  # 16-bit PCM at 24 kHz, its output

_CLIENT = frozenset(["setup", "clientContent", "realtimeInput", "toolResponse"])
_SERVER = frozenset(
    [
        "setupComplete",
        "serverContent",
        "toolCall",
        "toolCallCancellation",
        "usageMetadata",
        "goAway",
        "sessionResumptionUpdate",
    ]
)
_SNAKE = re.compile(r"_([a-z])")


def _camel(name: str) -> str:
    return _SNAKE.sub(lambda m: m.group(1).upper(), name)


def get_field(d: Any, camel: str) -> Any:
    """A field by its camelCase name, or its snake_case one."""
    if not isinstance(d, dict):
        return None
    if camel in d:
        return d[camel]
    return d.get(re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel))


def _list(value: Any) -> list[Any]:
    """A list field, or none when a hostile trace put anything else there."""
    return value if isinstance(value, list) else []


def message_kind(message: Any, client: bool) -> str | None:
    """A message's name (camelCase): the first of its keys the protocol knows."""
    if not isinstance(message, dict):
        return None
    known = _CLIENT if client else _SERVER
    for key in message:
        name = _camel(key) if isinstance(key, str) else ""
        if name in known:
            return name
    return None


def pcm_rate(mime: Any, default: int) -> int:
    """Bytes per second of 16-bit PCM named by a MIME type (``audio/pcm;rate=16000``)."""
    found = re.search(r"rate=(\d+)", mime) if isinstance(mime, str) else None
    rate = int(found.group(1)) if found else 0
    return 2 * rate if 0 < rate <= 384_000 else default


def decode_audio(data: str) -> bytes:
    """Base64 audio (standard or URL-safe, as the SDKs send it) decoded; b"" if it is not."""
    try:
        return base64.urlsafe_b64decode(data.replace("+", "-").replace("/", "_"))
    except (binascii.Error, ValueError):
        return b""


def audible(pcm: bytes) -> bool:
    """Whether 16-bit PCM reaches SILENCE_PEAK anywhere."""
    samples = array.array("h")
    samples.frombytes(pcm[: len(pcm) // 2 * 2])
    if sys.byteorder != "little":  # pragma: no cover - the wire is little-endian
        samples.byteswap()
    return bool(samples) and max(max(samples), -min(samples)) >= SILENCE_PEAK


def _modality_tokens(details: Any, modality: str) -> int | None:
    if not isinstance(details, list):
        return None
    counts = [
        token_count(d, "tokenCount") or token_count(d, "token_count") or 0
        for d in details
        if isinstance(d, dict) and str(d.get("modality", "")).upper() == modality
    ]
    return sum(counts) if counts else 0


class GeminiLiveProtocol(Protocol):
    """Gemini Live (the Gemini API's and Vertex AI's ``BidiGenerateContent``)."""

    name = "gemini-live"

    def claims_open(self, path: str, transport: str, subprotocol: str | None) -> bool:
        return transport == "websocket" and path.rstrip("/").endswith("BidiGenerateContent")

    def claims_message(self, client: bool, kind: str) -> bool:
        return kind == "setup" if client else kind in ("setupComplete", "setup_complete")

    def reader(self, book: Book, connection: Connection) -> GeminiLiveReader:
        return GeminiLiveReader(book, connection)

    def starts_turn(self, client: bool, payload: bytes, http: bool) -> bool:
        head = payload[:160]
        if client:  # a turn asked for: the client's turn or its tools' results
            return (
                b"urnComplete" in payload[-64:]
                or b"ool_response" in head
                or (b"oolResponse" in head)
            )
        return False

    def tokens(self, usage: Any) -> Tokens:
        def count(name: str) -> int | None:
            value = get_field(usage, name)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        return Tokens(
            input=count("promptTokenCount"),
            cached=count("cachedContentTokenCount"),
            output=(count("responseTokenCount") or 0) + (count("thoughtsTokenCount") or 0)
            if count("responseTokenCount") is not None
            else None,
            input_audio=_modality_tokens(get_field(usage, "promptTokensDetails"), "AUDIO"),
            output_audio=_modality_tokens(get_field(usage, "responseTokensDetails"), "AUDIO"),
        )


GEMINI_LIVE = GeminiLiveProtocol()


class GeminiLiveReader(Reader):
    """One Gemini Live connection's frames -> turn events."""

    def __init__(self, book: Book, connection: Connection) -> None:
        self.seg = book
        self.c = connection
        self.model: str | None = None
        self.audio_out = True  # responseModalities includes AUDIO (the default)
        self.input_rate = DEFAULT_INPUT_RATE
        self.items: list[Any] = []  # what the session gained since the last turn
        self.audio_in = 0  # input audio bytes since the last turn
        self.appended = 0  # input audio bytes in all: the session's audio timeline
        self.t_last_audible: int | None = None  # the last input chunk that was not silent
        self.current: Turn | None = None  # the turn the service is answering
        self.done: list[Turn] = []  # ended, reported when the next turn starts
        self.texts: dict[int, list[str]] = {}  # turn index -> its output text parts
        self.resumes: str | None = None  # the handle the setup resumed, until a turn has it

    # -- the Reader interface ---------------------------------------------------------------

    def client(self, frame: Frame) -> list[Event] | None:
        body = loads(frame.payload)
        kind = message_kind(body, client=True)
        self.c.message_types[f"client:{kind or '<unknown>'}"] += 1
        if kind is None:
            return None
        value = get_field(body, kind)
        if kind == "setup":
            self._setup(value)
        elif kind == "clientContent":
            for turn in _list(get_field(value, "turns")):
                self.items.append(_message(turn))
            if get_field(value, "turnComplete"):
                return self._start(frame, "client", frame.t_ns, "client")
        elif kind == "toolResponse":
            for result in _list(get_field(value, "functionResponses")):
                if isinstance(result, dict):
                    self.items.append(_tool_output(result))
            return self._start(frame, "client", frame.t_ns, None)
        elif kind == "realtimeInput":
            return self._realtime(frame, value)
        return None

    def server(self, frame: Frame) -> list[Event] | None:
        body = loads(frame.payload)
        kind = message_kind(body, client=False)
        self.c.message_types[f"server:{kind or '<unknown>'}"] += 1
        if kind is None:
            self.c.orphan_events += 1
            return None
        events: list[Event] = []
        usage = get_field(body, "usageMetadata")
        if kind in ("serverContent", "toolCall"):
            if self.current is None:  # the service's voice detection started a turn
                events = self._vad(frame)
            turn = self.current
            assert turn is not None
            self.seg.attribute(turn, frame, kind)
            if turn.t_first_event is None:
                turn.t_first_event = frame.t_ns
            if kind == "toolCall":
                self._calls(frame, turn, get_field(body, "toolCall"))
            else:
                self._content(frame, turn, get_field(body, "serverContent"))
        elif kind == "setupComplete" or kind == "usageMetadata":
            pass
        elif kind == "goAway":
            if self.current is not None:
                self.seg.attribute(self.current, frame, kind)
        elif kind == "sessionResumptionUpdate":
            update = get_field(body, kind)
            handle = get_field(update, "newHandle")
            owner = self.current or (self.done[-1] if self.done else None)
            resumable = get_field(update, "resumable") is not False
            if isinstance(handle, str) and handle and owner is not None and resumable:
                owner.handles.append(handle)
        else:
            self.c.orphan_events += 1
        if isinstance(usage, dict):
            owner = self.current or (self.done[-1] if self.done else None)
            if owner is not None:
                owner.usage = usage
        return events or None

    def pending(self) -> list[Turn]:
        turns = [*self.done, *([self.current] if self.current is not None else [])]
        return sorted({id(t): t for t in turns}.values(), key=lambda t: t.index)

    def finish(self) -> list[Turn]:
        pending = [self._settle(t) for t in self.pending()]
        self.done, self.current = [], None
        return pending

    def close(self, record: Close, failure: str | None) -> list[Event]:
        pending = self.finish()
        for turn in pending:
            if failure is not None and turn.t_end is None:
                turn.status, turn.error_code = "error", failure
                turn.error_message = record.error or record.reason or None
                turn.t_end = record.t_ns
        return [TurnEnded(t) for t in pending]

    # -- what the client sends ----------------------------------------------------------------

    def _setup(self, setup: Any) -> None:
        model = get_field(setup, "model")
        if isinstance(model, str):
            self.model = model.removeprefix("models/")
        handle = get_field(get_field(setup, "sessionResumption"), "handle")
        self.resumes = handle if isinstance(handle, str) and handle else None
        modalities = get_field(get_field(setup, "generationConfig"), "responseModalities")
        if isinstance(modalities, list):
            self.audio_out = "AUDIO" in [str(m).upper() for m in modalities]

    def _realtime(self, frame: Frame, value: Any) -> list[Event] | None:
        for blob in (get_field(value, "audio"), *_list(get_field(value, "mediaChunks"))):
            data = get_field(blob, "data")
            if not isinstance(data, str) or not str(get_field(blob, "mimeType") or "").startswith(
                "audio/"
            ):
                continue
            pcm = decode_audio(data)
            self.input_rate = pcm_rate(get_field(blob, "mimeType"), self.input_rate)
            self.audio_in += len(pcm)
            self.appended += len(pcm)
            if audible(pcm):
                self.t_last_audible = frame.t_ns
        ended = get_field(value, "audioStreamEnd") or get_field(value, "activityEnd") is not None
        if ended and self.audio_in and self.current is None:
            return self._start(frame, "client", frame.t_ns, "client")
        return None

    # -- turns ------------------------------------------------------------------------------

    def _start(
        self, frame: Frame, trigger: str, t_start: int, speech_end: str | None
    ) -> list[Event]:
        events = self._flush()
        if self.current is not None:  # a new turn asked for before the last one ended
            self.done.append(self.current)
            events += self._flush()
        heard = self.audio_in > 0
        if heard:  # the audio is not in the trace's JSON: an item names where it lies
            audio = {"type": "input_audio", "from_byte": self.appended - self.audio_in,
                     "bytes": self.audio_in}  # fmt: skip
            self.items.append({"type": "message", "role": "user", "content": [audio]})
        voice = VoiceTurn(
            input_audio_bytes=self.audio_in,
            input_rate=self.input_rate,
            output_rate=DEFAULT_OUTPUT_RATE,
            t_speech_stopped=t_start if heard and speech_end else None,
            text=not self.audio_out,
            speech_end=speech_end if heard else None,
        )
        turn = Turn(
            index=self.seg.next_index(self.c),
            conn=self.c.conn,
            stream_id=None,
            t_create=t_start,
            request={"input": self.items},
            request_bytes=len(frame.payload) if trigger == "client" else 0,
            protocol="gemini-live",
            trigger=trigger,
            continues=True,
            voice=voice,
        )
        turn.model = self.model
        turn.resumes, self.resumes = self.resumes, None
        if trigger == "client":
            self.seg.keep(turn, frame)
        self.items, self.audio_in, self.t_last_audible = [], 0, None
        self.current = turn
        return [*events, TurnStarted(turn)]

    def _vad(self, frame: Frame) -> list[Event]:
        """A turn the service started on its own: speech ended at the last audible chunk
        (an estimate), else at this first message."""
        heard = self.t_last_audible
        start = heard if heard is not None else frame.t_ns
        return self._start(frame, "vad" if self.audio_in else "server", start,
                           "estimate" if heard is not None else None)  # fmt: skip

    def _content(self, frame: Frame, turn: Turn, content: Any) -> None:
        voice = turn.voice
        assert voice is not None
        for part in _list(get_field(get_field(content, "modelTurn"), "parts")):
            blob = get_field(part, "inlineData")
            data = get_field(blob, "data")
            if isinstance(data, str):
                voice.output_rate = pcm_rate(get_field(blob, "mimeType"), voice.output_rate)
                voice.output_audio_bytes += len(decode_audio(data))
                if voice.t_first_audio is None:
                    voice.t_first_audio = frame.t_ns
                if turn.t_first_token is None:
                    turn.t_first_token = frame.t_ns
            text = get_field(part, "text")
            if isinstance(text, str):
                if turn.t_first_token is None:
                    turn.t_first_token = frame.t_ns
                self._text(turn, text)
        said = get_field(get_field(content, "outputTranscription"), "text")
        if isinstance(said, str) and voice.output_audio_bytes:
            self._text(turn, said)
        if get_field(content, "inputTranscription") is not None:
            voice.t_transcribed = frame.t_ns
        if get_field(content, "interrupted"):
            voice.interrupted = True
        if get_field(content, "turnComplete"):
            self._end(frame, turn, "cancelled" if voice.interrupted else "completed")

    def _calls(self, frame: Frame, turn: Turn, call: Any) -> None:
        if turn.t_first_token is None:
            turn.t_first_token = frame.t_ns
        for fc in _list(get_field(call, "functionCalls")):
            if isinstance(fc, dict):
                args = orjson.dumps(fc.get("args") or {}).decode()
                turn.output.append({"type": "function_call", "call_id": fc.get("id"),
                                    "name": fc.get("name"), "arguments": args})  # fmt: skip
        self._end(frame, turn, "completed")

    def _text(self, turn: Turn, text: str) -> None:
        parts = self.texts.setdefault(turn.index, [])
        if sum(map(len, parts)) < self.seg.text_limit:
            parts.append(text)
        if self.seg.collect_text:
            turn.add_text(text, self.seg.text_limit)

    def _end(self, frame: Frame, turn: Turn, status: str) -> None:
        turn.t_end, turn.status = frame.t_ns, status
        self.current = None
        self.done.append(turn)

    def _flush(self) -> list[Event]:
        done, self.done = self.done, []
        return [TurnEnded(self._settle(t)) for t in done]

    def _settle(self, turn: Turn) -> Turn:
        """The turn's answer as an output item: its text (or transcript) in one message."""
        text = "".join(self.texts.pop(turn.index, []))
        if text:
            kind = "output_audio" if turn.voice and turn.voice.output_audio_bytes else "output_text"
            turn.output.insert(0, {"type": "message", "role": "assistant",
                                   "content": [{"type": kind, "text": text}]})  # fmt: skip
        return turn


def _message(turn: Any) -> dict[str, Any]:
    """A ``clientContent`` turn as a message item."""
    role = get_field(turn, "role")
    texts = [p.get("text") for p in _list(get_field(turn, "parts")) if isinstance(p, dict)]
    return {
        "type": "message",
        "role": role if isinstance(role, str) else "user",
        "content": [{"type": "input_text", "text": t} for t in texts if isinstance(t, str)],
    }


def _tool_output(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function_call_output",
        "call_id": result.get("id"),
        "output": orjson.dumps(result.get("response") or {}).decode(),
    }
