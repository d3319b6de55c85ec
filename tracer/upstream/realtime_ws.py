"""The scripted upstream's live WebSockets: the asyncio shells around ``realtime.py``,
``gemini.py`` and ``live.py``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any, Protocol

from websockets.frames import Opcode

from tracer.upstream.gemini import Reply as LiveReply
from tracer.upstream.realtime import RealtimeConnection, Reply, Response
from tracer.wire import WebSocket

__all__ = ["serve_live", "serve_realtime"]


class _Answers(Protocol):
    def receive(self, message: dict[str, Any]) -> list[LiveReply]: ...


def _dumps(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


async def serve_realtime(conn: RealtimeConnection, ws: WebSocket) -> None:
    """Serve one Realtime connection until the client or a scripted fault ends it."""
    later: set[asyncio.Task[None]] = set()
    running: asyncio.Task[None] | None = None

    async def send(replies: list[Reply]) -> None:
        for reply in replies:
            if reply.delay:
                await asyncio.sleep(reply.delay / 1000)
            await ws.send_text(_dumps(reply.event))
            kind = reply.event["type"]
            if kind == "input_audio_buffer.speech_stopped":
                conn.stopped_ns = time.monotonic_ns()  # the log's voice latency starts here
                conn.stopped_event = reply.event.get("event_id")
            elif kind.endswith("input_audio_transcription.completed") and conn.stopped_ns:
                conn.engine.transcripts.append(
                    {
                        "item_id": reply.event.get("item_id"),
                        "delay_ms": (time.monotonic_ns() - conn.stopped_ns) / 1e6,
                        "event": reply.event.get("event_id"),
                        "stopped_event": conn.stopped_event,
                    }
                )

    try:
        await send(conn.opening())
        while True:
            message = await ws.recv_message()
            if message is None:
                return
            opcode, data = message
            try:
                event = json.loads(data) if opcode is Opcode.TEXT else None
            except (ValueError, RecursionError):
                event = None
            if not isinstance(event, dict):
                event = {"type": "<not json>"}
            replies, response = conn.receive(event)
            now = [r for r in replies if not r.delay]
            await send(now)
            if len(now) < len(replies):  # a transcript later: it must not hold the answer
                task = asyncio.create_task(send([r for r in replies if r.delay]))
                later.add(task)
                task.add_done_callback(later.discard)
            if response is not None:
                if response.trigger == "vad":
                    response.stopped_ns = conn.stopped_ns
                    response.stopped_event = conn.stopped_event
                running = asyncio.create_task(_respond(conn, ws, response))
            if ws.closed:
                return
    finally:
        tasks = [*later, *([running] if running is not None else [])]
        for task in tasks:
            if not task.done():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(task), 5.0)
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _respond(conn: RealtimeConnection, ws: WebSocket, response: Response) -> None:
    """Send a response's events with their delays, until it ends or is cancelled."""
    for reply in response.steps:
        if response.cancelled:
            break
        if reply.delay:
            await asyncio.sleep(reply.delay / 1000)
        if response.cancelled:
            break
        await ws.send_text(_dumps(reply.event))
        if reply.event["type"] == "response.output_audio.delta":
            response.sent_audio_bytes += len(reply.event["delta"]) * 3 // 4
            if response.first_audio_ns is None:
                response.first_audio_ns = time.monotonic_ns()
                response.first_audio_event = reply.event.get("event_id")
    if response.close is not None and not response.cancelled:
        conn.dropped(response)
        await ws.close(response.close, "scripted failure")
        return
    await ws.send_text(_dumps(conn.finish(response)))


async def serve_live(conn: _Answers, ws: WebSocket) -> None:
    """Serve one Gemini Live or OpenAI Live session: each client message's replies, with
    their delays."""
    while True:
        message = await ws.recv_message()
        if message is None:
            return
        try:
            body = json.loads(message[1])
        except (ValueError, RecursionError):
            body = None
        if not isinstance(body, dict):
            await ws.close(1007, "Request contains an invalid argument.")
            return
        for reply in conn.receive(body):
            if reply.delay:
                await asyncio.sleep(reply.delay / 1000)
            await ws.send_text(_dumps(reply.message))
