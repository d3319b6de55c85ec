"""Demo agents on the two other live APIs, for ``tracer demo --protocol gemini-live`` and
``--protocol openai-live``: each opens one session on the scripted upstream, as a real
client would, and records it.

The Gemini Live agent asks in text (spoken answers), calls a tool and answers it, then
speaks (16 kHz audio in 50 ms chunks, paced as a microphone sends them, then quiet the
service's detection hears as the end). The OpenAI Live agent speaks twice (24 kHz audio)
and waits for each answer's usage update, then closes the session.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from tracer.capture.recorder import Recorder
from tracer.capture.tap import tap_websocket
from tracer.demo.voice import VoiceRun
from tracer.errors import TracerError
from tracer.upstream.realtime import tone
from tracer.upstream.script import Call, Script, TurnScript
from tracer.wire.websocket import WebSocket, connect_websocket

__all__ = ["LIVE_SCRIPT", "run_gemini_agent", "run_live_agent"]

CHUNK_MS = 50
GEMINI_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"

LIVE_SCRIPT = Script(
    turns=(
        TurnScript(text="Hello! How can I help you today?"),
        TurnScript(calls=(Call("get_weather", '{"city": "Paris"}'),)),
        TurnScript(text="It is sunny in Paris, twenty degrees."),
        TurnScript(text="Sure, I can hear you. Anything else?"),
    ),
    seed=11,
)
"""What the demo's live sessions hear from the scripted upstream."""


async def _send(ws: WebSocket, message: dict[str, Any]) -> None:
    await ws.send_text(json.dumps(message, separators=(",", ":")))


class _Listener:
    """Reads the session's messages as they come (a voice client never stops listening
    while it speaks), so the recorded times are the wire's; ``until`` takes them in order."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.messages: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            while (got := await self.ws.recv_message()) is not None:
                message = json.loads(got[1])
                self.messages.put_nowait(message if isinstance(message, dict) else {})
        finally:
            self.messages.put_nowait(None)

    async def until(self, done: Any, run: VoiceRun) -> dict[str, Any]:
        """Messages until ``done(message)`` is true; that message."""
        while True:
            message = await asyncio.wait_for(self.messages.get(), 30.0)
            if message is None:
                raise TracerError("the upstream closed the session before the demo ended")
            if done(message):
                run.responses += 1
                return message

    async def stop(self) -> None:
        self.task.cancel()  # before the close, which reads the peer's close frame
        await asyncio.gather(self.task, return_exceptions=True)
        await self.ws.close()


async def _speak(ws: WebSocket, run: VoiceRun, wrap: Any, rate: int, ms: int) -> None:
    """``ms`` of speech then as much quiet, in chunks paced as a microphone sends them."""
    pcm = tone(ms, rate=rate) + tone(ms, rate=rate, amplitude=0)
    size = 2 * rate * CHUNK_MS // 1000
    for at in range(0, len(pcm), size):
        chunk = pcm[at : at + size]
        run.appended_bytes += len(chunk)
        await _send(ws, wrap(base64.b64encode(chunk).decode()))
        await asyncio.sleep(CHUNK_MS / 1000)
    run.spoken_turns += 1


def _turn_complete(m: dict[str, Any]) -> bool:
    return bool((m.get("serverContent") or {}).get("turnComplete"))


async def run_gemini_agent(base_url: str, recorder: Recorder | None = None) -> VoiceRun:
    """The Gemini Live demo agent against ``base_url`` (``http://HOST/v1``)."""
    url = base_url.replace("http", "ws", 1).rstrip("/").removesuffix("/v1") + GEMINI_PATH
    ws = await connect_websocket(url)
    if recorder is not None:
        tap_websocket(ws, recorder, url)
    run = VoiceRun()
    heard = _Listener(ws)
    try:
        await _send(ws, {"setup": {
            "model": "models/gemini-live-2.5-flash",
            "generationConfig": {"responseModalities": ["AUDIO"]},
            "inputAudioTranscription": {}, "outputAudioTranscription": {},
            "tools": [{"functionDeclarations": [{"name": "get_weather"}]}],
        }})  # fmt: skip
        await heard.until(lambda m: "setupComplete" in m, VoiceRun())
        for text in ("Hello!", "What is the weather in Paris?"):
            content = {"turns": [{"role": "user", "parts": [{"text": text}]}],
                       "turnComplete": True}  # fmt: skip
            await _send(ws, {"clientContent": content})
            last = await heard.until(lambda m: _turn_complete(m) or "toolCall" in m, run)
        calls = last.get("toolCall", {}).get("functionCalls", [])
        results = [{"id": c.get("id"), "name": c.get("name"), "response": {"sky": "sunny"}}
                   for c in calls]  # fmt: skip
        await _send(ws, {"toolResponse": {"functionResponses": results}})
        await heard.until(_turn_complete, run)

        def audio(data: str) -> dict[str, Any]:
            return {"realtimeInput": {"audio": {"data": data, "mimeType": "audio/pcm;rate=16000"}}}

        await _speak(ws, run, audio, 16_000, 400)
        await heard.until(_turn_complete, run)
    finally:
        await heard.stop()
    return run


async def run_live_agent(base_url: str, recorder: Recorder | None = None) -> VoiceRun:
    """The OpenAI Live demo agent against ``base_url`` (``http://HOST/v1``)."""
    url = base_url.replace("http", "ws", 1).rstrip("/") + "/live/sessions?model=gpt-live-1"
    ws = await connect_websocket(url)
    if recorder is not None:
        tap_websocket(ws, recorder, url)
    run = VoiceRun()
    heard = _Listener(ws)
    try:
        await _send(ws, {"type": "session.start", "session": {"model": "gpt-live-1"}})
        await heard.until(lambda m: m.get("type") == "session.started", VoiceRun())

        def append(data: str) -> dict[str, Any]:
            return {"type": "session.input_audio.append", "audio": data}

        for ms in (400, 600):
            await _speak(ws, run, append, 24_000, ms)
            await heard.until(lambda m: m.get("type") == "session.usage.updated", run)
        await _send(ws, {"type": "session.close"})
        await heard.until(lambda m: m.get("type") == "session.closed", VoiceRun())
    finally:
        await heard.stop()
    return run
