"""Just enough HTTP/1.1 for tracer's servers: read a request head and body, write a response."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus

from tracer.errors import TracerError

__all__ = [
    "BODY_TIMEOUT",
    "LAST_CHUNK",
    "HTTPError",
    "RequestHead",
    "UpstreamGone",
    "body_length",
    "body_pieces",
    "chunk",
    "read_body",
    "read_request_head",
    "read_response_head",
    "request_head",
    "response_body",
    "response_head",
    "write_response",
]

MAX_HEAD = 64 * 1024
_PIECE = 64 * 1024


class UpstreamGone(TracerError):
    """An upstream's HTTP answer did not come, broke off or did not parse (the message
    says which): the client gets a 502, or a dropped connection mid-answer."""


class HTTPError(Exception):
    """A request that cannot be served; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class RequestHead:
    """The request line and headers of an HTTP/1.1 request, and their raw bytes."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    raw: bytes = b""

    def header(self, name: str) -> str | None:
        """The first value of a header, case-insensitively, or None."""
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def is_websocket_upgrade(self) -> bool:
        upgrade = (self.header("Upgrade") or "").lower()
        return self.method == "GET" and upgrade == "websocket"


async def read_request_head(reader: asyncio.StreamReader) -> RequestHead | None:
    """Read one request head; None on a clean EOF before any byte."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise HTTPError(400, "connection closed inside the request head") from None
    except asyncio.LimitOverrunError:
        raise HTTPError(431, "request head too large") from None
    if len(raw) > MAX_HEAD:
        raise HTTPError(431, "request head too large")
    try:
        text = raw.decode("latin-1")
        line, *header_lines = text[:-4].split("\r\n")
        method, target, version = line.split(" ", 2)
    except ValueError:
        raise HTTPError(400, "malformed request line") from None
    headers = []
    for h in header_lines:
        name, sep, value = h.partition(":")
        if not sep or not name or name != name.strip():
            raise HTTPError(400, "malformed header line")
        headers.append((name, value.strip()))
    return RequestHead(method, target, version, headers, raw)


BODY_TIMEOUT = 10.0
"""Seconds a request body may pause between two reads (nginx: client_body_timeout)."""


async def body_pieces(
    reader: asyncio.StreamReader,
    head: RequestHead,
    limit: int | None,
    timeout: float = BODY_TIMEOUT,
) -> AsyncIterator[bytes]:
    """A request body (Content-Length or chunked) as it arrives, in pieces of at most
    64 KiB: ``HTTPError`` 413 past ``limit`` bytes (None: no limit), 408 when a read waits
    longer than ``timeout`` seconds, 400 when it is malformed or cut short."""

    async def read(call: Awaitable[bytes]) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await call
        except TimeoutError:
            raise HTTPError(408, "the request body stalled") from None
        except asyncio.IncompleteReadError:
            raise HTTPError(400, "the connection closed inside the request body") from None
        except asyncio.LimitOverrunError:
            raise HTTPError(400, "malformed chunked body") from None

    total = 0
    if (head.header("Transfer-Encoding") or "").lower() == "chunked":
        while True:
            size_line = await read(reader.readuntil(b"\r\n"))
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise HTTPError(400, "malformed chunk size") from None
            if size == 0:
                await read(reader.readuntil(b"\r\n"))  # trailers are not supported: none
                return
            total += size
            if limit is not None and total > limit:
                raise HTTPError(413, "request body too large")
            while size:
                piece = await read(reader.readexactly(min(size, _PIECE)))
                size -= len(piece)
                yield piece
            await read(reader.readexactly(2))
    n = body_length(head)
    if limit is not None and n > limit:
        raise HTTPError(413, "request body too large")
    while n:
        piece = await read(reader.readexactly(min(n, _PIECE)))
        n -= len(piece)
        yield piece


def body_length(head: RequestHead) -> int:
    """The Content-Length of a request that is not chunked (0 without one)."""
    length = head.header("Content-Length")
    if length is None:
        return 0
    try:
        n = int(length)
    except ValueError:
        raise HTTPError(400, "malformed Content-Length") from None
    if n < 0:
        raise HTTPError(400, "malformed Content-Length")
    return n


async def read_body(
    reader: asyncio.StreamReader, head: RequestHead, limit: int, timeout: float = BODY_TIMEOUT
) -> bytes:
    """Read a whole request body (Content-Length or chunked), up to ``limit`` bytes."""
    return b"".join([piece async for piece in body_pieces(reader, head, limit, timeout)])


async def read_response_head(
    reader: asyncio.StreamReader, timeout: float
) -> tuple[int, str, list[tuple[str, str]]]:
    """A response's status, reason and headers (after any 1xx); ``UpstreamGone`` when it
    does not come within ``timeout`` seconds or does not parse."""
    while True:
        try:
            async with asyncio.timeout(timeout):
                raw = await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            raise UpstreamGone(f"upstream sent no answer within {timeout:g} s") from None
        except asyncio.IncompleteReadError:
            raise UpstreamGone("upstream closed the connection before answering") from None
        except (asyncio.LimitOverrunError, ConnectionError) as exc:
            raise UpstreamGone(f"upstream answer unreadable: {exc}") from None
        if len(raw) > MAX_HEAD:
            raise UpstreamGone("upstream response head too large")
        line, *rest = raw[:-4].decode("latin-1").split("\r\n")
        parts = line.split(" ", 2)
        try:
            status = int(parts[1])
        except (IndexError, ValueError):
            raise UpstreamGone(f"upstream sent a malformed status line {line[:80]!r}") from None
        headers = []
        for h in rest:
            name, sep, value = h.partition(":")
            if sep:
                headers.append((name.strip(), value.strip()))
        if 100 <= status < 200 and status != 101:
            continue  # 100 Continue and friends: the real answer follows
        return status, parts[2] if len(parts) > 2 else "", headers


async def response_body(
    reader: asyncio.StreamReader, headers: list[tuple[str, str]], timeout: float
) -> AsyncIterator[bytes]:
    """The response body as it arrives, whatever its framing; ``UpstreamGone`` when a read
    waits longer than ``timeout`` seconds."""

    async def within(call: Awaitable[bytes]) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await call
        except TimeoutError:
            raise UpstreamGone(f"upstream sent nothing for {timeout:g} s") from None

    values = {k.lower(): v for k, v in headers}
    try:
        if "chunked" in values.get("transfer-encoding", "").lower():
            while True:
                size_line = await within(reader.readuntil(b"\r\n"))
                try:
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise UpstreamGone("upstream sent a malformed chunk size") from None
                if size == 0:
                    while (await within(reader.readuntil(b"\r\n"))) != b"\r\n":
                        pass  # trailers
                    return
                remaining = size
                while remaining:
                    data = await within(reader.read(min(remaining, 1 << 16)))
                    if not data:
                        raise asyncio.IncompleteReadError(b"", remaining)
                    remaining -= len(data)
                    yield data
                await within(reader.readexactly(2))
        elif "content-length" in values:
            remaining = int(values["content-length"])
            while remaining > 0:
                data = await within(reader.read(min(remaining, 1 << 16)))
                if not data:
                    raise asyncio.IncompleteReadError(b"", remaining)
                remaining -= len(data)
                yield data
        else:
            while data := await within(reader.read(1 << 16)):
                yield data
    except asyncio.IncompleteReadError:
        raise UpstreamGone("upstream dropped the connection in the middle of the body") from None
    except (ConnectionError, asyncio.LimitOverrunError) as exc:
        raise UpstreamGone(f"upstream connection failed: {exc}") from None
    except ValueError:
        raise UpstreamGone("upstream sent a malformed Content-Length") from None


def request_head(method: str, target: str, headers: Iterable[tuple[str, str]]) -> bytes:
    """An HTTP/1.1 request head: the request line, ``headers`` as given, the blank line."""
    lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def response_head(
    status: int, headers: Iterable[tuple[str, str]] = (), *, reason: str | None = None
) -> bytes:
    """An HTTP/1.1 response head: the status line (the standard reason phrase unless
    ``reason``), ``headers`` as given, the blank line."""
    if reason is None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}".rstrip(), *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    """One chunk of a ``Transfer-Encoding: chunked`` body (never empty: that ends it)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
"""The end of a chunked body (no trailers)."""


def write_response(
    writer: asyncio.StreamWriter,
    status: int,
    headers: list[tuple[str, str]] | None = None,
    body: bytes | None = None,
) -> None:
    """Write a response head (and body, with its Content-Length when given)."""
    sent = list(headers or [])
    if body is not None:
        sent.append(("Content-Length", str(len(body))))
    writer.write(response_head(status, sent) + (body or b""))
