"""Replay over a WebSocket: carries out the engine's plans on one live connection.

The engine (``replay/engine.py``) decides what answers each message; this only reads the
client's messages (a bounded inbox: a flood waits on TCP, memory does not grow), sleeps
until each planned frame is due, sends it, and closes when the plan says so. A connection
the engine hands to the fallback is relayed there both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

from websockets.frames import Opcode as WsOpcode

from tracer.replay.engine import Forward, LiveConnection, Plan, Refusal
from tracer.replay.recorded import payload_of
from tracer.wire import ConnectError, RequestHead, WebSocket, connect_websocket

__all__ = ["ReplaySession"]


class ReplaySession:
    """One live WebSocket connection being served from a recording."""

    def __init__(
        self,
        ws: WebSocket,
        live: LiveConnection,
        head: RequestHead,
        target: str,
        *,
        log: Callable[[str], None],
        max_queue: int,
        fallback: str | None = None,
    ) -> None:
        self.ws, self.live, self.head, self.target = ws, live, head, target
        self.log = log
        self.fallback = fallback  # http://HOST:PORT of the recording proxy, or None
        self.forward: WebSocket | None = None  # the fallback, once this connection went there
        self._pump: asyncio.Task[None] | None = None
        self.inbox: asyncio.Queue[tuple[WsOpcode, bytes] | None] = asyncio.Queue(max_queue)

    async def run(self) -> None:
        reader = asyncio.create_task(self._read())
        try:
            loop = asyncio.get_running_loop()
            opening = self.live.opening()
            if opening is not None:
                await self._carry_out(opening, loop.time())
            while (message := await self.inbox.get()) is not None:
                if self.forward is not None:
                    await self.forward.send_frame(message[0], message[1], True)
                    continue
                arrived = loop.time()
                outcome = self.live.message(message[1])
                if isinstance(outcome, Plan):
                    await self._carry_out(outcome, arrived)
                elif isinstance(outcome, Refusal):
                    await self._refuse(outcome)
                else:
                    await self._go_forward(message[1], outcome)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await self._stop()

    async def _stop(self) -> None:
        if self.forward is not None:
            with contextlib.suppress(Exception):
                await self.forward.close(1000, "", timeout=2.0)
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        if not self.ws.closed:
            await self.ws.close(1000, "", timeout=2.0)

    async def _read(self) -> None:
        while (message := await self.ws.recv_message()) is not None:
            await self.inbox.put(message)
        await self.inbox.put(None)

    async def _carry_out(self, plan: Plan, arrived: float) -> None:
        """Send the plan's frames, each when it is due; then close if the plan says so."""
        loop = asyncio.get_running_loop()
        for delay, frame in plan.steps:
            wait = arrived + delay - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                await self.ws.send_frame(WsOpcode(int(frame.opcode)), payload_of(frame), frame.fin)
            except ConnectionError:
                return
        if plan.close is not None:
            await self.ws.close(*plan.close)

    async def _refuse(self, refusal: Refusal) -> None:
        if refusal.log:
            self.log(refusal.log)
        with contextlib.suppress(ConnectionError):
            await self.ws.send_text(json.dumps(refusal.event()))

    async def _go_forward(self, first: bytes, _: Forward) -> None:
        """Hand this connection to the fallback: a new episode, recorded there."""
        assert self.fallback is not None
        url = self.fallback.replace("http", "ws", 1) + self.target
        keep = [(k, v) for k, v in self.head.headers if k.lower() in ("authorization",)]
        try:
            self.forward = await connect_websocket(url, headers=keep, max_size=None)
        except ConnectError as exc:
            await self._refuse(
                self.live.engine.mismatch(f"the fallback refused a new episode: {exc}", None)
            )
            return
        self.live.engine.forwarded()
        self._pump = asyncio.create_task(self._pump_back(self.forward))
        await self.forward.send_text(first.decode("utf-8", "replace"))

    async def _pump_back(self, upstream: WebSocket) -> None:
        while (frame := await upstream.recv_frame()) is not None:
            if frame.opcode in (WsOpcode.CLOSE, WsOpcode.PING, WsOpcode.PONG):
                continue
            with contextlib.suppress(ConnectionError):
                await self.ws.send_frame(frame.opcode, bytes(frame.data), frame.fin)
