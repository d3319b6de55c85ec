"""The OpenAI Live API's protocol model (``/v1/live/sessions``): a connection's frames ->
turn events (no I/O).

There is no ``response.create``: the client streams its microphone
(``session.input_audio.append``) and the service answers when it hears the speaker stop. A
turn is one spoken answer, trigger ``vad``: it starts at the speech's end and runs from its
first ``session.output_audio.delta`` (or output transcript) to its last; it is over when
the service reports the session's usage (``session.usage.updated``), when the speaker talks
again (the next ``session.input_transcript.delta``), or when the session ends. The service
holds the session, so every turn refers to what came before (``Turn.continues``).

The speech's end is never sent as an event. It is taken from the input transcript's
``end_ms`` (a position in the session's input audio), placed at the moment the client
appended the audio that reached that position (``speech_end`` ``transcript``, an
estimate); without a transcript, at the last audible input chunk (``estimate``). Usage is
in seconds (``input_seconds``/``output_seconds``, growing over the session) with the
context window's ``usage_ratio``: a turn's ``billed_s`` is what its usage update added.
"""

from __future__ import annotations

import base64
import binascii
from collections import deque
from typing import Any

from tracer.gemini.model import audible
from tracer.protocols.base import Book, Protocol, Reader, Tokens, json_type_is
from tracer.protocols.events import Event, TurnEnded, TurnStarted
from tracer.protocols.turns import Connection, Turn, VoiceTurn, loads
from tracer.trace.records import Close, Frame

__all__ = ["OPENAI_LIVE", "LiveProtocol", "LiveReader"]

RATE = 48_000  # bytes per second: 16-bit PCM at 24 kHz, each way
APPENDS_KEPT = 4096
"""Input appends remembered (where each ended, when it was sent) to place a speech end."""

_CLIENT = frozenset(["session.start", "session.input_audio.append", "session.close"])
_SERVER = frozenset(["session.started"])
_SECONDS = ("input_seconds", "output_seconds", "input_audio_seconds", "output_audio_seconds")


def _seconds(usage: Any) -> float | None:
    """The seconds a usage object counts, each way together; None when it counts none."""
    if not isinstance(usage, dict):
        return None
    values = [
        float(v)
        for v in (usage.get(name) for name in _SECONDS)
        if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    return sum(values) if values else None


class LiveProtocol(Protocol):
    """The OpenAI Live API (``gpt-live-1``): ``/v1/live/sessions`` WebSockets."""

    name = "openai-live"

    def claims_open(self, path: str, transport: str, subprotocol: str | None) -> bool:
        return transport == "websocket" and path.rstrip("/").endswith("/live/sessions")

    def claims_message(self, client: bool, kind: str) -> bool:
        return kind in _CLIENT if client else kind in _SERVER

    def reader(self, book: Book, connection: Connection) -> LiveReader:
        return LiveReader(book, connection)

    def starts_turn(self, client: bool, payload: bytes, http: bool) -> bool:
        # An answer follows the speaker's words, which the service transcribes first.
        return (
            not client
            and b'"session.input_transcript.delta"' in payload[:96]
            and json_type_is(payload, "session.input_transcript.delta")
        )

    def tokens(self, usage: Any) -> Tokens:
        return Tokens()  # the Live API bills seconds, not tokens (VoiceReport.billed_s)


OPENAI_LIVE = LiveProtocol()


class LiveReader(Reader):
    """One Live session's frames -> turn events."""

    def __init__(self, book: Book, connection: Connection) -> None:
        self.seg = book
        self.c = connection
        self.model: str | None = None
        self.appended = 0  # input audio bytes in all: the session's audio timeline
        self.appends: deque[tuple[int, int]] = deque(maxlen=APPENDS_KEPT)  # (end, t_ns)
        self.audio_in = 0  # since the last turn
        self.t_last_audible: int | None = None
        self.speech_end_ms: int | None = None  # the latest input transcript's end_ms
        self.t_transcribed: int | None = None
        self.billed = 0.0  # seconds the session's usage had reached
        self.current: Turn | None = None
        self.t_last_output: int | None = None
        self.said: list[str] = []  # the current answer's output transcript

    # -- the Reader interface ---------------------------------------------------------------

    def client(self, frame: Frame) -> list[Event] | None:
        body = loads(frame.payload)
        kind = body.get("type") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(kind, str):
            self.c.message_types["client:<non-json>"] += 1
            return None
        self.c.message_types[f"client:{kind}"] += 1
        if kind == "session.start":
            session = body.get("session")
            model = session.get("model") if isinstance(session, dict) else None
            self.model = model if isinstance(model, str) else self.model
        elif kind == "session.input_audio.append":
            audio = body.get("audio")
            try:
                pcm = base64.b64decode(audio) if isinstance(audio, str) else b""
            except (binascii.Error, ValueError):
                pcm = b""
            self.appended += len(pcm)
            self.audio_in += len(pcm)
            self.appends.append((self.appended, frame.t_ns))
            if audible(pcm):
                self.t_last_audible = frame.t_ns
        return None

    def server(self, frame: Frame) -> list[Event] | None:
        event = loads(frame.payload)
        kind = event.get("type") if isinstance(event, dict) else None
        if not isinstance(event, dict) or not isinstance(kind, str):
            self.c.message_types["server:<non-json>"] += 1
            return None
        self.c.message_types[f"server:{kind}"] += 1
        if kind == "session.input_transcript.delta":
            events = self._end_current()  # the speaker talks again: the answer is over
            end_ms = event.get("end_ms")
            if isinstance(end_ms, int) and not isinstance(end_ms, bool) and end_ms >= 0:
                self.speech_end_ms = end_ms
            self.t_transcribed = frame.t_ns
            return events or None
        if kind in ("session.output_audio.delta", "session.output_transcript.delta"):
            return self._output(frame, kind, event.get("delta"))
        if kind == "session.usage.updated":
            turn = self.current
            if turn is None:
                return None
            self.seg.attribute(turn, frame, kind)
            self._usage(turn, event.get("usage"))
            return self._end_current() or None
        if kind == "session.closed":
            return self._end_current() or None
        if kind != "session.started":
            self.c.orphan_events += 1
        return None

    def pending(self) -> list[Turn]:
        return [self.current] if self.current is not None else []

    def finish(self) -> list[Turn]:
        turn, self.current = self.current, None
        return [self._settle(turn)] if turn is not None else []

    def close(self, record: Close, failure: str | None) -> list[Event]:
        turns = self.finish()
        for turn in turns:
            if failure is not None:  # the close cut the answer short
                turn.status, turn.error_code = "error", failure
                turn.error_message = record.error or record.reason or None
                turn.t_end = record.t_ns
            else:
                turn.status, turn.t_end = "completed", self.t_last_output
        return [TurnEnded(t) for t in turns]

    # -- turns ------------------------------------------------------------------------------

    def _output(self, frame: Frame, kind: str, delta: Any) -> list[Event] | None:
        events = self._start(frame) if self.current is None else []
        turn = self.current
        assert turn is not None and turn.voice is not None
        self.seg.attribute(turn, frame, kind)
        self.t_last_output = frame.t_ns
        if turn.t_first_token is None:
            turn.t_first_token = frame.t_ns
        if kind == "session.output_audio.delta" and isinstance(delta, str):
            turn.voice.output_audio_bytes += len(delta) * 3 // 4 - delta[-2:].count("=")
            if turn.voice.t_first_audio is None:
                turn.voice.t_first_audio = frame.t_ns
        elif isinstance(delta, str):
            if sum(map(len, self.said)) < self.seg.text_limit:
                self.said.append(delta)
            if self.seg.collect_text:
                turn.add_text(delta, self.seg.text_limit)
        return events or None

    def _speech_end(self) -> tuple[int | None, str | None]:
        """When the speech ended, and from what: the transcript's end_ms placed on the
        appends' timeline, else the last audible chunk."""
        if self.speech_end_ms is not None:
            at = self.speech_end_ms * RATE // 1000
            for end, t_ns in self.appends:
                if end >= at:
                    return t_ns, "transcript"
        if self.t_last_audible is not None:
            return self.t_last_audible, "estimate"
        return None, None

    def _start(self, frame: Frame) -> list[Event]:
        t_speech_end, source = self._speech_end()
        voice = VoiceTurn(
            input_audio_bytes=self.audio_in,
            input_rate=RATE,
            output_rate=RATE,
            t_speech_stopped=t_speech_end,
            t_transcribed=self.t_transcribed,
            speech_end=source,
        )
        # The audio is not in the trace's JSON: the item names where it lies in the session.
        heard = {"type": "input_audio", "from_byte": self.appended - self.audio_in,
                 "bytes": self.audio_in}  # fmt: skip
        items = [{"type": "message", "role": "user", "content": [heard]}]
        turn = Turn(
            index=self.seg.next_index(self.c),
            conn=self.c.conn,
            stream_id=None,
            t_create=t_speech_end if t_speech_end is not None else frame.t_ns,
            request={"input": items if self.audio_in else []},
            request_bytes=0,
            protocol="openai-live",
            trigger="vad",
            continues=True,
            voice=voice,
        )
        turn.model = self.model
        turn.t_first_event = frame.t_ns
        self.audio_in, self.t_last_audible, self.speech_end_ms = 0, None, None
        self.t_transcribed = None
        self.current = turn
        return [TurnStarted(turn)]

    def _usage(self, turn: Turn, usage: Any) -> None:
        turn.usage = usage if isinstance(usage, dict) else None
        voice = turn.voice
        assert voice is not None
        seconds = _seconds(usage)
        if seconds is not None:
            voice.billed_s = round(max(0.0, seconds - self.billed), 3)
            self.billed = seconds
        window = usage.get("context_window") if isinstance(usage, dict) else None
        ratio = window.get("usage_ratio") if isinstance(window, dict) else None
        if isinstance(ratio, int | float) and not isinstance(ratio, bool):
            voice.context_ratio = float(ratio)

    def _end_current(self) -> list[Event]:
        turn, self.current = self.current, None
        if turn is None:
            return []
        turn.t_end = self.t_last_output or turn.t_first_event
        turn.status = "completed"
        return [TurnEnded(self._settle(turn))]

    def _settle(self, turn: Turn) -> Turn:
        """The answer's transcript as its output item."""
        said, self.said = "".join(self.said), []
        if said and not turn.output:
            content = [{"type": "output_audio", "text": said}]
            turn.output = [{"type": "message", "role": "assistant", "content": content}]
        return turn
