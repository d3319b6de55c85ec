"""Just enough HTTP/1.1 for tracer's servers: read a request head and body, write a response."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from http import HTTPStatus

__all__ = ["HTTPError", "RequestHead", "read_body", "read_request_head", "write_response"]

MAX_HEAD = 64 * 1024


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


async def read_body(reader: asyncio.StreamReader, head: RequestHead, limit: int) -> bytes:
    """Read a request body sent with Content-Length or chunked encoding, up to ``limit``."""
    if (head.header("Transfer-Encoding") or "").lower() == "chunked":
        body = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise HTTPError(400, "malformed chunk size") from None
            if size == 0:
                await reader.readuntil(b"\r\n")  # trailers are not supported: expect none
                return bytes(body)
            if len(body) + size > limit:
                raise HTTPError(413, "request body too large")
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    length = head.header("Content-Length")
    if length is None:
        return b""
    try:
        n = int(length)
    except ValueError:
        raise HTTPError(400, "malformed Content-Length") from None
    if n < 0 or n > limit:
        raise HTTPError(413, "request body too large")
    return await reader.readexactly(n)


def write_response(
    writer: asyncio.StreamWriter,
    status: int,
    headers: list[tuple[str, str]] | None = None,
    body: bytes | None = None,
) -> None:
    """Write a response head (and body, with its Content-Length when given)."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}"]
    for name, value in headers or []:
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
