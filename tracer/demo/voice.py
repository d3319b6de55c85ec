"""A demo voice agent on the Realtime API, for ``tracer demo --realtime``.

It opens one Realtime WebSocket, configures server voice detection and input
transcription, asks one question in text, asks for the weather and answers the function
call, then speaks: a synthetic tone as a microphone would send it (a 20 ms chunk every
20 ms), followed by silence the server's detection hears as the end of the speech. The last
answer it talks over, and truncates what it played, as voice clients do.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from typing import Any

from tracer.capture.recorder import Recorder
from tracer.capture.tap import tap_websocket
from tracer.errors import TracerError
from tracer.upstream.realtime import tone
from tracer.wire.websocket import WebSocket, connect_websocket

__all__ = ["VoiceRun", "run_voice_agent"]

CHUNK_MS = 20
_CHUNK_BYTES = 2 * 24 * CHUNK_MS  # 20 ms of 24 kHz PCM16


@dataclass(slots=True)
class VoiceRun:
    """What the voice agent did, in its own words."""

    responses: int = 0  # response.done events it received
    spoken_turns: int = 0  # times it spoke and waited for the answer
    appended_bytes: int = 0
    errors: list[str] = field(default_factory=list)


class _Voice:
    """Reads the server's events as they come (a voice client never stops listening while
    it speaks), so the recorded times are the wire's; ``until`` takes them in order."""

    def __init__(self, ws: WebSocket, run: VoiceRun) -> None:
        self.ws = ws
        self.run = run
        self.events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            while (message := await self.ws.recv_message()) is not None:
                event = json.loads(message[1])
                self.events.put_nowait(event if isinstance(event, dict) else {})
        finally:
            self.events.put_nowait(None)

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send_text(json.dumps(event, separators=(",", ":")))

    async def until(self, kind: str) -> dict[str, Any]:
        while True:
            event = await asyncio.wait_for(self.events.get(), 30.0)
            if event is None:
                raise TracerError(f"the upstream closed the connection before {kind}")
            if event.get("type") == "response.done":
                self.run.responses += 1
            elif event.get("type") == "error":
                self.run.errors.append(str(event.get("error", {}).get("code")))
            if event.get("type") == kind:
                return event

    async def say(self, text: str, **response: Any) -> dict[str, Any]:
        await self.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": text}],
                },
            }
        )
        await self.send({"type": "response.create", **({"response": response} if response else {})})
        return await self.until("response.done")

    async def speak(self, speech_ms: int, silence_ms: int) -> None:
        pcm = tone(speech_ms) + tone(silence_ms, amplitude=0)
        for i in range(0, len(pcm), _CHUNK_BYTES):
            chunk = pcm[i : i + _CHUNK_BYTES]
            self.run.appended_bytes += len(chunk)
            await self.send(
                {"type": "input_audio_buffer.append", "audio": base64.b64encode(chunk).decode()}
            )
            await asyncio.sleep(CHUNK_MS / 1000)


async def run_voice_agent(base_url: str, recorder: Recorder | None = None) -> VoiceRun:
    """Run the voice agent against a Realtime endpoint at ``base_url`` (``http://HOST/v1``),
    recording its connection when a recorder is given."""
    url = base_url.replace("http", "ws", 1).rstrip("/") + "/realtime?model=gpt-realtime"
    ws = await connect_websocket(url)
    if recorder is not None:
        tap_websocket(ws, recorder, url)
    run = VoiceRun()
    voice = _Voice(ws, run)
    try:
        await voice.until("session.created")
        await voice.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {
                        "input": {
                            "transcription": {"model": "whisper-1"},
                            "turn_detection": {"type": "server_vad", "silence_duration_ms": 300},
                        }
                    },
                },
            }
        )
        await voice.until("session.updated")
        await voice.say("Hello! Text is fine for this one.", output_modalities=["text"])
        done = await voice.say("What is the weather in Paris?")
        call = done["response"]["output"][0]
        await voice.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "function_call_output",
                    "call_id": call["call_id"],
                    "output": "sunny",
                },
            }
        )
        await voice.send({"type": "response.create"})
        await voice.until("response.done")
        for _ in range(2):
            await voice.speak(400, 400)
            run.spoken_turns += 1
            await voice.until("response.done")
        await voice.speak(400, 320)  # and talk over its answer
        delta = await voice.until("response.output_audio.delta")
        await voice.send(
            {
                "type": "conversation.item.truncate",
                "item_id": delta["item_id"],
                "content_index": 0,
                "audio_end_ms": 40,
            }
        )
        await voice.speak(400, 400)
        run.spoken_turns += 2
        await voice.until("response.done")
        await voice.until("response.done")
    finally:
        voice.reader.cancel()  # before the close, which reads the peer's close frame
        await asyncio.gather(voice.reader, return_exceptions=True)
        await ws.close()
    return run
