"""In-process taps: record the frames of a client connection without a proxy."""

from __future__ import annotations

from tracer.capture.recorder import Recorder
from tracer.trace.records import Direction, Opcode
from tracer.wire.websocket import WebSocket

__all__ = ["tap_websocket"]


class _WireTap:
    """Records one ``tracer.wire`` WebSocket's frames; the socket is the client side."""

    def __init__(self, recorder: Recorder, conn: int) -> None:
        self.recorder = recorder
        self.conn = conn

    def frame(self, received: bool, opcode: int, payload: bytes, fin: bool) -> None:
        direction = Direction.SERVER if received else Direction.CLIENT
        self.recorder.frame(self.conn, direction, Opcode(opcode), payload, fin)

    def ended(self, code: int | None, reason: str, error: str | None) -> None:
        self.recorder.close_connection(self.conn, code=code, reason=reason, error=error)


def tap_websocket(ws: WebSocket, recorder: Recorder, url: str) -> int:
    """Record ``ws`` (a client connection) from now on; returns its connection id."""
    conn = recorder.open_connection(
        url,
        request_headers=list(ws.request.headers.raw_items()),
        response_headers=list(ws.response.headers.raw_items()),
        status=ws.response.status_code,
        subprotocol=ws.subprotocol,
        client_addr=ws.local,
        server_addr=ws.peer,
        handshake_ns=ws.handshake_ns,
    )
    ws.observer = _WireTap(recorder, conn)
    return conn
