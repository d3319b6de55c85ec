"""A TCP service whose connections each run in a task it tracks, so it can stop them all."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import resource
import ssl
from collections.abc import Callable
from typing import Any

from tracer.responses.errors import error_body
from tracer.wire.guard import Guard
from tracer.wire.http import RequestHead, read_request_head, write_response

__all__ = ["HEAD_TIMEOUT", "MAX_CONNECTIONS", "MAX_WAITING", "TCPService"]

HEAD_TIMEOUT = 10.0
"""Seconds a connection may take to send a request head (nginx: client_header_timeout)."""
MAX_CONNECTIONS = 1024
"""Connections served at once; past it a new one is answered 503 and closed, so that a
flood cannot use up the descriptors the connections being served need."""
MAX_WAITING = 256
"""Connections waiting for their request head at once; past it the one that waited longest
is dropped, so a flood of slow or idle connections cannot keep new clients out."""


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
        self.ssl: ssl.SSLContext | None = None  # set before start: serve TLS (https, wss)
        self.head_timeout = HEAD_TIMEOUT
        self.max_waiting = _max_waiting()
        self.max_connections = _max_connections()
        self._last_accept_error = 0.0
        self._last_busy = 0.0
        self._waiting: dict[asyncio.StreamWriter, None] = {}  # insertion order: oldest first
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.get_exception_handler() is None:
            loop.set_exception_handler(self._loop_error)
        self._server = await asyncio.start_server(
            self._run, self.host, self.port, limit=1 << 20, ssl=self.ssl
        )
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

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Out of file descriptors while accepting (a flood of connections): one line a
        second instead of a traceback each time; asyncio retries the accept by itself."""
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
            now = loop.time()
            if now - self._last_accept_error >= 1.0:
                self._last_accept_error = now
                self.log(f"out of file descriptors ({exc.strerror}); new connections wait")
            return
        loop.default_exception_handler(context)

    async def read_head(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> RequestHead | None:
        """The next request head, or None at a clean end, after ``head_timeout`` (answered
        408) or when this connection is dropped for a newer one (``max_waiting``)."""
        waiting = self._waiting
        while len(waiting) >= self.max_waiting:
            oldest = next(iter(waiting))
            del waiting[oldest]
            oldest.transport.abort()
        waiting[writer] = None
        try:
            async with asyncio.timeout(self.head_timeout):
                return await read_request_head(reader)
        except TimeoutError:
            write_response(writer, 408, [("Connection", "close")], b"")
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            return None
        finally:
            waiting.pop(writer, None)

    async def refused(
        self, head: RequestHead, writer: asyncio.StreamWriter, guard: Guard | None = None
    ) -> bool:
        """Answer 403 (and log one line) when the guard (``guard``, or the service's own)
        refuses ``head``; True if it did. The caller then closes the connection."""
        why = (guard or self.guard).refuse(head)
        if why is None:
            return False
        self.log(f"refused {head.method} {head.path[:100]}: {why}")
        body = error_body("forbidden", f"tracer: {why}", kind="forbidden")
        headers = [("Content-Type", "application/json"), ("Connection", "close")]
        write_response(writer, 403, headers, body)
        await writer.drain()
        return True

    def connection_ended(self) -> None:
        """Called after each connection's handler has finished."""

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._handlers) >= self.max_connections:
            await self._busy(reader, writer)
            return
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

    async def _busy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer 503 to a connection past ``max_connections`` (and log it, once a second);
        its head is read first (for a second at most), so the answer is not lost to a reset."""
        now = asyncio.get_running_loop().time()
        if now - self._last_busy >= 1.0:
            self._last_busy = now
            self.log(f"refused a connection: {self.max_connections} are open (503)")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 1.0)
        why = "tracer: too many connections at once"
        body = error_body("server_busy", why, kind="server_busy")
        headers = [("Content-Type", "application/json"), ("Connection", "close"),
                   ("Retry-After", "1")]  # fmt: skip
        with contextlib.suppress(Exception):
            write_response(writer, 503, headers, body)
            await writer.drain()
        with contextlib.suppress(Exception):
            writer.close()


def _max_connections() -> int:
    """MAX_CONNECTIONS, or half the open-file limit when that is lower (each proxied
    connection needs two descriptors)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return MAX_CONNECTIONS
    return max(8, min(MAX_CONNECTIONS, soft // 2 - 16))


def _max_waiting() -> int:
    """MAX_WAITING, or a quarter of the open-file limit when that is lower: an accept burst
    and the connections being served need descriptors too."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return MAX_WAITING
    return max(8, min(MAX_WAITING, soft // 4))
