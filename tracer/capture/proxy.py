"""The recording proxy: a WebSocket reverse proxy that records every frame it forwards.

Plain HTTP requests are forwarded too, and streamed ``POST /v1/responses`` calls recorded
(``tracer.capture.http_proxy``).

Each client connection gets its own upstream connection. Frames are forwarded as they come,
fragments and control frames included (each hop negotiates permessage-deflate on its own),
time-stamped on arrival and handed to the recorder after they are forwarded, so recording
never delays the traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable, Sequence

from websockets.frames import Close as CloseFrame
from websockets.frames import Opcode as WsOpcode

from tracer.capture.http_proxy import HttpPolicy, proxy_http
from tracer.capture.recorder import Recorder
from tracer.capture.upstream import MAX_BODY_BYTES, UPSTREAM_TIMEOUT, Upstream, upstream_ws_base
from tracer.trace.records import Direction, Opcode
from tracer.wire import (
    DEFAULT_MAX_SIZE,
    ConnectError,
    HTTPError,
    RequestHead,
    WebSocket,
    accept_websocket,
    connect_websocket,
    write_response,
)
from tracer.wire.guard import FORWARD_DROPPED, Guard
from tracer.wire.service import TCPService
from tracer.wire.websocket import HOP_HEADERS

__all__ = ["UPSTREAM_TIMEOUT", "RecordingProxy", "Upstream", "upstream_ws_base"]

_OPCODES = {int(op): op for op in Opcode}


class RecordingProxy(TCPService):
    """Listens on ``host:port``; forwards WebSocket upgrades to ``upstream`` and records them.

    With no ``upstream`` it serves no request itself: a subclass (the forward proxy) gives
    each connection its ``Upstream`` and calls ``serve``."""

    def __init__(
        self,
        upstream: str | None,
        recorder: Recorder | None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        insecure: bool = False,
        max_size: int | None = DEFAULT_MAX_SIZE,
        allow_origins: Sequence[str] = (),
        keep_headers: Sequence[str] = (),
        add_headers: Sequence[tuple[str, str]] = (),
        upstream_timeout: float = UPSTREAM_TIMEOUT,
        log: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(host, port, guard=Guard.of(host, allow_origins), log=log)
        # Not forwarded upstream: hop-by-hop headers, and a browser's or a proxy's own;
        # sent upstream besides the client's: ``add_headers`` (--server-timing's).
        self.added = list(add_headers)
        added = {k.lower() for k, _ in self.added}
        self.dropped = (HOP_HEADERS | FORWARD_DROPPED | added) - {h.lower() for h in keep_headers}
        self.recorder = recorder
        self.max_size = max_size
        # What the plain-HTTP half needs, and no more (its timeouts, the body budget).
        self.http = HttpPolicy(recorder, max_size=max_size, dropped=self.dropped,
                               upstream_timeout=upstream_timeout, log=self.log,
                               max_body_bytes=MAX_BODY_BYTES, added=self.added)  # fmt: skip
        self._ssl: ssl.SSLContext | None = None
        if insecure:
            self._ssl = ssl.create_default_context()
            self._ssl.check_hostname = False
            self._ssl.verify_mode = ssl.CERT_NONE
        self.target = Upstream(upstream_ws_base(upstream), self._ssl) if upstream else None
        self._sessions: set[_Session] = set()

    @property
    def base_url(self) -> str:
        """The base URL to give an OpenAI SDK: ``http://HOST:PORT/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def before_close(self) -> None:
        """Close every connection cleanly (1001 going away) on both sides."""
        await asyncio.gather(*(s.shutdown() for s in list(self._sessions)), return_exceptions=True)

    @property
    def upstream(self) -> str:
        """The upstream's WebSocket origin and path prefix (``--upstream``), or ""."""
        return self.target.ws_base if self.target is not None else ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self.target is not None, "a proxy with no upstream must override handle"
        await self.serve(reader, writer, self.target)

    async def serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream: Upstream,
        *,
        head: RequestHead | None = None,
        guard: Guard | None = None,
    ) -> None:
        """Serve one client connection toward ``upstream``: its requests (from ``head``, if
        already read), checked by ``guard`` (or the proxy's own)."""
        try:
            if head is None:
                head = await self.read_head(reader, writer)
            # Plain HTTP requests (keep-alive: several on one connection) until an upgrade.
            while head is not None and not head.is_websocket_upgrade:
                if await self.refused(head, writer, guard) or not await proxy_http(
                    self.http, head, reader, writer, upstream
                ):
                    return
                head = await self.read_head(reader, writer)
            if head is None or await self.refused(head, writer, guard):
                return
            session = _Session(self, reader, writer, upstream)
            self._sessions.add(session)
            try:
                await session.run(head)
            finally:
                self._sessions.discard(session)
        except HTTPError as exc:
            with contextlib.suppress(Exception):
                write_response(writer, exc.status, [("Content-Type", "text/plain")], b"")
                await writer.drain()


class _Session:
    """One proxied connection: the client side, the upstream side, and two pumps."""

    def __init__(
        self,
        proxy: RecordingProxy,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream: Upstream,
    ) -> None:
        self.proxy = proxy
        self.upstream = upstream
        self.recorder = proxy.recorder if upstream.record else None
        self.reader = reader
        self.writer = writer
        self.client: WebSocket | None = None
        self.server: WebSocket | None = None
        self.conn: int | None = None
        self.closed_by: str | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.error: str | None = None
        self._readers: dict[Direction, asyncio.Task[None]] = {}  # the pump reading each side

    # Over 60 lines: one connection's upgrade, both handshakes and their failure paths in order.
    async def run(self, head: RequestHead) -> None:
        proxy = self.proxy
        recorder = self.recorder
        upstream = self.upstream
        target = upstream.ws_base + head.target
        offered = [
            p.strip()
            for value in (v for k, v in head.headers if k.lower() == "sec-websocket-protocol")
            for p in value.split(",")
            if p.strip()
        ]
        forward = [(k, v) for k, v in head.headers if k.lower() not in proxy.dropped]
        forward += proxy.added
        client_addr = _addr(self.writer.get_extra_info("peername"))
        try:
            server = await connect_websocket(
                target,
                headers=forward,
                subprotocols=offered or None,
                ssl_context=upstream.ssl,
                max_size=proxy.max_size,
                address=upstream.address,
            )
        except ConnectError as exc:
            status = exc.status or 502
            proxy.log(f"GET {head.path[:100]}: {status}: {exc}")
            headers = [(k, v) for k, v in exc.headers if k.lower() not in HOP_HEADERS]
            body = exc.body if exc.status else f"tracer record: {exc}\n".encode()
            write_response(self.writer, status, headers, body)
            await self.writer.drain()
            if recorder is not None:
                conn = recorder.open_connection(
                    head.target,
                    request_headers=head.headers,
                    response_headers=exc.headers,
                    status=status,
                    client_addr=client_addr,
                )
                recorder.close_connection(conn, by="server", error=str(exc))
            return
        self.server = server
        upstream_headers = [
            (k, v)
            for k, v in server.response.headers.raw_items()
            if k.lower() not in HOP_HEADERS and k.lower() not in ("date", "server")
        ]
        try:
            client = await accept_websocket(
                self.reader,
                self.writer,
                head,
                subprotocols=[server.subprotocol] if server.subprotocol else None,
                extra_headers=upstream_headers,
                max_size=proxy.max_size,
            )
        except HTTPError:
            await server.close(1001, "client handshake failed")
            raise
        self.client = client
        if recorder is not None:
            self.conn = recorder.open_connection(
                head.target,
                request_headers=head.headers,
                response_headers=list(server.response.headers.raw_items()),
                status=101,
                subprotocol=server.subprotocol,
                client_addr=client_addr,
                server_addr=server.peer,
                handshake_ns=server.handshake_ns,
            )
        up = asyncio.create_task(self._pump(client, server, Direction.CLIENT))
        down = asyncio.create_task(self._pump(server, client, Direction.SERVER))
        self._readers = {Direction.CLIENT: up, Direction.SERVER: down}
        try:
            # A pump cancelled by the other (see _pump) ends quietly; other failures raise.
            for result in await asyncio.gather(up, down, return_exceptions=True):
                if isinstance(result, Exception):
                    raise result
        finally:
            for t in (up, down):
                t.cancel()
            self._record_close()

    def _record_close(self) -> None:
        """Write the connection's close record (once)."""
        recorder = self.recorder
        if recorder is not None and self.conn is not None:
            recorder.close_connection(
                self.conn,
                code=self.close_code,
                reason=self.close_reason,
                by=self.closed_by,
                error=self.error,
            )
            self.conn = None

    async def _pump(self, src: WebSocket, dst: WebSocket, direction: Direction) -> None:
        recorder = self.recorder
        conn = self.conn
        now = recorder.now_ns if recorder is not None else None
        side = direction.label
        while frames := await src.recv_frames():  # those parsed from one read
            last = frames[-1]
            for frame in frames:
                t = now() if now is not None else 0
                opcode = frame.opcode
                data = frame.data if type(frame.data) is bytes else bytes(frame.data)
                if opcode is WsOpcode.CLOSE and self.closed_by is None:
                    self.closed_by = side
                    close = CloseFrame.parse(data) if data else None
                    self.close_code = close.code if close else 1005
                    self.close_reason = close.reason if close else ""
                try:  # (not contextlib.suppress: a frame's step, where 0.2 us counts)
                    # The frames of one read go out in one write, with the last one.
                    drain = dst.write_frame(opcode, data, frame.fin, flush=frame is last)
                except ConnectionError:
                    drain = False
                # Recorded once handed to the socket, so that the writer thread, which this
                # wakes, never delays it; and before the await, so that it is never lost.
                if recorder is not None and conn is not None:
                    recorder.frame(conn, direction, _OPCODES[opcode], data, frame.fin, t)
                if drain:
                    await dst.drain()
        # src has ended. A clean close was forwarded above, and the other pump carries dst's
        # answer; a drop (no close frame) is mirrored as a drop.
        if self.closed_by is None:
            self.closed_by = side
            self.error = src.error or "connection ended without a close frame"
            if src.protocol_error is not None:
                # src broke the protocol (its protocol already told it so): close the other
                # side cleanly, with 1014 (bad gateway) when it was the upstream.
                code, who = (
                    (1014, "upstream") if direction is Direction.SERVER else (1001, "client")
                )
                # dst.close reads dst's answer: the other pump, which reads dst, stops first.
                other = self._readers.get(
                    Direction.SERVER if direction is Direction.CLIENT else Direction.CLIENT
                )
                if other is not None and other is not asyncio.current_task():
                    other.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await other
                self._record_close()  # what ended it is known: the trace says so first
                with contextlib.suppress(ConnectionError):
                    await dst.close(code, f"tracer: the {who} sent an invalid frame", timeout=2.0)
            else:
                dst.abort()

    async def shutdown(self) -> None:
        """Close both sides with 1001 (going away): the recorder is stopping."""
        for ws in (self.client, self.server):
            if ws is not None and not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close(1001, "tracer record is stopping", timeout=2.0)
        if self.closed_by is None:
            self.closed_by = "recorder"
            self.close_code, self.close_reason = 1001, "tracer record is stopping"


def _addr(info: object) -> str | None:
    if isinstance(info, tuple) and len(info) >= 2:
        return f"{info[0]}:{info[1]}"
    return None
