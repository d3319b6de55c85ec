"""asyncio plumbing shared by the I/O shells: HTTP/1.1 heads and WebSocket endpoints.

Built on websockets' sans-I/O protocol objects so that one listening socket can answer both
WebSocket upgrades and plain HTTP requests, and so that a proxy sees frames (fragments,
control frames) exactly as they crossed the wire.
"""

from __future__ import annotations

from tracer.wire.http import HTTPError, RequestHead, read_body, read_request_head, write_response
from tracer.wire.websocket import (
    ConnectError,
    WebSocket,
    accept_websocket,
    connect_websocket,
)

__all__ = [
    "ConnectError",
    "HTTPError",
    "RequestHead",
    "WebSocket",
    "accept_websocket",
    "connect_websocket",
    "read_body",
    "read_request_head",
    "write_response",
]
