"""Load through `tracer record`: 200 concurrent connections of 2,000 frames each, with client
messages of mixed sizes up to 1 MB, against the scripted upstream (a separate process).
Every frame arrives and is recorded exactly once, in order per connection; the recorder's
peak memory is measured and bounded. And one client that stops reading does not slow the
others down, nor grow the recorder's memory."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import random
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.hardening.helpers import free_port, peak_rss_mb, rss_mb, wait_for_port
from tracer.trace import Direction, Frame, Open, open_trace

CONNECTIONS = 200
TURNS = 100  # x (1 create + 19 events) = 2,000 frames per connection
WORDS = 16  # -> 19 server events per turn
FAST = {"ttfe_ms": 0, "ttft_ms": 0, "tokens_per_s": 1_000_000, "jitter": 0}
RECORDER_RSS_BOUND_MB = 768
LONG_WORDS = 400_000  # the staller's answer: words of 1 kB, about 500 MB of events


def digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=8).digest()


def size_for(rng: random.Random) -> int:
    """Mostly small, some large, a few up to 1 MB."""
    r = rng.random()
    if r < 0.80:
        return rng.randint(100, 2_000)
    if r < 0.95:
        return rng.randint(2_000, 64_000)
    if r < 0.99:
        return rng.randint(64_000, 256_000)
    return rng.randint(256_000, 1_000_000)


@contextmanager
def upstream_process(script: dict, tmp: Path) -> Iterator[tuple[subprocess.Popen, int]]:
    path = tmp / "script.json"
    path.write_text(json.dumps(script))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracer", "upstream", "--script", str(path), "--port", str(port),
         "--max-frame", str(2 << 20), "--json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port)
        yield proc, port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def until_idle(pid: int, timeout: float = 120.0) -> None:
    """Until a process stops using the CPU (less than 5% over half a second)."""
    deadline = time.monotonic() + timeout
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = cpu_seconds(pid)
        if now - last < 0.025:
            return
        last = now
    raise AssertionError("the process never went idle")


@contextmanager
def recorder_process(upstream_port: int, out: Path) -> Iterator[tuple[subprocess.Popen, int]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracer", "record", "--upstream",
         f"ws://127.0.0.1:{upstream_port}", "-o", str(out), "--listen", f"127.0.0.1:{port}",
         "--no-compact", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for_port(port)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


async def one_connection(port: int, index: int, seen: dict) -> None:
    rng = random.Random(index)
    sent: list[bytes] = []
    received: list[bytes] = []
    url = f"ws://127.0.0.1:{port}/v1/responses?c={index}"
    async with connect(url, max_size=None, compression=None) as ws:
        for k in range(TURNS):
            filler = rng.randbytes(size_for(rng) // 2).hex()
            body = json.dumps({"type": "response.create", "input": f"{index}/{k} {filler}"})
            await ws.send(body)
            sent.append(digest(body.encode()))
            while True:
                message = await ws.recv()
                raw = message.encode() if isinstance(message, str) else message
                received.append(digest(raw))
                if b'"response.completed"' in raw[:64]:
                    break
    seen[index] = (sent, received)


@pytest.mark.slow
def test_200_connections_of_2000_frames_are_all_recorded_in_order(tmp_path: Path):
    script = {"turns": [" ".join(f"w{i}" for i in range(WORDS))], "timing": FAST}
    out = tmp_path / "load.trace"
    seen: dict[int, tuple[list[bytes], list[bytes]]] = {}
    with (
        upstream_process(script, tmp_path) as (_, up),
        recorder_process(up, out) as (proc, port),
    ):
        start = time.monotonic()
        peak = [0.0]

        async def main() -> None:
            async def watch_memory() -> None:
                while True:
                    peak[0] = max(peak[0], rss_mb(proc.pid))
                    await asyncio.sleep(0.2)

            watcher = asyncio.create_task(watch_memory())
            await asyncio.gather(*(one_connection(port, i, seen) for i in range(CONNECTIONS)))
            watcher.cancel()

        asyncio.run(main())
        elapsed = time.monotonic() - start
        hwm = peak_rss_mb(proc.pid)
        proc.terminate()
        stdout, stderr = proc.communicate(timeout=300)
    summary = json.loads(stdout)
    frames_sent = sum(len(s) + len(r) for s, r in seen.values())
    payload = out.stat().st_size
    print(
        f"\n{CONNECTIONS} connections, {frames_sent:,} frames in {elapsed:.1f} s "
        f"({frames_sent / elapsed:,.0f} frames/s), {summary['bytes'] / 1e6:,.0f} MB of payload; "
        f"recorder peak RSS {hwm:.0f} MB; trace {payload / 1e6:.1f} MB"
    )
    assert len(seen) == CONNECTIONS
    assert summary["dropped_frames"] == 0 and summary["write_error"] is None, summary
    assert summary["trace_ok"], stderr
    # The trace, per connection and direction, is exactly what the client sent and received.
    conn_of: dict[int, int] = {}
    recorded: dict[int, tuple[list[bytes], list[bytes]]] = {}
    with open_trace(out) as reader:
        for r in reader:
            if type(r) is Frame:
                if r.opcode.label != "text":
                    continue
                sent, received = recorded.setdefault(conn_of[r.conn], ([], []))
                (sent if r.direction is Direction.CLIENT else received).append(digest(r.payload))
            elif type(r) is Open:
                conn_of[r.conn] = int(r.url.rsplit("c=", 1)[1])
    for index, (sent, received) in seen.items():
        assert len(sent) == TURNS and len(received) >= TURNS * (WORDS + 3)
        assert recorded[index][0] == sent, f"connection {index}: client frames differ"
        assert recorded[index][1] == received, f"connection {index}: server frames differ"
        assert len(sent) + len(received) >= 2000
    assert hwm < RECORDER_RSS_BOUND_MB, hwm


def stalled_client(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /v1/responses?staller=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert b" 101 " in head
    context = [{"role": "user", "content": "go"}, {"role": "assistant", "content": "ok"},
               {"role": "user", "content": "now the long one"}]  # fmt: skip
    body = json.dumps({"type": "response.create", "input": context}).encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(body))
    sock.sendall(bytes([0x81, 0x80 | 126]) + struct.pack(">H", len(body)) + mask + masked)
    return sock


async def timed_turns(port: int, n: int, label: str) -> list[float]:
    times = []
    async with connect(f"ws://127.0.0.1:{port}/v1/responses?probe={label}") as ws:
        for k in range(n):
            start = time.monotonic()
            await ws.send(json.dumps({"type": "response.create", "input": f"probe {k}"}))
            while b'"response.completed"' not in (await ws.recv()).encode()[:64]:
                pass
            times.append(time.monotonic() - start)
    return times


@pytest.mark.slow
def test_a_client_that_stops_reading_slows_no_one_else(tmp_path: Path):
    # Turn 0 is short (the probes); turn 1, which the staller asks for by sending a context
    # with one earlier answer, would stream about 500 MB.
    long_text = " ".join(f"{i:07d}{'x' * 1000}" for i in range(LONG_WORDS))
    script = {"turns": ["short answer here", long_text], "timing": FAST}
    out = tmp_path / "stall.trace"
    with (
        upstream_process(script, tmp_path) as (upstream, up),
        recorder_process(up, out) as (proc, port),
    ):

        async def probes() -> list[float]:
            runs = await asyncio.gather(*(timed_turns(port, 15, f"p{i}") for i in range(8)))
            return [t for run in runs for t in run]

        async def main() -> tuple[list[float], list[float], float]:
            before = await probes()
            base = rss_mb(proc.pid)
            # A raw client that completes the handshake, asks for the long answer and then
            # never reads again, with a small fixed receive buffer.
            staller = stalled_client(port)
            # The stream backs up through the proxy to the upstream, which then waits.
            await until_idle(upstream.pid)
            during = await probes()
            growth = peak_rss_mb(proc.pid) - base
            staller.close()
            return before, during, growth

        before, during, growth = asyncio.run(main())
        proc.terminate()
        proc.communicate(timeout=120)
    b, d = statistics.median(before), statistics.median(during)
    print(
        f"\nprobe turn median: {b * 1000:.1f} ms before, {d * 1000:.1f} ms while a client "
        f"stalled on a 500 MB answer; recorder RSS growth {growth:.0f} MB"
    )
    assert d < 2 * b + 0.020, (b, d)
    # The staller's answer really was held back (by TCP flow control), not buffered.
    with open_trace(out) as reader:
        records = list(reader)
    (staller,) = [r.conn for r in records if type(r) is Open and "staller" in r.url]
    streamed = sum(1 for r in records if type(r) is Frame and r.conn == staller)
    print(f"the staller's connection carried {streamed:,} of {LONG_WORDS:,} events")
    # What the socket buffers hold (the kernel autotunes the proxy's up to 32 MB), not the
    # whole answer.
    assert streamed < LONG_WORDS / 4
    assert growth < 150, growth
