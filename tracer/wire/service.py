"""A TCP service whose connections each run in a task it tracks, so it can stop them all."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

from tracer.wire.guard import Guard
from tracer.wire.http import RequestHead, write_response

__all__ = ["TCPService"]


class TCPService:
    """An asyncio TCP server; subclasses implement ``handle`` for one connection.

    ``close`` stops listening, lets ``before_close`` end connections gracefully, then
    cancels the handlers still running. A handler's I/O errors and its cancellation end only
    that connection, quietly: they are the normal ways a peer or a shutdown ends it.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        guard: Guard | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.guard = guard or Guard.of(host)  # who it answers: local agents, not web pages
        self.log = log or (lambda line: None)
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._run, self.host, self.port, limit=1 << 20)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self.before_close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def before_close(self) -> None:
        """End open connections gracefully (subclasses); the rest are cancelled after."""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def refused(self, head: RequestHead, writer: asyncio.StreamWriter) -> bool:
        """Answer 403 (and log one line) when the guard refuses ``head``; True if it did.
        The caller then closes the connection."""
        why = self.guard.refuse(head)
        if why is None:
            return False
        self.log(f"refused {head.method} {head.path[:100]}: {why}")
        body = {"error": {"type": "forbidden", "code": "forbidden", "message": f"tracer: {why}"}}
        headers = [("Content-Type", "application/json"), ("Connection", "close")]
        write_response(writer, 403, headers, json.dumps(body).encode())
        await writer.drain()
        return True

    def connection_ended(self) -> None:
        """Called after each connection's handler has finished."""

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self.handle(reader, writer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # shutting down; this task is the top of its own stack
        finally:
            self._handlers.discard(task)
            with contextlib.suppress(Exception):
                writer.close()
            self.connection_ended()
