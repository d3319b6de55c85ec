"""In-process taps: record the frames of a client connection without a proxy."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from tracer.capture.recorder import Recorder
from tracer.trace.records import Direction, Opcode
from tracer.wire.websocket import WebSocket

__all__ = ["recording_connection_class", "tap_protocol", "tap_websocket", "tapping"]


class _WireTap:
    """Records one ``tracer.wire`` WebSocket's frames, from its own side's point of view."""

    def __init__(self, recorder: Recorder, conn: int, client_side: bool) -> None:
        self.recorder = recorder
        self.conn = conn
        self.received = Direction.SERVER if client_side else Direction.CLIENT
        self.sent = Direction.CLIENT if client_side else Direction.SERVER

    def frame(self, received: bool, opcode: int, payload: bytes, fin: bool) -> None:
        direction = self.received if received else self.sent
        self.recorder.frame(self.conn, direction, Opcode(opcode), payload, fin)

    def ended(self, code: int | None, reason: str, error: str | None) -> None:
        self.recorder.close_connection(self.conn, code=code, reason=reason, error=error)


def tap_websocket(ws: WebSocket, recorder: Recorder, url: str, *, client_side: bool = True) -> int:
    """Record ``ws`` from now on; returns its connection id. ``client_side`` says whether
    ``ws`` is the client's end (its sends are client frames) or the server's."""
    conn = recorder.open_connection(
        url,
        request_headers=list(ws.request.headers.raw_items()),
        response_headers=list(ws.response.headers.raw_items()),
        status=ws.response.status_code,
        subprotocol=ws.subprotocol,
        client_addr=ws.local if client_side else ws.peer,
        server_addr=ws.peer if client_side else ws.local,
        handshake_ns=ws.handshake_ns,
    )
    ws.observer = _WireTap(recorder, conn, client_side)
    return conn


class _ProtocolTap:
    """Records the frames a websockets ``Protocol`` sends and receives."""

    def __init__(self, recorder: Recorder, conn: int, is_client: bool) -> None:
        self.recorder = recorder
        self.conn = conn
        self.sent = Direction.CLIENT if is_client else Direction.SERVER
        self.received = Direction.SERVER if is_client else Direction.CLIENT
        self.close_seen: tuple[int | None, str, str] | None = None
        self.done = False

    def record(self, direction: Direction, frame: Any) -> None:
        if self.done:
            return
        payload = bytes(frame.data)
        self.recorder.frame(self.conn, direction, Opcode(int(frame.opcode)), payload, frame.fin)
        if int(frame.opcode) == Opcode.CLOSE and self.close_seen is None:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            by = "client" if direction is Direction.CLIENT else "server"
            self.close_seen = (code, payload[2:].decode("utf-8", "replace"), by)

    def end(self, error: str | None = None) -> None:
        if self.done:
            return
        self.done = True
        code, reason, by = self.close_seen or (None, "", None)
        self.recorder.close_connection(self.conn, code=code, reason=reason, by=by, error=error)


def tap_protocol(connection: Any, recorder: Recorder, url: str | None = None) -> int:
    """Record a ``websockets`` connection (sync or asyncio, client or server) from now on.

    Works on any object with websockets' ``protocol``, ``request`` and ``response``
    attributes: it wraps the sans-I/O protocol's ``send_frame`` and ``recv_frame``, where
    payloads are plain (permessage-deflate is applied below them). Returns the connection id.
    """
    return _install(connection, recorder, url).conn


@contextlib.contextmanager
def tapping(connection: Any, recorder: Recorder, url: str | None = None) -> Iterator[int]:
    """``tap_protocol`` as a context manager: yields the connection id; when the block
    ends (also by an exception) while the connection is still open, its close record says
    that the tap ended, so the trace never holds a connection without an end."""
    tap = _install(connection, recorder, url)
    try:
        yield tap.conn
    finally:
        tap.end("the tap ended before the connection did")


def _install(connection: Any, recorder: Recorder, url: str | None) -> _ProtocolTap:
    protocol = connection.protocol
    is_client = getattr(protocol, "side", None) is not None and protocol.side.name == "CLIENT"
    request = getattr(connection, "request", None)
    response = getattr(connection, "response", None)
    if url is None:
        uri = getattr(protocol, "uri", None)
        url = uri.resource_name if uri is not None else (request.path if request else "")
    conn = recorder.open_connection(
        url,
        request_headers=list(request.headers.raw_items()) if request else [],
        response_headers=list(response.headers.raw_items()) if response else [],
        status=response.status_code if response else 101,
        subprotocol=getattr(connection, "subprotocol", None),
        client_addr=_addr(getattr(connection, "local_address", None)),
        server_addr=_addr(getattr(connection, "remote_address", None)),
    )
    tap = _ProtocolTap(recorder, conn, is_client)
    send_frame, recv_frame, receive_eof = (
        protocol.send_frame,
        protocol.recv_frame,
        protocol.receive_eof,
    )

    def tapped_send(frame: Any) -> None:
        send_frame(frame)
        tap.record(tap.sent, frame)

    def tapped_recv(frame: Any) -> None:
        tap.record(tap.received, frame)
        recv_frame(frame)
        if protocol.state.name == "CLOSED":
            tap.end()

    def tapped_eof() -> None:
        receive_eof()
        tap.end(None if tap.close_seen else "connection dropped without a close frame")

    protocol.send_frame = tapped_send
    protocol.recv_frame = tapped_recv
    protocol.receive_eof = tapped_eof
    return tap


def recording_connection_class(recorder: Recorder, base: type | None = None) -> type:
    """A websockets ``ClientConnection`` subclass that records itself; pass it as
    ``create_connection=`` to ``websockets.sync.client.connect`` (the default ``base``) or
    give the asyncio ``ClientConnection`` as ``base`` for ``websockets.asyncio.client.connect``.

    The openai SDK hands ``websocket_connection_options`` to ``connect``, so this records its
    Responses WebSocket client with no proxy::

        cls = recording_connection_class(recorder)
        client.responses.connect(websocket_connection_options={"create_connection": cls})
    """
    if base is None:
        from websockets.sync.client import ClientConnection as base_cls

        base = base_cls

    class RecordingClientConnection(base):  # type: ignore[misc,valid-type]
        """A websockets client connection whose frames go into a tracer trace."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._tracer_tapped = False

        def _tracer_tap(self) -> None:
            if not self._tracer_tapped:
                self._tracer_tapped = True
                tap_protocol(self, recorder)

    # The handshake must complete before the request and response exist: tap after it.
    original: Any = getattr(base, "handshake")  # noqa: B009

    async def async_handshake(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = await original(self, *args, **kwargs)
        self._tracer_tap()
        return result

    def sync_handshake(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        self._tracer_tap()
        return result

    handshake = async_handshake if _is_coroutine(original) else sync_handshake
    setattr(RecordingClientConnection, "handshake", handshake)  # noqa: B010
    return RecordingClientConnection


def _is_coroutine(fn: Any) -> bool:
    import inspect

    return inspect.iscoroutinefunction(fn)


def _addr(info: Any) -> str | None:
    if isinstance(info, tuple) and len(info) >= 2:
        return f"{info[0]}:{info[1]}"
    return None
