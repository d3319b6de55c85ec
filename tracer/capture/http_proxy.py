"""The plain-HTTP half of the recording proxy.

Every request is forwarded to the upstream on a fresh connection (which is what an HTTP
client of the Responses API pays per turn) and the response is streamed back as it arrives.
A ``POST .../responses`` (or ``.../responses/compact``) is recorded as a connection of
transport ``http``: one client frame with the request body, then one server frame per
server-sent event (or one frame with the whole body when the answer is not an event
stream), each stamped when it crossed the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from tracer.capture.recorder import Recorder
from tracer.capture.upstream import Upstream
from tracer.responses.sse import SSEDecoder
from tracer.trace.records import Direction, Opcode
from tracer.wire.http import (
    BODY_TIMEOUT,
    LAST_CHUNK,
    HTTPError,
    RequestHead,
    UpstreamGone,
    body_length,
    body_pieces,
    chunk,
    read_body,
    read_response_head,
    request_head,
    response_body,
    response_head,
    write_response,
)

__all__ = ["HttpPolicy", "proxy_http"]


class HttpPolicy:
    """What the plain-HTTP half needs from the proxy it serves, and no more: where to
    record, the limits and timeouts, the headers not forwarded, the log, and the budget of
    request-body bytes held for the recorder at once (over all requests in flight)."""

    def __init__(
        self,
        recorder: Recorder | None,
        *,
        max_size: int | None,
        dropped: frozenset[str],
        upstream_timeout: float,
        log: Callable[[str], None],
        max_body_bytes: int,
        added: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.recorder = recorder
        self.added = list(added)  # headers sent upstream besides the client's
        self.max_size = max_size  # a recorded body's limit (None: _MAX_RECORDED_BODY)
        self.dropped = dropped
        self.upstream_timeout = upstream_timeout  # an upstream's silence: 502 past it
        self.body_timeout = BODY_TIMEOUT  # a request body's pause between reads: 408 past it
        self.max_body_bytes = max_body_bytes
        self.log = log
        self._held = 0

    def hold_body_bytes(self, n: int) -> bool:
        """Take ``n`` bytes of the budget of bodies held for recording; False when that
        would pass ``max_body_bytes`` (the request is then refused with 503)."""
        if self._held + n > self.max_body_bytes:
            return False
        self._held += n
        return True

    def release_body_bytes(self, n: int) -> None:
        self._held -= n


_HOP = frozenset(
    ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
     "upgrade", "content-length", "host", "proxy-authorization", "proxy-authenticate"]
)  # fmt: skip
_MAX_RECORDED_BODY = 64 * 1024 * 1024  # a non-stream answer recorded whole up to this size


def reason_of(exc: BaseException) -> str:
    """Why a connection failed, in words: "Connection refused" (not asyncio's "Connect call
    failed"), a DNS failure's own text ("Name or service not known", not "Unknown error
    -2")."""
    if isinstance(exc, socket.gaierror) and exc.strerror:
        return exc.strerror
    errno = getattr(exc, "errno", None)
    if isinstance(errno, int) and errno > 0:
        return os.strerror(errno)
    return str(exc) or type(exc).__name__


def _recordable(head: RequestHead) -> bool:
    path = head.path.split("?", 1)[0].rstrip("/")
    return head.method == "POST" and path.endswith(("/responses", "/responses/compact"))


def _keep_alive(head: RequestHead) -> bool:
    conn = (head.header("Connection") or "").lower()
    if head.version == "HTTP/1.0":
        return "keep-alive" in conn
    return "close" not in conn


# Over 60 lines: one request's forward-and-record lifecycle, its failure paths in order.
async def proxy_http(
    proxy: HttpPolicy,
    head: RequestHead,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    upstream: Upstream,
) -> bool:
    """Forward one request to ``upstream`` and its response back; True when the client
    connection stays open.

    The request body is streamed to the upstream as it arrives (a recorded request keeps a
    copy, within ``max_size`` and the proxy's budget of body bytes in flight); a body that
    stalls gets 408, a silent upstream 502, each with a reason and a recorded failure."""
    recorder = proxy.recorder if upstream.record and _recordable(head) else None
    limit = (proxy.max_size or _MAX_RECORDED_BODY) if recorder is not None else None
    t_request = recorder.now_ns() if recorder is not None else 0
    base = urlsplit(upstream.http_base)
    tls = base.scheme == "https"
    host = base.hostname or "localhost"
    port = base.port or (443 if tls else 80)
    address = upstream.address or (host, port)
    ctx: ssl.SSLContext | None = None
    if tls:
        ctx = upstream.ssl or ssl.create_default_context()
    peer = writer.get_extra_info("peername")
    client_addr = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else None

    async def fail(status: int, message: str, body: bytes | None) -> bool:
        """Answer the client ``status`` with the reason, record the failed request, and say
        it on the proxy's log (the client may not show what it got)."""
        proxy.log(f"{head.method} {head.path[:100]}: {status}: {message}")
        write_response(
            writer, status, [("Content-Type", "text/plain"), ("Connection", "close")],
            f"tracer record: {message}\n".encode(),
        )  # fmt: skip
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        if recorder is not None:
            failed = recorder.open_connection(
                head.target, request_headers=head.headers, status=status,
                client_addr=client_addr, transport="http", t_ns=t_request,
            )  # fmt: skip
            if body is not None:
                recorder.frame(failed, Direction.CLIENT, Opcode.TEXT, body, True, t_request)
            recorder.close_connection(failed, by="server", error=message)
        return False

    started = time.monotonic_ns()
    try:
        up_reader, up_writer = await asyncio.wait_for(
            asyncio.open_connection(*address, ssl=ctx, server_hostname=host if tls else None),
            timeout=30,
        )
    except (OSError, TimeoutError) as exc:
        whole = await read_body(reader, head, limit) if limit is not None else None
        return await fail(502, f"cannot reach upstream {base.netloc}: {reason_of(exc)}", whole)
    connect_ns = time.monotonic_ns() - started
    server_addr = up_writer.get_extra_info("peername")
    conn: int | None = None
    body = bytearray() if recorder is not None else None
    held = 0  # body bytes this request holds of the proxy's budget
    answered = False  # the response head has gone to the client
    try:
        headers = [(k, v) for k, v in head.headers if k.lower() not in proxy.dropped | _HOP]
        headers += proxy.added
        if recorder is not None:
            # The events must reach the recorder as text: ask for no content coding.
            headers = [(k, v) for k, v in headers if k.lower() != "accept-encoding"]
            headers.append(("Accept-Encoding", "identity"))
        chunked = (head.header("Transfer-Encoding") or "").lower() == "chunked"
        path = (base.path.rstrip("/") + head.target) if base.path else head.target
        framing = (
            ("Transfer-Encoding", "chunked")
            if chunked
            else ("Content-Length", str(body_length(head)))
        )
        sent = [("Host", base.netloc), *headers, framing, ("Connection", "close")]
        up_writer.write(request_head(head.method, path, sent))
        async for piece in body_pieces(reader, head, limit, proxy.body_timeout):
            if body is not None:
                if not proxy.hold_body_bytes(len(piece)):
                    raise HTTPError(503, "too many request bytes in flight; try again")
                held += len(piece)
                body += piece
            up_writer.write(chunk(piece) if chunked else piece)
            await up_writer.drain()
        if chunked:
            up_writer.write(LAST_CHUNK)
        await up_writer.drain()
        status, reason, resp_headers = await read_response_head(up_reader, proxy.upstream_timeout)
        if recorder is not None and body is not None:
            conn = recorder.open_connection(
                head.target,
                request_headers=head.headers,
                response_headers=resp_headers,
                status=status,
                client_addr=client_addr,
                server_addr=f"{server_addr[0]}:{server_addr[1]}"
                if isinstance(server_addr, tuple) else None,
                handshake_ns=connect_ns,
                transport="http",
                t_ns=t_request,
            )  # fmt: skip
            recorder.frame(conn, Direction.CLIENT, Opcode.TEXT, bytes(body), True, t_request)
            proxy.release_body_bytes(held)
            held, body = 0, None
        keep = _keep_alive(head) and head.method != "HEAD"
        answered = True
        await _relay_body(proxy, up_reader, writer, head, status, reason, resp_headers, conn, keep)
        if recorder is not None and conn is not None:
            recorder.close_connection(conn, by="server")
            conn = None
        return keep
    except HTTPError as exc:  # the client's body: stalled, too large, malformed; or no budget
        return await fail(exc.status, str(exc), None)
    except UpstreamGone as exc:
        if not answered:  # nothing has gone to the client yet: it gets the reason
            return await fail(502, str(exc), bytes(body) if body is not None else None)
        if recorder is not None and conn is not None:
            recorder.close_connection(conn, by="server", error=str(exc))
            conn = None
        writer.transport.abort()
        return False
    except (ConnectionError, asyncio.IncompleteReadError) as exc:
        if recorder is not None and conn is not None:
            recorder.close_connection(conn, by="client", error=f"client went away: {exc}")
            conn = None
        return False
    except asyncio.CancelledError:
        if recorder is not None and conn is not None:  # the proxy is stopping mid-answer
            recorder.close_connection(conn, by="recorder", error="tracer record is stopping")
            conn = None
        raise
    finally:
        proxy.release_body_bytes(held)
        up_writer.close()
        with contextlib.suppress(Exception):
            await up_writer.wait_closed()


async def _relay_body(
    proxy: HttpPolicy,
    up: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    head: RequestHead,
    status: int,
    reason: str,
    headers: list[tuple[str, str]],
    conn: int | None,
    keep: bool,
) -> None:
    recorder = proxy.recorder if conn is not None else None
    ctype = next((v for k, v in headers if k.lower() == "content-type"), "")
    decoder = SSEDecoder() if ctype.startswith("text/event-stream") else None
    out = [(k, v) for k, v in headers if k.lower() not in _HOP]
    no_body = head.method == "HEAD" or status in (204, 304)
    if not no_body:
        out.append(("Transfer-Encoding", "chunked"))
    out.append(("Connection", "keep-alive" if keep else "close"))
    writer.write(response_head(status, out, reason=reason))
    if no_body:
        await writer.drain()
        return
    whole = bytearray()
    async for data in response_body(up, headers, proxy.upstream_timeout):
        writer.write(chunk(data))
        await writer.drain()
        if recorder is None or conn is None:
            continue
        if decoder is not None:
            t = recorder.now_ns()
            try:
                events = decoder.feed(data)
            except ValueError:
                decoder, events = None, []
            for event in events:
                recorder.frame(conn, Direction.SERVER, Opcode.TEXT, event, True, t)
        elif len(whole) + len(data) <= _MAX_RECORDED_BODY:
            whole += data
    writer.write(LAST_CHUNK)
    await writer.drain()
    if recorder is not None and conn is not None:
        if decoder is not None:
            for event in decoder.finish():
                recorder.frame(conn, Direction.SERVER, Opcode.TEXT, event, True, recorder.now_ns())
        elif whole:
            recorder.frame(
                conn, Direction.SERVER, Opcode.TEXT, bytes(whole), True, recorder.now_ns()
            )
