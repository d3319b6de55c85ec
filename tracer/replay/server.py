"""The replay server: plays a trace's recorded server side to live clients.

It listens, refuses what the guard refuses, and hands each HTTP request to
``replay/http.py`` and each WebSocket upgrade to ``replay/websocket.py``; what answers
what is the engine's decision (``replay/engine.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from tracer.replay.engine import (
    DEFAULT_MAX_QUEUE,
    MAX_MISMATCHES_KEPT,
    Refusal,
    ReplayEngine,
    ReplayStats,
)
from tracer.replay.http import serve_http
from tracer.replay.recorded import Ignore, RecordedConnection, RecordedRequest
from tracer.replay.websocket import ReplaySession
from tracer.wire import DEFAULT_MAX_SIZE, HTTPError, accept_websocket, write_response
from tracer.wire.guard import Guard
from tracer.wire.service import TCPService

DEFAULT_MAX_FRAME = DEFAULT_MAX_SIZE  # a larger message closes the connection with 1009
__all__ = ["MAX_MISMATCHES_KEPT", "ReplayServer", "ReplayStats"]


class ReplayServer(TCPService):
    """Serves recorded connections: each live connection is paired with a recorded one by its
    path and first message, and each live message with the recorded message it repeats."""

    def __init__(
        self,
        recorded: list[RecordedConnection],
        *,
        requests: Sequence[RecordedRequest] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float = 1.0,
        mode: str = "tolerant",
        log: Callable[[str], None] | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
        max_queue: int = DEFAULT_MAX_QUEUE,
        allow_origins: Sequence[str] = (),
        token: str | None = None,
        verbose_mismatch: bool = False,
        ignore: Ignore | None = None,
        fallback: str | None = None,
    ) -> None:
        super().__init__(host, port, guard=Guard.of(host, allow_origins, token), log=log)
        self.max_frame = max_frame  # a larger message closes the connection with 1009
        self.max_queue = max_queue  # client messages waiting; past it, reading pauses
        self.engine = ReplayEngine(recorded, requests, mode=mode, ignore=ignore, speed=speed,
                                   verbose_mismatch=verbose_mismatch,
                                   fallback=fallback is not None)  # fmt: skip
        # Where what matches nothing goes instead of a mismatch error (a recording proxy:
        # the pytest plugin's new_episodes mode), as http://HOST:PORT.
        self.fallback = fallback
        self.all_served = asyncio.Event()
        self._active = 0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def stats(self) -> ReplayStats:
        return self.engine.stats

    def connection_ended(self) -> None:
        self._active -= 1
        if self._active == 0 and self.engine.all_served():
            self.all_served.set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._active += 1
        try:
            head = await self.read_head(reader, writer)
            if head is None or await self.refused(head, writer):
                return
            while not head.is_websocket_upgrade:  # HTTP requests, kept alive
                path = self.guard.strip_token_path(head.target).split("?", 1)[0]
                if not await serve_http(self.engine, head, path, reader, writer, log=self.log,
                                        fallback=self.fallback):  # fmt: skip
                    return
                next_head = await self.read_head(reader, writer)
                if next_head is None or await self.refused(next_head, writer):
                    return
                head = next_head
            target = self.guard.strip_token_path(head.target)
            live = self.engine.connect(target)
            if isinstance(live, Refusal):
                if live.log:
                    self.log(live.log)
                body = (live.message + "\n").encode()
                write_response(writer, live.status, [("Content-Type", "text/plain")], body)
                await writer.drain()
                return
            ws = await accept_websocket(reader, writer, head,
                                        subprotocols=live.subprotocols or None,
                                        max_size=self.max_frame)  # fmt: skip
            session = ReplaySession(ws, live, head, target, log=self.log,
                                    max_queue=self.max_queue, fallback=self.fallback)  # fmt: skip
            await session.run()
        except HTTPError:
            pass
