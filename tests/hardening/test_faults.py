"""Faults on either side of the recording proxy: an upstream that refuses, drops the TCP
connection in the middle of a frame, sends an invalid frame or closes with any common code;
a client that drops in the middle of a frame. The proxy mirrors each to the other side,
records it, and goes on serving other connections."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.hardening.helpers import free_port, wait_for_port
from tracer.capture.proxy import RecordingProxy
from tracer.capture.recorder import Recorder
from tracer.trace import Close, Frame, open_trace
from tracer.upstream import running_upstream

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
Behaviour = Callable[[socket.socket], None]


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = False) -> bytes:
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([bit | 127]) + struct.pack(">Q", n)
    if mask:
        key = os.urandom(4)
        return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + payload


def read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        data += chunk
    return data


@contextmanager
def raw_upstream(behaviour: Behaviour) -> Iterator[int]:
    """A TCP server that completes the WebSocket handshake, then does ``behaviour``."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                sock, _ = server.accept()
            except TimeoutError:
                continue
            with sock:
                head = read_head(sock).decode()
                key = next(
                    line.split(":", 1)[1].strip()
                    for line in head.split("\r\n")
                    if line.lower().startswith("sec-websocket-key:")
                )
                accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
                sock.sendall(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n".encode()
                )
                with suppress(OSError):
                    behaviour(sock)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(5)
        server.close()


@contextmanager
def proxy_to(upstream_port: int, trace: Path) -> Iterator[int]:
    """A recording proxy (tracer's own, in a thread) in front of ``upstream_port``."""
    import asyncio

    recorder = Recorder(trace)
    loop = asyncio.new_event_loop()
    proxy = RecordingProxy(f"ws://127.0.0.1:{upstream_port}", recorder)
    loop.run_until_complete(proxy.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield proxy.port
    finally:
        asyncio.run_coroutine_threadsafe(proxy.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        recorder.close()


def records(trace: Path) -> list:
    with open_trace(trace) as reader:
        return list(reader)


def records_once_closed(trace: Path, timeout: float = 10.0) -> list:
    """The trace's records once the recorder has written a close (it flushes on a timer)."""
    deadline = time.monotonic() + timeout
    while True:
        recs = records(trace)
        if any(type(r) is Close for r in recs) or time.monotonic() > deadline:
            return recs
        time.sleep(0.05)


def proxy_still_serves(port: int) -> None:
    """A fresh connection through the same proxy to the scripted upstream works."""
    with connect(f"ws://127.0.0.1:{port}/v1/responses") as ws:
        ws.send(json.dumps({"type": "response.create", "input": "still there?"}))
        while json.loads(ws.recv(timeout=10))["type"] != "response.completed":
            pass


def wait_for_client_message(sock: socket.socket) -> None:
    sock.settimeout(10)
    sock.recv(65536)


CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4000,
         4999]  # fmt: skip


@pytest.mark.parametrize("code", CODES)
def test_every_close_code_from_the_upstream_reaches_the_client(tmp_path: Path, code: int):
    def behaviour(sock: socket.socket) -> None:
        wait_for_client_message(sock)
        sock.sendall(frame(1, b'{"type":"hello"}'))
        sock.sendall(frame(8, struct.pack(">H", code) + f"reason {code}".encode()))
        sock.recv(1024)  # the close frame echoed back

    trace = tmp_path / "t.trace"
    with (
        raw_upstream(behaviour) as up,
        proxy_to(up, trace) as port,
        connect(f"ws://127.0.0.1:{port}/v1/responses") as ws,
    ):
        ws.send('{"type":"response.create"}')
        assert json.loads(ws.recv(timeout=10)) == {"type": "hello"}
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (code, f"reason {code}")
    (close,) = [r for r in records(trace) if type(r) is Close]
    assert (close.code, close.reason, close.by, close.error) == (
        code, f"reason {code}", "server", None,
    )  # fmt: skip


def test_upstream_dropping_mid_frame(tmp_path: Path):
    def behaviour(sock: socket.socket) -> None:
        wait_for_client_message(sock)
        sock.sendall(frame(1, b'{"type":"one"}'))
        sock.sendall(frame(1, b'{"type":"two", "pad": "' + b"z" * 5000 + b'"}')[:1000])
        sock.close()  # in the middle of the second frame

    trace = tmp_path / "t.trace"
    with running_upstream() as good, raw_upstream(behaviour) as up:
        with proxy_to(up, trace) as port:
            with connect(f"ws://127.0.0.1:{port}/v1/responses") as ws:
                ws.send('{"type":"response.create"}')
                assert json.loads(ws.recv(timeout=10)) == {"type": "one"}
                with pytest.raises(ConnectionClosed) as info:
                    ws.recv(timeout=10)
            assert info.value.rcvd is None  # mirrored as a drop
        recs = records(trace)
        (close,) = [r for r in recs if type(r) is Close]
        assert close.by == "server" and "middle of a frame" in (close.error or ""), close
        assert [r.payload for r in recs if type(r) is Frame and r.direction.label == "server"] == [
            b'{"type":"one"}'
        ]
        with proxy_to(good.port, tmp_path / "after.trace") as port:
            proxy_still_serves(port)


@pytest.mark.parametrize(
    "bad",
    [
        frame(3, b"reserved opcode"),
        frame(1, b"masked by the server", mask=True),
        bytes([0x81 | 0x40, 2]) + b"hi",  # RSV1 set without an extension
        frame(9, b"p" * 200),  # a ping longer than 125 bytes
    ],
    ids=["reserved-opcode", "masked", "rsv1", "long-ping"],
)
def test_an_invalid_frame_from_the_upstream(tmp_path: Path, bad: bytes):
    def behaviour(sock: socket.socket) -> None:
        wait_for_client_message(sock)
        sock.sendall(frame(1, b'{"type":"fine"}'))
        sock.sendall(bad)
        sock.settimeout(5)
        while sock.recv(1024):  # the proxy's close frame, then the end
            pass

    trace = tmp_path / "t.trace"
    with raw_upstream(behaviour) as up, proxy_to(up, trace) as port:
        with connect(f"ws://127.0.0.1:{port}/v1/responses") as ws:
            ws.send('{"type":"response.create"}')
            assert json.loads(ws.recv(timeout=10)) == {"type": "fine"}
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1014
        (close,) = [r for r in records_once_closed(trace) if type(r) is Close]
        assert close.by == "server" and "invalid frame" in (close.error or ""), close


def test_invalid_utf8_is_passed_through_and_the_client_refuses_it(tmp_path: Path):
    """The proxy does not validate text (it forwards frames as they are); the client does,
    and its close 1007 goes back upstream. The trace holds the exact bytes."""
    bad = b"\xff\xfe not utf-8"

    def behaviour(sock: socket.socket) -> None:
        wait_for_client_message(sock)
        sock.sendall(frame(1, bad))
        sock.settimeout(5)
        while sock.recv(1024):
            pass

    trace = tmp_path / "t.trace"
    with raw_upstream(behaviour) as up, proxy_to(up, trace) as port:
        with connect(f"ws://127.0.0.1:{port}/v1/responses") as ws:
            ws.send('{"type":"response.create"}')
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
        assert info.value.sent is not None and info.value.sent.code == 1007
    recs = records(trace)
    assert bad in [r.payload for r in recs if type(r) is Frame]
    (close,) = [r for r in recs if type(r) is Close]
    assert (close.code, close.by) == (1007, "client"), close


def test_upstream_refusing_the_connection(tmp_path: Path):
    port_nobody = free_port()  # nothing listens there
    trace = tmp_path / "t.trace"
    with proxy_to(port_nobody, trace) as port:
        with pytest.raises(Exception) as info:
            connect(f"ws://127.0.0.1:{port}/v1/responses", open_timeout=10)
        assert "502" in str(info.value)
    (close,) = [r for r in records(trace) if type(r) is Close]
    assert close.error and "refused" in close.error.lower(), close


def test_client_dropping_mid_frame(tmp_path: Path):
    trace = tmp_path / "t.trace"
    with running_upstream() as up, proxy_to(up.port, trace) as port:
        wait_for_port(port)
        sock = socket.create_connection(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            f"GET /v1/responses HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        assert b" 101 " in read_head(sock)
        whole = frame(1, json.dumps({"type": "response.create", "input": "x" * 4000}).encode(),
                      mask=True)  # fmt: skip
        sock.sendall(whole[:2000])
        sock.close()  # in the middle of the frame
        proxy_still_serves(port)
    recs = records(trace)
    closes = [r for r in recs if type(r) is Close]
    assert closes[0].by == "client" and "middle of a frame" in (closes[0].error or ""), closes
    assert not [r for r in recs if type(r) is Frame and r.conn == closes[0].conn]
