"""The scripted upstream's Gemini Live API (``BidiGenerateContent``): client messages in,
server messages out (no I/O).

Plays the shapes of ``../shared/docs/live-protocols.md``: ``setup`` answered by
``setupComplete``; a turn asked for by ``clientContent`` with ``turnComplete``, by a
``toolResponse``, by the end of streamed audio (``audioStreamEnd``, ``activityEnd``), or by
its voice detection (audible ``realtimeInput`` audio, then a silent chunk); answers from the
script's turns: text parts, or synthetic PCM audio in ``inlineData`` parts with its
``outputTranscription``, or a ``toolCall``; ``generationComplete``, ``turnComplete`` and
``usageMetadata`` by modality; ``sessionResumptionUpdate`` handles when the setup asks for
them. Messages are camelCase; snake_case keys from the client are read too. Every answer is
logged in ``GeminiEngine.log``, the ground truth of the tests.
"""

from __future__ import annotations

import base64
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tracer.gemini.model import DEFAULT_INPUT_RATE, decode_audio, get_field, pcm_rate
from tracer.upstream.realtime import tone
from tracer.upstream.script import Script, Timing, default_script

__all__ = ["AUDIO_TOKENS_PER_S", "GeminiConnection", "GeminiEngine", "Reply", "peak"]

AUDIO_TOKENS_PER_S = 32  # as Gemini counts audio
OUTPUT_RATE = 24_000  # samples per second of the answers' PCM16 audio
WORD_MS = 120  # audio per spoken word of an answer
CHUNK_MS = 100  # audio per inlineData part
SPEECH = 1000  # peak amplitude that counts as speech


@dataclass(slots=True)
class Reply:
    """A message to send ``delay`` ms after the previous one."""

    message: dict[str, Any]
    delay: float = 0.0


def peak(pcm: bytes) -> int:
    """The peak amplitude of 16-bit PCM."""
    samples = memoryview(pcm[: len(pcm) // 2 * 2]).cast("h")
    return max((abs(s) for s in samples), default=0)


def _tokens(text: str) -> int:
    return (len(text.encode()) + 3) // 4


class GeminiConnection:
    """One Live session: its setup, what the client gave since the last answer, the answers."""

    def __init__(self, engine: GeminiEngine, number: int) -> None:
        self.engine = engine
        self.number = number
        self.model = ""
        self.audio = False  # responseModalities asks for AUDIO
        self.transcribe_in = self.transcribe_out = False
        self.resumable = False
        self.depth = 0  # model turns answered on this session
        self.context_tokens = 0  # what the session's context holds
        self.text_in = ""  # the client's text since the last answer
        self.audio_in = 0  # PCM bytes of speech since the last answer
        self.audio_rate = DEFAULT_INPUT_RATE  # bytes per second of the input audio
        self.heard = False  # audible audio since the last answer
        self.tool_results = 0

    def receive(self, message: dict[str, Any]) -> list[Reply]:
        """The replies to one client message (an answer's included, with their delays)."""
        setup = get_field(message, "setup")
        if isinstance(setup, dict):
            return self._setup(setup)
        content = get_field(message, "clientContent")
        if isinstance(content, dict):
            for turn in get_field(content, "turns") or []:
                for part in (turn or {}).get("parts") or []:
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        self.text_in += part["text"] + " "
            return self._answer("client") if get_field(content, "turnComplete") else []
        tool = get_field(message, "toolResponse")
        if isinstance(tool, dict):
            self.tool_results += len(get_field(tool, "functionResponses") or [])
            return self._answer("client")
        realtime = get_field(message, "realtimeInput")
        if isinstance(realtime, dict):
            return self._realtime(realtime)
        return []

    def _setup(self, setup: dict[str, Any]) -> list[Reply]:
        self.model = str(setup.get("model") or "").removeprefix("models/")
        config = get_field(setup, "generationConfig") or {}
        modalities = get_field(config, "responseModalities") or ["AUDIO"]
        self.audio = "AUDIO" in [str(m).upper() for m in modalities]
        self.transcribe_in = get_field(setup, "inputAudioTranscription") is not None
        self.transcribe_out = get_field(setup, "outputAudioTranscription") is not None
        resumption = get_field(setup, "sessionResumption")
        self.resumable = resumption is not None
        handle = get_field(resumption, "handle") if isinstance(resumption, dict) else None
        if isinstance(handle, str) and handle in self.engine.handles:
            self.depth, self.context_tokens = self.engine.handles[handle]  # the session resumed
        return [Reply({"setupComplete": {}})]

    def _realtime(self, realtime: dict[str, Any]) -> list[Reply]:
        blob = get_field(realtime, "audio")
        if isinstance(blob, dict) and isinstance(blob.get("data"), str):
            pcm = decode_audio(blob["data"])
            if not pcm and blob["data"]:  # not base64: ignored
                return []
            self.audio_rate = pcm_rate(get_field(blob, "mimeType"), self.audio_rate)
            if peak(pcm) >= SPEECH:
                self.heard = True
                self.audio_in += len(pcm)
            elif self.heard:  # quiet after speech: the voice detection ends the turn
                return self._answer("vad")
            return []
        ended = get_field(realtime, "audioStreamEnd")
        ended = ended or get_field(realtime, "activityEnd") is not None
        if ended and self.heard:
            return self._answer("client")
        return []

    # Over 60 lines: one answer, every message of it, in the order the service sends them.
    def _answer(self, trigger: str) -> list[Reply]:
        script: Script = self.engine.script
        turn = script.turn(self.depth)
        timing: Timing = turn.timing or script.timing
        self.depth += 1
        audio_s = self.audio_in / self.audio_rate
        text_tokens = _tokens(self.text_in) + 16 * self.tool_results
        audio_tokens = round(audio_s * AUDIO_TOKENS_PER_S)
        prompt = self.context_tokens + text_tokens + audio_tokens
        replies: list[Reply] = []
        first = True

        def after() -> float:
            nonlocal first
            gap = timing.ttft_ms if first else 1000.0 / timing.tokens_per_s
            first = False
            return gap

        if self.transcribe_in and self.audio_in:
            heard = {"inputTranscription": {"text": "what the speaker said"}}
            replies.append(Reply({"serverContent": heard}))
        entry: dict[str, Any] = {
            "conn": self.number, "trigger": trigger, "input_audio_bytes": self.audio_in,
            "input_text": self.text_in.strip(), "model": self.model,
        }  # fmt: skip
        if turn.calls:
            calls = [
                {"id": f"call_{self.number}_{self.depth}_{i}", "name": c.name,
                 "args": _args(c.arguments)}
                for i, c in enumerate(turn.calls)
            ]  # fmt: skip
            replies.append(Reply({"toolCall": {"functionCalls": calls}}, after()))
            out_text, out_audio, out_tokens = "", 0, 8 * len(calls)
            entry["calls"] = [c["name"] for c in calls]
        elif self.audio:
            pcm = tone(WORD_MS * max(1, len(turn.text.split())), rate=OUTPUT_RATE)
            step = OUTPUT_RATE * 2 * CHUNK_MS // 1000
            for at in range(0, len(pcm), step):
                chunk = base64.b64encode(pcm[at : at + step]).decode()
                part = {"inlineData": {"mimeType": f"audio/pcm;rate={OUTPUT_RATE}", "data": chunk}}
                replies.append(Reply({"serverContent": {"modelTurn": {"parts": [part]}}}, after()))
            if self.transcribe_out:
                said = {"outputTranscription": {"text": turn.text}}
                replies.append(Reply({"serverContent": said}))
            out_text, out_audio = turn.text, len(pcm)
            out_tokens = round(len(pcm) / (2 * OUTPUT_RATE) * AUDIO_TOKENS_PER_S)
        else:
            words = turn.text.split(" ")
            for i, word in enumerate(words):
                piece = word if i == len(words) - 1 else word + " "
                parts = {"modelTurn": {"parts": [{"text": piece}]}}
                replies.append(Reply({"serverContent": parts}, after()))
            out_text, out_audio, out_tokens = turn.text, 0, _tokens(turn.text)
        usage = {
            "promptTokenCount": prompt,
            "responseTokenCount": out_tokens,
            "totalTokenCount": prompt + out_tokens,
            "promptTokensDetails": [
                {"modality": "TEXT", "tokenCount": prompt - audio_tokens},
                *([{"modality": "AUDIO", "tokenCount": audio_tokens}] if audio_tokens else []),
            ],
            "responseTokensDetails": [
                {"modality": "AUDIO" if out_audio else "TEXT", "tokenCount": out_tokens}
            ],
        }
        if not turn.calls:
            replies.append(Reply({"serverContent": {"generationComplete": True}}))
            replies.append(Reply({"serverContent": {"turnComplete": True}, "usageMetadata": usage}))
        else:  # the usage rides on the call: the client answers it at once
            replies[-1].message["usageMetadata"] = usage
        if self.resumable:
            handle = f"handle_{self.number}_{self.depth}"
            self.engine.handles[handle] = (self.depth, prompt + out_tokens)
            replies.append(Reply({"sessionResumptionUpdate": {"newHandle": handle,
                                                              "resumable": True}}))  # fmt: skip
        entry.update(output_text=out_text, output_audio_bytes=out_audio, usage=usage)
        self.engine.log.append(entry)
        self.context_tokens = prompt + out_tokens
        self.text_in, self.audio_in, self.heard, self.tool_results = "", 0, False, 0
        return replies


def _args(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except ValueError:
        return {}


@dataclass(slots=True)
class GeminiEngine:
    """The scripted Gemini Live service: its script, sessions, and log of answers."""

    script: Script = field(default_factory=default_script)
    log: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=100_000))
    connections: int = 0
    handles: dict[str, tuple[int, int]] = field(default_factory=dict)  # -> depth, context

    def connection(self) -> GeminiConnection:
        self.connections += 1
        return GeminiConnection(self, self.connections)
