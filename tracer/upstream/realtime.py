"""The scripted upstream's Realtime API: client events in, server events out (no I/O).

Plays the shapes of the GA Realtime API (``../shared/docs/live-protocols.md``): a session
announced on connect and changed by ``session.update``; conversation items; input audio
appended in base64 PCM16 chunks, with server voice activity detection that hears speech from
the chunks' energy and its end after the session's ``silence_duration_ms`` of quiet audio
(counted in audio time, so tests are exact); responses asked for by the client or started by
the detection, with text, synthetic PCM audio and its transcript, or a function call; a
running response cancelled by ``response.cancel`` or by speech; usage with text, audio and
cached tokens. ``RealtimeScript`` sets the delays and faults; every response is logged in
``RealtimeEngine.log``, the ground truth tests compare tracer's figures with.
"""

# Over 400 lines: the whole scripted Realtime service, session, detection and responses.
from __future__ import annotations

import array
import base64
import math
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RealtimeConnection", "RealtimeEngine", "RealtimeScript", "Reply", "Response", "tone"]

RATE = 24_000  # samples per second of the session's PCM16 audio, each way


def tone(ms: int, *, amplitude: int = 8000, rate: int = RATE, hz: float = 440.0) -> bytes:
    """``ms`` of a sine tone as 16-bit little-endian PCM (amplitude 0: silence)."""
    samples = array.array(
        "h",
        (int(amplitude * math.sin(2 * math.pi * hz * i / rate)) for i in range(ms * rate // 1000)),
    )
    if sys.byteorder != "little":  # pragma: no cover - the wire is little-endian
        samples.byteswap()
    return samples.tobytes()


@dataclass(slots=True)
class RealtimeScript:
    """How the scripted Realtime service behaves (every delay in ms)."""

    model: str = "gpt-realtime"
    voice: str = "alloy"
    silence_duration_ms: int = 500  # the server VAD's, until a session.update changes it
    threshold: int = 1000  # peak PCM amplitude that counts as speech
    created_ms: float = 5.0  # the trigger -> response.created
    first_audio_ms: float = 40.0  # the trigger (speech_stopped, or a create) -> first output
    chunk_ms: int = 50  # audio per output delta
    chunk_gap_ms: float = 2.0  # between output deltas
    answer_audio_ms: int = 600  # audio of each spoken answer
    transcription_ms: float = 20.0  # speech_stopped -> the input transcript completed
    close_on_response: int | None = None  # 0-based: this response's audio ends in a close
    close_code: int = 1011
    answers: tuple[str, ...] = ("Hello there.", "Sure, here it is.", "Anything else?")


@dataclass(slots=True)
class Reply:
    """An event to send ``delay`` ms after the previous one of its batch."""

    event: dict[str, Any]
    delay: float = 0.0


@dataclass(slots=True)
class Response:
    """A response in progress: its events, sent by the shell with their delays; cancelled
    by the engine when asked (the shell then sends ``RealtimeConnection.finish``)."""

    id: str
    trigger: str
    steps: list[Reply]
    audio: bool = False  # spoken, or text only
    call: tuple[str, str] | None = None  # a function call: name, arguments
    text: str = ""
    base: dict[str, Any] = field(default_factory=dict)  # the response object's fields
    item: dict[str, Any] = field(default_factory=dict)  # its output item
    in_text: int = 0  # input tokens: text, audio, cached
    in_audio: int = 0
    cached: int = 0
    input_audio_s: float = 0.0
    close: int | None = None  # close the connection after the steps (a scripted fault)
    cancelled: bool = False
    reason: str = "turn_detected"  # why it was cancelled
    sent_audio_bytes: int = 0
    first_audio_ns: int | None = None  # when the shell sent its first audio (monotonic)
    stopped_ns: int | None = None  # when it sent the speech_stopped that led to it
    first_audio_event: str | None = None  # the event ids of those two
    stopped_event: str | None = None


@dataclass(slots=True)
class _Vad:
    speaking: bool = False
    quiet_ms: int = 0
    audio_ms: int = 0  # audio appended to the buffer, in ms
    start_ms: int = 0
    buffer_bytes: int = 0


@dataclass(slots=True)
class RealtimeConnection:
    """One Realtime connection of the scripted service."""

    engine: RealtimeEngine
    number: int
    model: str
    session: dict[str, Any] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)  # the conversation
    vad: _Vad = field(default_factory=_Vad)
    running: Response | None = None
    held_tokens: int = 0  # input tokens the conversation holds (what caching can reuse)
    pending_audio_item: str | None = None
    audio_s_pending: float = 0.0  # seconds of the audio committed for the next response
    stopped_ns: int | None = None  # when the shell sent the latest speech_stopped (monotonic)
    stopped_event: str | None = None  # its event id
    _ids: int = 0

    def _id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}_{self.number}_{self._ids}"

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "event_id": self._id("event"), **fields}

    # -- the session ------------------------------------------------------------------------

    def opening(self) -> list[Reply]:
        s = self.engine.script
        self.session = {
            "type": "realtime",
            "object": "realtime.session",
            "id": f"sess_{self.number}",
            "model": self.model,
            "output_modalities": ["audio"],
            "instructions": "",
            "tools": [],
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": RATE},
                    "transcription": None,
                    "turn_detection": {
                        "type": "server_vad",
                        "threshold": 0.5,
                        "prefix_padding_ms": 300,
                        "silence_duration_ms": s.silence_duration_ms,
                        "create_response": True,
                        "interrupt_response": True,
                    },
                },
                "output": {"format": {"type": "audio/pcm", "rate": RATE}, "voice": s.voice},
            },
        }
        return [Reply(self._event("session.created", session=self.session))]

    def receive(self, event: dict[str, Any]) -> tuple[list[Reply], Response | None]:
        """A client event: the events to send now, and maybe a response to run."""
        kind = event.get("type")
        if kind == "session.update":
            return self._update(event.get("session")), None
        if kind == "conversation.item.create":
            return self._item(event.get("item")), None
        if kind == "input_audio_buffer.append":
            return self._append(event.get("audio"))
        if kind == "input_audio_buffer.commit":
            return self._commit(), None
        if kind == "input_audio_buffer.clear":
            self.vad = _Vad()
            return [Reply(self._event("input_audio_buffer.cleared"))], None
        if kind == "response.create":
            if self.running is not None:
                return [
                    self._error(
                        "conversation_already_has_active_response",
                        "Conversation already has an active response.",
                    )
                ], None
            response = event.get("response")
            return [], self._respond("client", response if isinstance(response, dict) else {})
        if kind == "response.cancel":
            if self.running is None:
                return [self._error("response_cancel_not_active", "No active response.")], None
            self.running.cancelled = True
            self.running.reason = "client_cancelled"
            self.running = None
            return [], None
        if kind == "conversation.item.truncate":
            return self._truncate(event), None
        return [self._error("invalid_event", f"Unknown event type {kind!r}.")], None

    def _error(self, code: str, message: str) -> Reply:
        return Reply(
            self._event(
                "error",
                error={
                    "type": "invalid_request_error",
                    "code": code,
                    "message": message,
                    "param": None,
                },
            )
        )

    def _update(self, update: Any) -> list[Reply]:
        if isinstance(update, dict):
            audio = update.get("audio")
            for key, value in update.items():
                if key != "audio":
                    self.session[key] = value
            if isinstance(audio, dict):
                for side in ("input", "output"):
                    if isinstance(audio.get(side), dict):
                        self.session["audio"][side].update(audio[side])
        return [Reply(self._event("session.updated", session=self.session))]

    def _item(self, item: Any) -> list[Reply]:
        if not isinstance(item, dict):
            return [self._error("invalid_value", "The item is not an object.")]
        stored = {
            "id": item.get("id") or self._id("item"),
            "object": "realtime.item",
            **{k: v for k, v in item.items() if k != "id"},
            "status": "completed",
        }
        previous = self.items[-1]["id"] if self.items else None
        self.items.append(stored)
        return [
            Reply(self._event("conversation.item.added", previous_item_id=previous, item=stored)),
            Reply(self._event("conversation.item.done", previous_item_id=previous, item=stored)),
        ]

    # -- input audio and the detection ------------------------------------------------------------

    def _turn_detection(self) -> dict[str, Any]:
        detection = self.session["audio"]["input"].get("turn_detection")
        return detection if isinstance(detection, dict) else {}

    def _append(self, audio: Any) -> tuple[list[Reply], Response | None]:
        if not isinstance(audio, str):
            return [self._error("invalid_value", "audio must be base64.")], None
        try:
            pcm = base64.b64decode(audio, validate=True)
        except ValueError:
            return [self._error("invalid_value", "audio is not valid base64.")], None
        vad = self.vad
        vad.buffer_bytes += len(pcm)
        ms = len(pcm) * 1000 // (2 * RATE)
        vad.audio_ms += ms
        detection = self._turn_detection()
        if detection.get("type") != "server_vad":
            return [], None
        samples = array.array("h", pcm[: len(pcm) // 2 * 2])
        loud = bool(samples) and max(max(samples), -min(samples)) >= self.engine.script.threshold
        out: list[Reply] = []
        if loud:
            vad.quiet_ms = 0
            if not vad.speaking:
                vad.speaking, vad.start_ms = True, vad.audio_ms - ms
                self.pending_audio_item = self._id("item")
                out.append(
                    Reply(
                        self._event(
                            "input_audio_buffer.speech_started",
                            audio_start_ms=vad.start_ms,
                            item_id=self.pending_audio_item,
                        )
                    )
                )
                if self.running is not None and detection.get("interrupt_response", True):
                    self.running.cancelled = True  # the speaker talked over the answer
                    self.running = None
            return out, None
        if not vad.speaking:
            return [], None
        vad.quiet_ms += ms
        silence = detection.get("silence_duration_ms", self.engine.script.silence_duration_ms)
        if vad.quiet_ms < silence:
            return [], None
        vad.speaking = False
        out.append(
            Reply(
                self._event(
                    "input_audio_buffer.speech_stopped",
                    audio_end_ms=vad.audio_ms,
                    item_id=self.pending_audio_item,
                )
            )
        )
        self.engine.stopped_at(self.number)
        out.extend(self._commit())
        if detection.get("create_response", True) and self.running is None:
            return out, self._respond("vad", {})
        return out, None

    def _commit(self) -> list[Reply]:
        vad = self.vad
        item_id = self.pending_audio_item or self._id("item")
        self.pending_audio_item = None
        seconds = vad.buffer_bytes / (2 * RATE)
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        previous = self.items[-1]["id"] if self.items else None
        self.items.append(item)
        self.engine.audio_in[self.number] = self.engine.audio_in.get(self.number, 0.0) + seconds
        self.audio_s_pending = seconds
        self.vad = _Vad(audio_ms=vad.audio_ms)
        out = [
            Reply(
                self._event(
                    "input_audio_buffer.committed", previous_item_id=previous, item_id=item_id
                )
            ),
            Reply(self._event("conversation.item.added", previous_item_id=previous, item=item)),
            Reply(self._event("conversation.item.done", previous_item_id=previous, item=item)),
        ]
        if isinstance(self.session["audio"]["input"].get("transcription"), dict):
            out.append(
                Reply(
                    self._event(
                        "conversation.item.input_audio_transcription.completed",
                        item_id=item_id,
                        content_index=0,
                        transcript="(speech)",
                        usage={"type": "duration", "seconds": round(seconds, 3)},
                    ),
                    delay=self.engine.script.transcription_ms,
                )
            )
        return out

    def _truncate(self, event: dict[str, Any]) -> list[Reply]:
        item_id = event.get("item_id")
        end_ms = event.get("audio_end_ms")
        self.engine.truncated.append({"item_id": item_id, "audio_end_ms": end_ms})
        return [
            Reply(
                self._event(
                    "conversation.item.truncated",
                    item_id=item_id,
                    content_index=event.get("content_index", 0),
                    audio_end_ms=end_ms,
                )
            )
        ]

    # -- responses ----------------------------------------------------------------------------

    def _respond(self, trigger: str, options: dict[str, Any]) -> Response:
        """Plan a response: its events with their delays; ``finish`` ends it."""
        s = self.engine.script
        number = self.engine.responses
        self.engine.responses += 1
        modalities = options.get("output_modalities") or self.session.get("output_modalities")
        audio = isinstance(modalities, list) and "audio" in modalities
        call = self._call()
        r = Response(self._id("resp"), trigger, [], audio=audio, call=call)
        r.text = s.answers[number % len(s.answers)] if call is None else ""
        r.base = {"id": r.id, "object": "realtime.response", "status": "in_progress",
                  "output": [], "usage": None}  # fmt: skip
        r.steps = [Reply(self._event("response.created", response=r.base), delay=s.created_ms)]
        r.steps += self._call_steps(r) if call is not None else self._message_steps(r)
        if s.close_on_response is not None and number == s.close_on_response:
            r.close = s.close_code  # the connection closes before the item is done
        else:
            r.steps.append(Reply(self._event("response.output_item.done", response_id=r.id,
                                             output_index=0, item=r.item)))  # fmt: skip
        r.in_text = sum(_words(i) for i in self.items) + 4
        r.in_audio = round(self.audio_s_pending * 10) if trigger == "vad" else 0
        r.cached = self.held_tokens // 8 * 8  # the held prefix, in whole blocks
        r.input_audio_s = round(self.audio_s_pending, 3) if trigger == "vad" else 0.0
        self.audio_s_pending = 0.0
        self.running = r
        return r

    def _call_steps(self, r: Response) -> list[Reply]:
        assert r.call is not None
        name, arguments = r.call
        item_id, call_id = self._id("item"), self._id("call")
        r.item = {"id": item_id, "object": "realtime.item", "type": "function_call",
                  "status": "completed", "name": name, "call_id": call_id,
                  "arguments": arguments}  # fmt: skip
        first = max(0.0, self.engine.script.first_audio_ms - self.engine.script.created_ms)
        ids = {"response_id": r.id, "item_id": item_id, "output_index": 0, "call_id": call_id}
        return [
            Reply(self._event("response.output_item.added", response_id=r.id, output_index=0,
                              item={**r.item, "arguments": "", "status": "in_progress"})),
            Reply(self._event("response.function_call_arguments.delta", **ids, delta=arguments),
                  delay=first),
            Reply(self._event("response.function_call_arguments.done", **ids,
                              arguments=arguments, name=name)),
        ]  # fmt: skip

    def _message_steps(self, r: Response) -> list[Reply]:
        item_id = self._id("item")
        part = {"type": "output_audio" if r.audio else "output_text"}
        field = "transcript" if r.audio else "text"
        r.item = {"id": item_id, "object": "realtime.item", "type": "message",
                  "status": "completed", "role": "assistant",
                  "content": [{**part, field: r.text}]}  # fmt: skip
        return [
            Reply(self._event("response.output_item.added", response_id=r.id, output_index=0,
                              item={**r.item, "content": [], "status": "in_progress"})),
            Reply(self._event("response.content_part.added", response_id=r.id, item_id=item_id,
                              output_index=0, content_index=0, part={**part, field: ""})),
            *self._output(r.id, item_id, r.text, r.audio),
        ]  # fmt: skip

    def finish(self, r: Response) -> dict[str, Any]:
        """The ``response.done`` of ``r`` (cancelled when it was), its usage logged."""
        status = "cancelled" if r.cancelled else "completed"
        planned = self.engine.script.answer_audio_ms // 50 if r.audio and r.call is None else 0
        spoken = r.sent_audio_bytes * 1000 // (2 * RATE) // 50 if r.audio else 0
        out_audio = spoken if r.cancelled else planned
        out_text = len(r.text.split()) + (4 if r.call else 0)
        total_in = r.in_text + r.in_audio
        usage = {
            "total_tokens": total_in + out_audio + out_text,
            "input_tokens": total_in,
            "output_tokens": out_audio + out_text,
            "input_token_details": {
                "text_tokens": r.in_text, "audio_tokens": r.in_audio,
                "cached_tokens": min(r.cached, total_in),
                "cached_tokens_details": {"text_tokens": min(r.cached, r.in_text),
                                          "audio_tokens": 0},
            },
            "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio},
        }  # fmt: skip
        self.held_tokens = total_in + out_audio + out_text
        self.items.append(r.item)
        if self.running is r:
            self.running = None
        latency = None
        if r.first_audio_ns is not None and r.stopped_ns is not None:
            latency = (r.first_audio_ns - r.stopped_ns) / 1e6
        self.engine.log.append({
            "connection": self.number, "response_id": r.id, "trigger": r.trigger,
            "status": status, "usage": usage, "input_audio_s": r.input_audio_s,
            "output_audio_s": round(r.sent_audio_bytes / (2 * RATE), 3),
            "call": r.call[0] if r.call else None, "voice_latency_ms": latency,
            "stopped_event": r.stopped_event, "first_audio_event": r.first_audio_event,
        })  # fmt: skip
        details = {"type": "cancelled", "reason": r.reason} if r.cancelled else None
        done = {**r.base, "status": status, "status_details": details, "output": [r.item],
                "usage": usage}  # fmt: skip
        return self._event("response.done", response=done)

    def dropped(self, response: Response) -> None:
        """The scripted fault closed the connection in the middle of ``response``."""
        self.running = None
        self.engine.log.append(
            {
                "connection": self.number,
                "response_id": response.id,
                "trigger": response.trigger,
                "status": "dropped",
                "usage": None,
                "call": None,
            }
        )

    def _call(self) -> tuple[str, str] | None:
        """A function call when the newest user text asks for the weather (and no tool
        output answered it yet)."""
        if not self.items:
            return None
        last = self.items[-1]
        if last.get("type") == "message" and last.get("role") == "user":
            text = " ".join(
                str(p.get("text", "")) for p in last.get("content", []) if isinstance(p, dict)
            )
            if "weather" in text.lower():
                return "get_weather", '{"city":"Paris"}'
        return None

    def _output(self, rid: str, item_id: str, text: str, audio: bool) -> Iterator[Reply]:
        """The answer's deltas: words of text, or audio chunks each with a transcript word."""
        s = self.engine.script
        at = {"response_id": rid, "item_id": item_id, "output_index": 0, "content_index": 0}
        words = [w if i == 0 else " " + w for i, w in enumerate(text.split(" "))]
        first = max(0.0, s.first_audio_ms - s.created_ms)
        if not audio:
            for i, word in enumerate(words):
                delay = first if i == 0 else s.chunk_gap_ms
                yield Reply(self._event("response.output_text.delta", **at, delta=word), delay)
            yield Reply(self._event("response.output_text.done", **at, text=text))
            return
        chunk = base64.b64encode(tone(s.chunk_ms)).decode()
        for i in range(max(1, s.answer_audio_ms // s.chunk_ms)):
            delay = first if i == 0 else s.chunk_gap_ms
            yield Reply(self._event("response.output_audio.delta", **at, delta=chunk), delay)
            if i < len(words):
                kind = "response.output_audio_transcript.delta"
                yield Reply(self._event(kind, **at, delta=words[i]))
        yield Reply(self._event("response.output_audio.done", **at))
        yield Reply(self._event("response.output_audio_transcript.done", **at, transcript=text))


class RealtimeEngine:
    """The scripted Realtime service: its script, connections, and log of responses."""

    def __init__(self, script: RealtimeScript | None = None) -> None:
        self.script = script or RealtimeScript()
        self.log: deque[dict[str, Any]] = deque(maxlen=100_000)
        self.truncated: list[dict[str, Any]] = []
        self.transcripts: list[dict[str, Any]] = []  # each transcript's delay, as sent
        self.audio_in: dict[int, float] = {}
        self.connections = 0
        self.stops: list[int] = []
        self.responses = 0  # responses started

    def connection(self, model: str | None = None) -> RealtimeConnection:
        self.connections += 1
        return RealtimeConnection(self, self.connections, model or self.script.model)

    def stopped_at(self, conn: int) -> None:
        self.stops.append(conn)


def _words(item: dict[str, Any]) -> int:
    parts = item.get("content")
    if not isinstance(parts, list):
        return len(str(item.get("output", "")).split()) + 1
    return (
        sum(
            len(str(p.get("text") or p.get("transcript") or "").split())
            for p in parts
            if isinstance(p, dict)
        )
        + 1
    )
