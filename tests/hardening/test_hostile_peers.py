"""Hostile clients of tracer's servers (the scripted upstream and the replay server): huge
frames, absurdly nested JSON and floods get limits, not an exhausted machine."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.conftest import ROOT
from tests.hardening.helpers import free_port, peak_rss_mb, rss_mb, wait_for_port

MAX_FRAME = 1024 * 1024


def serve(*args: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracer", *args, "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port)
        yield proc, port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def upstream() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    yield from serve("upstream", "--max-frame", str(MAX_FRAME), "--max-pending", "8")


@pytest.fixture
def replay() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    trace = ROOT / "traces" / "incremental.trace"
    yield from serve("replay", str(trace), "--max-frame", str(MAX_FRAME), "--max-queue", "16")


def ws(port: int) -> ClientConnection:
    return connect(f"ws://127.0.0.1:{port}/v1/responses", max_size=None, close_timeout=2)


def one_turn(conn: ClientConnection, text: str = "hello") -> dict:
    conn.send(json.dumps({"type": "response.create", "model": "m", "input": text}))
    while True:
        event = json.loads(conn.recv(timeout=30))
        if event["type"] in ("response.completed", "error"):
            return event


@pytest.mark.parametrize("server", ["upstream", "replay"])
def test_a_frame_over_the_limit_closes_with_1009_and_others_are_served(server, request):
    proc, port = request.getfixturevalue(server)
    with ws(port) as conn:
        conn.send(b"x" * (MAX_FRAME + 1))
        with pytest.raises(ConnectionClosed) as info:
            conn.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    if server == "upstream":
        with ws(port) as conn:
            assert one_turn(conn)["type"] == "response.completed"
    assert proc.poll() is None


def test_nested_json_gets_an_error_event_and_the_connection_lives(upstream):
    _, port = upstream
    depth = 200_000
    with ws(port) as conn:
        conn.send("[" * depth + "]" * depth)
        event = json.loads(conn.recv(timeout=10))
        assert event["type"] == "error" and event["error"]["code"] == "invalid_json"
        conn.send('{"type": "response.create", "input": ' + "[" * depth + "]" * depth + "}")
        assert json.loads(conn.recv(timeout=10))["error"]["code"] == "invalid_json"
        assert one_turn(conn)["type"] == "response.completed"


def test_a_flood_of_creates_is_refused_past_the_queue_limit(upstream):
    proc, port = upstream
    before = rss_mb(proc.pid)
    sent = 3000
    answers: dict[str, int] = {}
    with ws(port) as conn:

        def read() -> None:
            for _ in range(sent):
                event = json.loads(conn.recv(timeout=60))
                while event["type"] not in ("response.completed", "error"):
                    event = json.loads(conn.recv(timeout=60))
                code = event["type"] if event["type"] != "error" else event["error"]["code"]
                answers[code] = answers.get(code, 0) + 1

        reader = threading.Thread(target=read)
        reader.start()
        body = json.dumps({"type": "response.create", "input": "x" * 2000})
        for _ in range(sent):
            conn.send(body)
        reader.join(120)
    assert sum(answers.values()) == sent, answers  # every create was answered
    assert answers.get("too_many_pending_responses", 0) > sent / 2, answers
    assert answers.get("response.completed", 0) >= 8, answers
    growth = peak_rss_mb(proc.pid) - before
    print(f"upstream flood: {answers}, peak RSS growth {growth:.1f} MB")
    assert growth < 100, growth


def test_a_flood_of_messages_to_replay_pauses_reading_instead_of_queueing(replay):
    proc, port = replay
    before = rss_mb(proc.pid)
    chunk = "y" * 10_000
    offered = 20_000  # 200 MB, if the server took it all in
    sent = [0]
    stop = threading.Event()
    # Uncompressed: deflated, a flood of one repeated letter inflates over 100:1 and is
    # closed with 1009 early (the deflate-bomb test below); this one is about reading.
    conn = connect(f"ws://127.0.0.1:{port}/v1/responses", max_size=None, close_timeout=2,
                   compression=None)  # fmt: skip

    def flood() -> None:
        try:
            for _ in range(offered):
                if stop.is_set():
                    return
                conn.send(json.dumps({"type": "response.create", "input": chunk}))
                sent[0] += 1
        except (ConnectionClosed, OSError):
            pass

    sender = threading.Thread(target=flood, daemon=True)
    sender.start()
    time.sleep(4)
    growth = peak_rss_mb(proc.pid) - before
    stop.set()
    # Shut the socket down under the sender blocked in send (close_socket waits for the
    # sender's lock in websockets 17).
    conn.socket.shutdown(socket.SHUT_RDWR)
    sender.join(10)
    print(f"replay flood: {sent[0]} of {offered} messages taken in 4 s, RSS growth {growth:.1f} MB")
    assert sent[0] > 1000, sent  # a real flood reached the server
    assert growth < 60, growth  # far less than the 10 kB x messages it took in
    assert proc.poll() is None
    with ws(port) as other:  # and it still serves
        other.send(json.dumps({"type": "response.create", "input": "x"}))
        assert other.recv(timeout=10)


@pytest.fixture
def recording(upstream, tmp_path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    _, up_port = upstream
    yield from serve(
        "record", "--upstream", f"ws://127.0.0.1:{up_port}", "-o", str(tmp_path / "r.trace")
    )


def _bomb() -> bytes:
    """60 MiB of one repeated byte: permessage-deflate sends it in about 61 KB."""
    return b"\x00" * (60 * 1024 * 1024)


@pytest.mark.parametrize("server", ["recording", "replay", "upstream"])
def test_a_deflate_bomb_is_closed_with_1009_within_bounded_memory(server, request):
    """Messages that inflate a thousandfold (issue #26: 12 of 61 KB took the recorder to
    1.05 GB) are cut at the ratio cap: the connection gets 1009 and the server's memory
    stays far below one bomb's size; another client is served meanwhile."""
    proc, port = request.getfixturevalue(server)
    before = rss_mb(proc.pid)
    conn = connect(f"ws://127.0.0.1:{port}/v1/responses", max_size=None, close_timeout=2,
                   compression="deflate")  # fmt: skip
    with conn, pytest.raises(ConnectionClosed) as info:
        for _ in range(12):
            conn.send(_bomb())
        conn.recv(timeout=20)
    assert info.value.rcvd is not None, info.value
    assert info.value.rcvd.code == 1009, info.value.rcvd
    assert peak_rss_mb(proc.pid) - before < 40, (before, peak_rss_mb(proc.pid))
    if server != "replay":
        with ws(port) as other:
            assert one_turn(other)["type"] == "response.completed"
    assert proc.poll() is None


@pytest.mark.parametrize("server", ["recording", "upstream"])
def test_a_ping_flood_is_closed_with_1008_and_others_are_served(server, request):
    proc, port = request.getfixturevalue(server)
    with ws(port) as flooder, ws(port) as other:
        with pytest.raises(ConnectionClosed) as info:
            for _ in range(5000):
                flooder.ping()
            flooder.recv(timeout=20)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1008
        assert one_turn(other)["type"] == "response.completed"
    assert proc.poll() is None
