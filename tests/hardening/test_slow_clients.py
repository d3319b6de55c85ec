"""Slow and idle clients cannot starve a local server: a request head must arrive within a
timeout (408 past it), and when too many connections wait for theirs, the one that waited
longest is dropped, so a new client is still served at once."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from websockets.sync.client import connect

from tests.hardening.test_browser_isolation import serving
from tracer.capture.proxy import RecordingProxy
from tracer.capture.recorder import Recorder
from tracer.upstream.server import UpstreamServer


def _probe(port: int) -> float:
    """Seconds for a fresh client to connect and get its first event."""
    t0 = time.perf_counter()
    with connect(f"ws://127.0.0.1:{port}/v1/responses", open_timeout=5) as ws:
        ws.send(json.dumps({"type": "response.create", "input": "probe"}))
        json.loads(ws.recv(timeout=5))
    return time.perf_counter() - t0


def test_a_slowloris_flood_does_not_keep_a_new_client_out(tmp_path: Path):
    with serving(UpstreamServer()) as upstream:
        recorder = Recorder(tmp_path / "p.trace")
        proxy = RecordingProxy(f"ws://127.0.0.1:{upstream.port}", recorder)
        with serving(proxy):
            slow = []
            try:
                for _ in range(proxy.max_waiting + 50):  # more than may wait at once
                    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
                    s.sendall(b"GET /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never ends
                    slow.append(s)
                time.sleep(0.2)
                baseline = min(_probe(upstream.port) for _ in range(3))  # direct, no proxy
                through = min(_probe(proxy.port) for _ in range(3))
                # The oldest slow connections were dropped to make room.
                dropped = 0
                for s in slow[:50]:
                    s.settimeout(2)
                    try:
                        dropped += s.recv(1) == b""
                    except (ConnectionError, TimeoutError):
                        dropped += 1
            finally:
                for s in slow:
                    s.close()
        recorder.close()
    assert through < 0.1 + baseline, (through, baseline)
    assert dropped == 50


def test_a_request_head_that_never_ends_gets_a_408():
    server = UpstreamServer()
    server.head_timeout = 0.5
    with serving(server), socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        t0 = time.perf_counter()
        answer = s.recv(1024)
        waited = time.perf_counter() - t0
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert 0.3 < waited < 3


def test_a_flood_past_the_file_descriptor_limit_leaves_room_for_a_new_client():
    """The issue's reproduction, scaled: a server allowed 400 open files, 450 half-open
    upgrade requests. Without the waiting limit every descriptor stays taken and the probe
    is never accepted; with it, the probe is served at once and no traceback is printed."""
    import resource
    import subprocess
    import sys

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (400, 400))

    proc = subprocess.Popen(
        [sys.executable, "-m", "tracer", "upstream", "--listen", "127.0.0.1:0", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=limit,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        port = int(json.loads(proc.stdout.readline())["base_url"].split(":")[2].split("/")[0])
        slow = []
        for _ in range(450):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            slow.append(s)
        time.sleep(0.5)
        assert _probe(port) < 1.0
        for s in slow:
            s.close()
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    assert "Traceback" not in stderr, stderr[-2000:]
