"""An asyncio WebSocket endpoint driven by websockets' sans-I/O protocol objects."""

# Over 400 lines: both ends of the asyncio WebSocket plumbing over one sans-I/O protocol.

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl as ssl_module
import time
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidState, InvalidURI
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Close as CloseFrame
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from tracer.errors import TracerError
from tracer.wire.http import HTTPError, RequestHead
from tracer.wire.limits import DEFAULT_MAX_SIZE
from tracer.wire.plain import PlainFrames, limit_attribute

__all__ = [
    "ConnectError",
    "FrameObserver",
    "WebSocket",
    "accept_websocket",
    "connect_websocket",
]


_READ = 256 * 1024

INFLATE_FLOOR = 8 * 1024 * 1024
INFLATE_RATIO = 100
"""A peer's messages may inflate (permessage-deflate) to at most ``INFLATE_RATIO`` times the
bytes it sent, past the first ``INFLATE_FLOOR`` bytes: JSON compresses tenfold or so, a
decompression bomb a thousandfold. Past it the connection is closed with 1009."""
PING_BURST = 100
"""Pings a peer may send within one second; past it the connection is closed with 1008."""
_FAIR_FRAMES = 1024  # frames handed out before yielding to the other connections

# Headers that belong to one hop's handshake and must not be copied to another hop.
HOP_HEADERS = frozenset(
    [
        "host",
        "upgrade",
        "connection",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "sec-websocket-accept",
        "content-length",
        "transfer-encoding",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
    ]
)


class ConnectError(TracerError):
    """Opening a WebSocket failed; ``status`` is set when the server refused the upgrade."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or []
        self.body = body


class FrameObserver(Protocol):
    """Told of every frame a WebSocket sends or receives, and of its end (taps use this)."""

    def frame(self, received: bool, opcode: int, payload: bytes, fin: bool) -> None: ...

    def ended(self, code: int | None, reason: str, error: str | None) -> None: ...


class WebSocket:
    """One end of a WebSocket connection: asyncio streams driven by a sans-I/O protocol.

    ``recv_frame`` returns frames exactly as they arrive (fragments and control frames
    included; permessage-deflate already undone), so a proxy can forward them unchanged.
    The protocol answers pings and close frames by itself.
    """

    def __init__(
        self,
        protocol: ServerProtocol | ClientProtocol,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: Request,
        response: Response,
    ) -> None:
        self.protocol = protocol
        self.reader = reader
        self.writer = writer
        self.request = request
        self.response = response
        self.handshake_ns: int | None = None
        self.error: str | None = None  # why the connection ended abnormally, if it did
        self.observer: FrameObserver | None = None
        self._frames: deque[Frame] = deque()
        self._eof_unsent = False  # the protocol asked for an EOF a TLS stream cannot half-send
        self._eof = False
        self._message: list[bytes] = []
        self._message_opcode: Opcode | None = None
        self._max_attr = limit_attribute(protocol)
        self._max_size: int | None = getattr(protocol, self._max_attr)
        self.wire_bytes = 0  # bytes received from the peer
        self.payload_bytes = 0  # payload bytes of its frames, inflated
        self._pings: deque[float] = deque()  # when the last PING_BURST pings came
        self._served = 0
        self._plain = PlainFrames(protocol)  # the common frames, without the generators
        self._out: list[bytes] = []  # frames framed here, after what the protocol had queued
        self._pending = b""  # bytes read with the handshake's, past it: the first read

    @property
    def subprotocol(self) -> str | None:
        return self.protocol.subprotocol

    @property
    def closed(self) -> bool:
        return self.protocol.state is State.CLOSED

    @property
    def close_code(self) -> int | None:
        return self.protocol.close_code

    @property
    def close_reason(self) -> str | None:
        return self.protocol.close_reason

    @property
    def peer(self) -> str | None:
        info = self.writer.get_extra_info("peername")
        return f"{info[0]}:{info[1]}" if info else None

    @property
    def local(self) -> str | None:
        info = self.writer.get_extra_info("sockname")
        return f"{info[0]}:{info[1]}" if info else None

    async def recv_frame(self) -> Frame | None:
        """The next frame from the peer, or None once the connection has ended."""
        if not await self._fill():
            return None
        return (await self._hand_out([self._frames.popleft()]))[0]

    async def recv_frames(self) -> list[Frame]:
        """``recv_frame``, and with it every frame already parsed from the same read: a
        relay takes them a read at a time (one await, not one per frame). [] once the
        connection has ended."""
        if not await self._fill():
            return []
        frames = list(self._frames)
        self._frames.clear()
        return await self._hand_out(frames)

    async def _hand_out(self, frames: list[Frame]) -> list[Frame]:
        """``frames``, counted as handed out: the observer sees each, and every
        ``_FAIR_FRAMES`` the connection yields to the others."""
        before = self._served
        self._served += len(frames)
        if self.observer is not None:
            for f in frames:
                self.observer.frame(True, f.opcode, bytes(f.data), f.fin)
        if self._served // _FAIR_FRAMES != before // _FAIR_FRAMES:
            await asyncio.sleep(0)  # a peer that floods frames does not starve the others
        return frames

    async def _fill(self) -> bool:
        """Read until a frame is parsed; False once the connection has ended."""
        while not self._frames:
            # After an invalid frame the peer's answer to our close is not worth waiting for.
            if self._eof or self.closed or self.protocol.parser_exc is not None:
                self._notify_end()
                return False
            try:
                data, self._pending = self._pending or await self.reader.read(_READ), b""
            except (ConnectionError, OSError) as exc:
                self.error = f"connection lost: {exc}"
                data = b""
            if data:
                self.wire_bytes += len(data)
                # No frame may inflate past what the ratio still allows: the parser stops
                # decompressing there (1009), instead of building a 60 MiB bomb first.
                allowed = max(INFLATE_FLOOR, INFLATE_RATIO * self.wire_bytes) - self.payload_bytes
                limit = self._max_size
                allow = max(1, allowed if limit is None else min(limit, allowed))
                setattr(self.protocol, self._max_attr, allow)
                frames: list[Frame] = self._plain.receive(data)
                if self.protocol.parser_exc is not None and self.error is None:
                    self.error = f"invalid frame from the peer: {self.protocol.parser_exc}"
            else:
                self._eof = True
                self._plain.eof()
                if isinstance(self.protocol.parser_exc, EOFError) and self.error is None:
                    self.error = "connection dropped in the middle of a frame"
                if self.protocol.state is not State.CLOSED and self.error is None:
                    self.error = "connection dropped without a close frame"
                frames = self.protocol.events_received()  # type: ignore[assignment]
            why = self._abuse(frames)
            if why is not None:
                await self._fail(*why)
                continue
            self._frames.extend(frames)
            await self._flush()
        return True

    def _abuse(self, frames: list[Frame]) -> tuple[int, str] | None:
        """Why these frames end the connection (a close code and reason), or None: a
        decompression bomb, or a ping flood."""
        now = 0.0
        for f in frames:
            self.payload_bytes += len(f.data)
            if f.opcode is Opcode.PING:
                now = now or time.monotonic()
                pings = self._pings
                pings.append(now)
                if len(pings) > PING_BURST and now - pings.popleft() < 1.0:
                    return 1008, f"more than {PING_BURST} pings in a second"
        if self.payload_bytes > max(INFLATE_FLOOR, INFLATE_RATIO * self.wire_bytes):
            return 1009, f"messages inflate more than {INFLATE_RATIO}:1"
        return None

    async def _fail(self, code: int, reason: str) -> None:
        """Close the connection for abuse: a close frame with ``code``, then the socket once
        the peer has stopped sending (or after a second): closing with its data unread would
        reset the connection, and the peer would never read the close frame."""
        self.error = self.error or f"closed by tracer: {reason}"
        self._eof = True
        with contextlib.suppress(Exception):
            self.protocol.fail(code, reason)
            await self._flush()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                while await self.reader.read(_READ):
                    pass  # discarded: nothing more of this peer is parsed
        self._close_transport()

    def _notify_end(self) -> None:
        observer, self.observer = self.observer, None
        if observer is not None:
            observer.ended(self.close_code, self.close_reason or "", self.error)

    async def recv_message(self) -> tuple[Opcode, bytes] | None:
        """The next complete text or binary message (fragments joined), or None at the end."""
        while True:
            frame = await self.recv_frame()
            if frame is None:
                return None
            if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
                self._message_opcode = frame.opcode
                self._message = [bytes(frame.data)]
            elif frame.opcode is Opcode.CONT and self._message_opcode is not None:
                self._message.append(bytes(frame.data))
            else:
                continue  # control frames are answered by the protocol
            if frame.fin:
                opcode, self._message_opcode = self._message_opcode, None
                data, self._message = b"".join(self._message), []
                return opcode, data

    @property
    def protocol_error(self) -> Exception | None:
        """The peer broke the protocol (an invalid or oversized frame), if it did."""
        exc = self.protocol.parser_exc
        return None if exc is None or isinstance(exc, EOFError) else exc

    @property
    def frames_buffered(self) -> int:
        """Frames already received and parsed, that ``recv_frame`` returns without waiting."""
        return len(self._frames)

    async def send_frame(
        self, opcode: Opcode, payload: bytes, fin: bool = True, *, flush: bool = True
    ) -> None:
        """Send one frame; fragments and control frames are sent as given.

        With ``flush=False`` the frame waits for the next flush, so that a burst of frames
        goes out in one write (one system call) instead of one each.
        """
        if self.write_frame(opcode, payload, fin, flush=flush):
            await self.drain()

    def write_frame(
        self, opcode: Opcode, payload: bytes, fin: bool = True, *, flush: bool = True
    ) -> bool:
        """``send_frame`` up to the socket, without waiting: the frame (with ``flush``, and
        those before it) is handed to the transport at once. True when ``drain`` should
        follow (it was flushed): a proxy records a frame between the two, so that the
        recording never delays what it forwards."""
        p = self.protocol
        if type(opcode) is not Opcode:  # accept tracer's own Opcode and plain ints too
            opcode = Opcode(int(opcode))
        raw = self._plain.frame(opcode, payload, fin)
        try:
            if raw is not None:
                self._out += p.data_to_send()  # what the protocol queued goes first
                self._out.append(raw)
            elif opcode is Opcode.TEXT:
                p.send_text(payload, fin)
            elif opcode is Opcode.BINARY:
                p.send_binary(payload, fin)
            elif opcode is Opcode.CONT:
                p.send_continuation(payload, fin)
            elif opcode is Opcode.PING:
                p.send_ping(payload)
            elif opcode is Opcode.PONG:
                p.send_pong(payload)
            elif opcode is Opcode.CLOSE:
                close = CloseFrame.parse(payload) if payload else None
                if close is None:
                    p.send_close()
                else:
                    p.send_close(close.code, close.reason)
            else:
                raise ValueError(f"cannot send a frame with opcode {opcode!r}")
        except InvalidState:
            raise ConnectionResetError("the WebSocket connection is closed") from None
        if self.observer is not None:
            self.observer.frame(False, opcode, payload, fin)
        if flush:
            self._write_pending()
        return flush

    async def flush(self) -> None:
        """Write out frames sent with ``flush=False``."""
        await self._flush()

    async def drain(self) -> None:
        """Wait until the transport takes more (after ``write_frame``)."""
        try:
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            self.error = self.error or f"connection lost: {exc}"
        if self._eof_unsent:
            # TLS has no half-close: closing sends its close_notify, the end of the stream,
            # without which the peer waits out its close timeout.
            self._eof_unsent = False
            self._close_transport()

    async def send_text(self, text: str) -> None:
        await self.send_frame(Opcode.TEXT, text.encode("utf-8"))

    async def close(self, code: int = 1000, reason: str = "", timeout: float = 5.0) -> None:
        """Start the closing handshake, wait for the peer's answer, then close the socket."""
        if self.protocol.state is State.OPEN:
            with contextlib.suppress(InvalidState):
                self.protocol.send_close(code, reason)
            await self._flush()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while await self.recv_frame() is not None:
                    pass
        self._close_transport()
        self._notify_end()

    def abort(self) -> None:
        """Drop the TCP connection at once, without a closing handshake."""
        self.writer.transport.abort()
        self._eof = True
        self.error = self.error or "aborted"
        self._notify_end()

    def _close_transport(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()

    async def _flush(self) -> None:
        self._write_pending()
        await self.drain()

    def _write_pending(self) -> None:
        """Hand what the protocol has to send to the transport (no waiting)."""
        pending = self.protocol.data_to_send()
        if self._out:
            pending, self._out = self._out + pending, []
        eof = b"" in pending  # SEND_EOF: the protocol wants the TCP connection half-closed
        data = b"".join(pending)
        if data:
            self.writer.write(data)
        if eof:
            with contextlib.suppress(OSError, RuntimeError):
                if self.writer.can_write_eof():
                    self.writer.write_eof()
                    return
            self._eof_unsent = True  # closed after the drain (see drain)


async def accept_websocket(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    head: RequestHead,
    *,
    subprotocols: Sequence[str] | None = None,
    extra_headers: Sequence[tuple[str, str]] = (),
    compression: bool = True,
    max_size: int | None = DEFAULT_MAX_SIZE,
) -> WebSocket:
    """Complete the server side of an upgrade whose head was already read.

    ``subprotocols`` lists what this server accepts, in order of preference; the first one
    the client also offered is chosen. Raises ``HTTPError`` for an invalid upgrade, after
    answering it.
    """
    protocol = ServerProtocol(
        extensions=[ServerPerMessageDeflateFactory()] if compression else None,
        subprotocols=[Subprotocol(s) for s in subprotocols] if subprotocols else None,
        max_size=max_size,
    )
    protocol.receive_data(head.raw)
    events = protocol.events_received()
    request = events[0]
    assert isinstance(request, Request)
    response = protocol.accept(request)
    if response.status_code == 101:
        for name, value in extra_headers:
            response.headers[name] = value
    protocol.send_response(response)
    ws = WebSocket(protocol, reader, writer, request, response)
    await ws._flush()
    if response.status_code != 101:
        ws._close_transport()
        raise HTTPError(response.status_code, f"invalid WebSocket upgrade: {response.body!r}")
    return ws


# Over 60 lines: the client handshake in order: TCP, TLS, upgrade, checks.
async def connect_websocket(
    url: str,
    *,
    headers: Sequence[tuple[str, str]] = (),
    subprotocols: Sequence[str] | None = None,
    compression: bool = True,
    ssl_context: ssl_module.SSLContext | None = None,
    max_size: int | None = DEFAULT_MAX_SIZE,
    open_timeout: float = 10.0,
    address: tuple[str, int] | None = None,
) -> WebSocket:
    """Open a client WebSocket; ``headers`` are added to the upgrade request as given.

    Hop-by-hop and handshake headers in ``headers`` are skipped: this hop makes its own.
    ``address`` connects there instead of the URL's host; the TLS name and ``Host`` stay
    the URL's (curl's ``--connect-to``).
    ``handshake_ns`` on the result is the time from the TCP connect to the 101 response.
    """
    try:
        uri = parse_uri(url)
    except (InvalidURI, ValueError) as exc:
        raise ConnectError(f"invalid upstream URL {url!r}: {exc}") from None
    start = time.monotonic_ns()
    ssl_arg: ssl_module.SSLContext | None = None
    if uri.secure:
        ssl_arg = ssl_context or ssl_module.create_default_context()
    host, port = address or (uri.host, uri.port)
    try:
        async with asyncio.timeout(open_timeout):
            reader, writer = await asyncio.open_connection(
                host,
                port,
                ssl=ssl_arg,
                server_hostname=uri.host if ssl_arg is not None else None,
                limit=_READ * 4,
            )
    except TimeoutError:
        raise ConnectError(f"timed out connecting to {uri.host}:{uri.port}") from None
    except (OSError, ssl_module.SSLError) as exc:
        reason = str(exc)
        if isinstance(exc, socket.gaierror) and exc.strerror:  # DNS: errno -2 says nothing
            reason = exc.strerror
        elif isinstance(exc, OSError) and exc.errno and exc.errno > 0:
            reason = os.strerror(exc.errno)  # asyncio's strerror is "Connect call failed"
        raise ConnectError(f"cannot connect to {uri.host}:{uri.port}: {reason}") from None
    protocol = ClientProtocol(
        uri,
        extensions=[ClientPerMessageDeflateFactory()] if compression else None,
        subprotocols=[Subprotocol(s) for s in subprotocols] if subprotocols else None,
        max_size=max_size,
    )
    request = protocol.connect()
    for name, value in headers:
        if name.lower() not in HOP_HEADERS:
            request.headers[name] = value
    protocol.send_request(request)
    for data in protocol.data_to_send():
        writer.write(data)
    events: list[object] = []
    # The protocol gets the response head and no byte past it (frames the server sent at
    # once): the connection's PlainFrames must start at a frame boundary.
    head: bytes | None = b""  # the head's last bytes so far; None once it has ended
    after = b""
    try:
        async with asyncio.timeout(open_timeout):
            await writer.drain()
            while not events:
                data = await reader.read(_READ)
                if not data:
                    protocol.receive_eof()
                    events = list(protocol.events_received())
                    if not events:
                        raise ConnectError("the server closed the connection during the upgrade")
                    break
                if head is not None:
                    seen = head[-3:] + data  # a blank line may straddle two reads
                    end = seen.find(b"\r\n\r\n")
                    if end >= 0:
                        cut = end + 4 - (len(seen) - len(data))
                        data, after, head = data[:cut], data[cut:], None
                    else:
                        head = seen
                protocol.receive_data(data)
                events = list(protocol.events_received())
                if after and not (events and getattr(events[0], "status_code", 0) == 101):
                    protocol.receive_data(after)  # a refusal's body
                    events += protocol.events_received()
                    after = b""
    except TimeoutError:
        writer.close()
        raise ConnectError("timed out waiting for the WebSocket upgrade") from None
    except (OSError, ConnectionError) as exc:
        writer.close()
        raise ConnectError(f"connection lost during the upgrade: {exc}") from None
    except ConnectError:
        writer.close()
        raise
    response = events[0]
    assert isinstance(response, Response)
    if protocol.handshake_exc is not None:
        writer.close()
        raise ConnectError(
            f"the server refused the WebSocket upgrade: HTTP {response.status_code}",
            status=response.status_code,
            headers=list(response.headers.raw_items()),
            body=response.body or b"",
        )
    ws = WebSocket(protocol, reader, writer, request, response)
    ws.handshake_ns = time.monotonic_ns() - start
    ws._pending = after  # its first read
    return ws
