"""The recording proxy's limits toward slow bodies, silent upstreams and floods: a request
body that stalls gets 408, a body is streamed to the upstream (not buffered whole), a silent
HTTP upstream gets the client a 502 with the reason, and past the connection cap a new
connection gets 503; meanwhile a probe client is still served within 100 ms."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tests.hardening.helpers import rss_mb
from tests.hardening.test_browser_isolation import serving
from tests.hardening.test_load import recorder_process
from tests.hardening.test_slow_clients import _probe
from tracer import read_trace
from tracer.capture.proxy import RecordingProxy
from tracer.capture.recorder import Recorder
from tracer.trace.records import Close, Open
from tracer.upstream.server import UpstreamServer


@contextlib.contextmanager
def silent_upstream() -> Iterator[tuple[int, list[int]]]:
    """A TCP server that reads whatever it is sent (counting the bytes) and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    received = [0]
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        conns = []
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                c, _ = server.accept()
                c.setblocking(False)
                conns.append(c)
            for c in conns:
                with contextlib.suppress(BlockingIOError, OSError):
                    while data := c.recv(1 << 20):
                        received[0] += len(data)
        for c in conns:
            c.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], received
    finally:
        stop.set()
        thread.join(5)
        server.close()


def _answer(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            break
        data += more
    return data


def test_a_stalled_request_body_gets_408_and_a_probe_is_still_served(tmp_path: Path):
    with serving(UpstreamServer()) as upstream:
        recorder = Recorder(tmp_path / "t.trace")
        proxy = RecordingProxy(f"ws://127.0.0.1:{upstream.port}", recorder)
        proxy.http.body_timeout = 0.5
        with serving(proxy):
            stalled = []
            for _ in range(20):
                s = socket.create_connection(("127.0.0.1", proxy.port))
                s.sendall(b"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Content-Length: 1000\r\n\r\n{\"input\": ")  # fmt: skip
                stalled.append(s)
            probe = min(_probe(proxy.port) for _ in range(3))
            baseline = min(_probe(upstream.port) for _ in range(3))
            t0 = time.perf_counter()
            answers = [_answer(s) for s in stalled]
            waited = time.perf_counter() - t0
            for s in stalled:
                s.close()
        recorder.close()
    assert probe < 0.1 + baseline, (probe, baseline)
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers[0]
    assert b"stalled" in answers[0] and waited < 5
    failed = [r for r in read_trace(tmp_path / "t.trace") if isinstance(r, Close) and r.error]
    assert len(failed) == 20 and "stalled" in (failed[0].error or "")


def test_a_request_body_is_streamed_to_the_upstream_not_buffered():
    """A 64 MiB upload that is still being sent: most of what the client sent has already
    reached the upstream (the proxy holds no whole body; it records only /responses)."""
    with silent_upstream() as (port, received):
        proxy = RecordingProxy(f"ws://127.0.0.1:{port}", None)
        with serving(proxy):
            s = socket.create_connection(("127.0.0.1", proxy.port))
            s.sendall(b"POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Length: %d\r\n\r\n" % (64 << 20))  # fmt: skip
            sent = 0
            for _ in range(32):
                s.sendall(b"x" * (1 << 20))
                sent += 1 << 20
            deadline = time.monotonic() + 10
            while received[0] < sent - (4 << 20) and time.monotonic() < deadline:
                time.sleep(0.05)
            arrived = received[0]
            s.close()
    assert arrived >= sent - (4 << 20), (arrived, sent)  # at most socket buffers in between


def test_a_silent_http_upstream_gets_the_client_a_502_with_the_reason(tmp_path: Path):
    with silent_upstream() as (port, _):
        recorder = Recorder(tmp_path / "t.trace")
        proxy = RecordingProxy(f"ws://127.0.0.1:{port}", recorder, upstream_timeout=0.5)
        with serving(proxy):
            s = socket.create_connection(("127.0.0.1", proxy.port))
            body = b'{"input": "hi"}'
            s.sendall(b"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
            t0 = time.perf_counter()
            s.settimeout(10)
            answer = b""
            while more := s.recv(65536):
                answer += more
            waited = time.perf_counter() - t0
            s.close()
        recorder.close()
    assert answer.startswith(b"HTTP/1.1 502") and b"no answer within 0.5 s" in answer, answer
    assert 0.4 < waited < 5
    records = list(read_trace(tmp_path / "t.trace"))
    (opened,) = [r for r in records if isinstance(r, Open)]
    (closed,) = [r for r in records if isinstance(r, Close)]
    assert opened.status == 502 and "no answer" in (closed.error or "")


def test_past_the_connection_cap_a_new_connection_gets_503(tmp_path: Path):
    with serving(UpstreamServer()) as upstream:
        proxy = RecordingProxy(f"ws://127.0.0.1:{upstream.port}", None)
        proxy.max_connections = 4
        with serving(proxy):
            held = [socket.create_connection(("127.0.0.1", proxy.port)) for _ in range(4)]
            time.sleep(0.2)
            extra = socket.create_connection(("127.0.0.1", proxy.port))
            extra.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            refused = _answer(extra)
            extra.close()
            held.pop().close()
            time.sleep(0.2)
            served = _probe(proxy.port)
            for s in held:
                s.close()
    assert refused.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in refused, refused
    assert served < 5


def test_unfinished_large_bodies_cost_bounded_memory_and_a_probe_is_served(tmp_path: Path):
    """Eight unfinished 64 MiB request bodies (the review's +525 MB) against `tracer record`
    in its own process: the proxy holds at most its 256 MiB body budget (a request past it
    gets 503), and a probe gets the proxy's own answer within 100 ms of a direct server's."""
    with serving(UpstreamServer()) as upstream, silent_upstream() as (silent, _):
        out = tmp_path / "big.trace"
        with recorder_process(silent, out) as (proc, port):
            before = rss_mb(proc.pid)
            clients, answers = [], []
            for _ in range(8):
                s = socket.create_connection(("127.0.0.1", port))
                s.sendall(b"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Content-Length: %d\r\n\r\n" % (64 << 20))  # fmt: skip
                s.settimeout(0.2)
                for _ in range(48):  # 48 of the 64 MiB, then nothing more
                    try:
                        s.sendall(b"x" * (1 << 20))
                    except (TimeoutError, ConnectionError):
                        break  # refused (503) and closed, or the kernel's buffers are full
                clients.append(s)
            time.sleep(0.5)
            grown = rss_mb(proc.pid) - before
            proxied = _probe_http(port)
            direct = _probe_http(upstream.port)
            for s in clients:
                answers.append(_peek(s))
                s.close()
    print(f"8 unfinished bodies: +{grown:.0f} MB; probe {proxied * 1e3:.1f} ms "
          f"(direct {direct * 1e3:.1f} ms)")  # fmt: skip
    assert grown < 256 + 64, grown
    assert any(a.startswith(b"HTTP/1.1 503") for a in answers), answers
    assert proxied < 0.1 + direct, (proxied, direct)


def _probe_http(port: int) -> float:
    """Seconds for a fresh client to get the server's own answer (a foreign Host: 403)."""
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /v1/models HTTP/1.1\r\nHost: probe.example\r\n\r\n")
        _answer(s)
    return time.perf_counter() - t0


def _peek(s: socket.socket) -> bytes:
    s.settimeout(0.5)
    try:
        return s.recv(200)
    except (TimeoutError, ConnectionError):
        return b""
