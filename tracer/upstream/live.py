"""The scripted upstream's OpenAI Live API (``/v1/live/sessions``): client events in,
server events out (no I/O).

Plays the shapes of ``../shared/docs/live-protocols.md``: ``session.start`` answered by
``session.started``; ``session.input_audio.append`` chunks of base64 PCM16 (24 kHz), whose
speech the service detects from their energy and answers once a quiet chunk follows (there
is no ``response.create``): ``session.input_transcript.delta`` with the ``start_ms``/``end_ms``
of the speech, synthetic audio in ``session.output_audio.delta`` with its
``session.output_transcript.delta``, then ``session.usage.updated`` (seconds each way and
``context_window.usage_ratio``); ``session.close`` answered by ``session.closed``. Every
answer is logged in ``LiveEngine.log``.
"""

from __future__ import annotations

import base64
import binascii
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tracer.upstream.gemini import SPEECH, Reply, peak
from tracer.upstream.realtime import tone
from tracer.upstream.script import Script, default_script

__all__ = ["CONTEXT_WINDOW_S", "LiveConnection", "LiveEngine"]

RATE = 24_000  # samples per second, each way
BYTES_PER_S = 2 * RATE
CHUNK_MS = 100
WORD_MS = 120
CONTEXT_WINDOW_S = 600.0  # seconds of audio the session's context holds


class LiveConnection:
    """One Live session: its audio timeline, what was heard since the last answer."""

    def __init__(self, engine: LiveEngine, number: int) -> None:
        self.engine = engine
        self.number = number
        self.model = "gpt-live-1"
        self.session_id = f"sess_{engine.script.seed}_{number}"
        self.appended = 0  # input audio bytes in all (the session's timeline)
        self.speech_from: int | None = None  # where the current speech began
        self.speech_to = 0  # where it last was audible (the end of that chunk)
        self.depth = 0
        self.in_s = self.out_s = 0.0  # seconds billed each way

    def receive(self, event: dict[str, Any]) -> list[Reply]:
        kind = event.get("type")
        if kind == "session.start":
            session = event.get("session")
            model = session.get("model") if isinstance(session, dict) else None
            self.model = model if isinstance(model, str) else self.model
            return [Reply({"type": "session.started",
                           "session": {"id": self.session_id, "model": self.model}})]  # fmt: skip
        if kind == "session.input_audio.append":
            return self._append(event.get("audio"))
        if kind == "session.close":
            usage = self._usage()
            return [Reply({"type": "session.closed", "reason": "client_closed", "usage": usage})]
        return []

    def _append(self, audio: Any) -> list[Reply]:
        try:
            pcm = base64.b64decode(audio, validate=True) if isinstance(audio, str) else b""
        except (binascii.Error, ValueError):
            pcm = b""
        start = self.appended
        self.appended += len(pcm)
        self.in_s += len(pcm) / BYTES_PER_S
        if peak(pcm) >= SPEECH:
            if self.speech_from is None:
                self.speech_from = start
            self.speech_to = self.appended
            return []
        if self.speech_from is not None:  # quiet after speech: answer it
            return self._answer()
        return []

    def _usage(self) -> dict[str, Any]:
        used = (self.in_s + self.out_s) / CONTEXT_WINDOW_S
        return {"input_seconds": round(self.in_s, 3), "output_seconds": round(self.out_s, 3),
                "context_window": {"usage_ratio": round(min(1.0, used), 4)}}  # fmt: skip

    def _answer(self) -> list[Reply]:
        script: Script = self.engine.script
        turn = script.turn(self.depth)
        self.depth += 1
        timing = turn.timing or script.timing
        assert self.speech_from is not None
        start_ms = self.speech_from * 1000 // BYTES_PER_S
        end_ms = self.speech_to * 1000 // BYTES_PER_S
        replies = [Reply({"type": "session.input_transcript.delta", "delta": "what was said",
                          "start_ms": start_ms, "end_ms": end_ms})]  # fmt: skip
        pcm = tone(WORD_MS * max(1, len(turn.text.split())), rate=RATE)
        step = BYTES_PER_S * CHUNK_MS // 1000
        for n, at in enumerate(range(0, len(pcm), step)):
            delta = base64.b64encode(pcm[at : at + step]).decode()
            gap = timing.ttft_ms if n == 0 else 1000.0 / timing.tokens_per_s
            replies.append(Reply({"type": "session.output_audio.delta", "delta": delta}, gap))
        out_ms = len(pcm) * 1000 // BYTES_PER_S
        replies.append(Reply({"type": "session.output_transcript.delta", "delta": turn.text,
                              "start_ms": 0, "end_ms": out_ms}))  # fmt: skip
        self.out_s += len(pcm) / BYTES_PER_S
        usage = self._usage()
        replies.append(Reply({"type": "session.usage.updated", "usage": usage}))
        self.engine.log.append({
            "conn": self.number, "session": self.session_id, "model": self.model,
            "speech_start_ms": start_ms, "speech_end_ms": end_ms,
            "input_audio_bytes": self.speech_to - self.speech_from,
            "output_audio_bytes": len(pcm), "text": turn.text, "usage": usage,
        })  # fmt: skip
        self.speech_from = None
        return replies


@dataclass(slots=True)
class LiveEngine:
    """The scripted Live service: its script, sessions, and log of answers."""

    script: Script = field(default_factory=default_script)
    log: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=100_000))
    connections: int = 0

    def connection(self) -> LiveConnection:
        self.connections += 1
        return LiveConnection(self, self.connections)
