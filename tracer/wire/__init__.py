"""asyncio plumbing shared by the I/O shells: HTTP/1.1 heads and WebSocket endpoints.

Built on websockets' sans-I/O protocol objects so that one listening socket can answer both
WebSocket upgrades and plain HTTP requests, and so that a proxy sees frames (fragments,
control frames) exactly as they crossed the wire. The endpoints (and ``websockets``) load on
first use: a command that only reads traces never loads them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tracer._lazy import lazy_exports
from tracer.wire.limits import DEFAULT_MAX_SIZE

if TYPE_CHECKING:
    from tracer.wire.http import (
        HTTPError,
        RequestHead,
        read_body,
        read_request_head,
        write_response,
    )
    from tracer.wire.websocket import (
        ConnectError,
        WebSocket,
        accept_websocket,
        connect_websocket,
    )

__all__ = [
    "DEFAULT_MAX_SIZE",
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

__getattr__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(
            ["HTTPError", "RequestHead", "read_body", "read_request_head", "write_response"],
            "tracer.wire.http",
        ),
        **dict.fromkeys(
            ["ConnectError", "WebSocket", "accept_websocket", "connect_websocket"],
            "tracer.wire.websocket",
        ),
    },
)
