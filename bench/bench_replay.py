"""Replay fidelity and speed: `tracer replay` at --speed 1 and --speed 0, over WebSocket and
over HTTP (server-sent events), in one run.

Run: python bench/bench_replay.py [--turns 3] [--deltas 400]

Generates a session (bench/session.py: one create, then hundreds of small deltas a turn,
about 20 ms apart with jitter), once as one WebSocket connection and once as one HTTP
request a turn, serves each with `tracer replay` in its own process, and plays the client
side against it: at --speed 1 it measures |observed gap - recorded gap| between
consecutive server events (p50, p99; target p99 < 2 ms for both), at --speed 0 the frames
per second a WebSocket client receives and the requests per second an HTTP client gets
answered (short answers, one connection each, as an SDK without keep-alive would).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from session import session_frames

from tracer.trace import Close, Direction, Open, create_trace


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def serve(trace: Path, speed: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracer", "replay", str(trace), "--listen", f"127.0.0.1:{port}",
         "--speed", speed, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    return proc, info["base_url"].replace("http://", "ws://") + "/responses"


def play(url: str, frames: list, gaps: bool) -> tuple[list[float], float, int]:
    """Send the recorded creates; return the gap errors (ms), elapsed seconds, frames got."""
    from websockets.sync.client import connect

    errors: list[float] = []
    received = 0
    start = time.perf_counter()
    with connect(url, compression=None, max_size=None) as ws:
        i = 0
        while i < len(frames):
            create = frames[i]
            answers = []
            i += 1
            while i < len(frames) and frames[i].direction is Direction.SERVER:
                answers.append(frames[i])
                i += 1
            ws.send(create.payload.decode())
            last_seen = None
            for k, want in enumerate(answers):
                ws.recv()
                now = time.perf_counter()
                received += 1
                if gaps and last_seen is not None:
                    recorded_gap = (want.t_ns - answers[k - 1].t_ns) / 1e9
                    errors.append(abs((now - last_seen) - recorded_gap) * 1000)
                last_seen = now
    return errors, time.perf_counter() - start, received


def http_trace(path: Path, frames: list) -> None:
    """The session as HTTP: one connection a turn, its create body, then its events."""
    with create_trace(path, flush_interval=None) as w:
        conn, i = 0, 0
        while i < len(frames):
            conn += 1
            create = frames[i]
            body = json.loads(create.payload)
            body.pop("type", None)
            body.pop("previous_response_id", None)  # each request stands alone here
            body["stream"] = True
            w.write(Open(conn=conn, t_ns=create.t_ns, url="/v1/responses", transport="http",
                         status=200,
                         response_headers=[("Content-Type", "text/event-stream")]))  # fmt: skip
            w.write(create._replace(conn=conn, payload=json.dumps(body).encode()))
            i += 1
            last = create.t_ns
            while i < len(frames) and frames[i].direction is Direction.SERVER:
                w.write(frames[i]._replace(conn=conn))
                last = frames[i].t_ns
                i += 1
            w.write(Close(conn=conn, t_ns=last + 1, by="server"))


def play_http(base: str, frames: list, gaps: bool) -> tuple[list[float], float, int]:
    """POST each recorded create; return the event gap errors (ms), elapsed s, requests."""
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(base)
    errors: list[float] = []
    requests = 0
    start = time.perf_counter()
    i = 0
    while i < len(frames):
        body = json.loads(frames[i].payload)
        body.pop("type", None)
        body.pop("previous_response_id", None)
        body["stream"] = True
        i += 1
        answers = []
        while i < len(frames) and frames[i].direction is Direction.SERVER:
            answers.append(frames[i])
            i += 1
        conn = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
        conn.request(
            "POST", "/v1/responses", json.dumps(body), {"Content-Type": "application/json"}
        )
        resp = conn.getresponse()
        last_seen, k = None, 0
        while line := resp.readline():
            if line != b"\n":
                continue
            now = time.perf_counter()  # a blank line ends an event
            if gaps and last_seen is not None and k < len(answers):
                recorded_gap = (answers[k].t_ns - answers[k - 1].t_ns) / 1e9
                errors.append(abs((now - last_seen) - recorded_gap) * 1000)
            last_seen, k = now, k + 1
        conn.close()
        requests += 1
    return errors, time.perf_counter() - start, requests


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--turns", type=int, default=3)
    ap.add_argument("--deltas", type=int, default=400)
    args = ap.parse_args()
    frames = list(session_frames(turns=args.turns, deltas=args.deltas, full_resend=False))
    with tempfile.TemporaryDirectory(prefix="tracer-bench-") as tmp:
        trace = Path(tmp) / "session.trace"
        with create_trace(trace, flush_interval=None) as w:
            w.write(Open(conn=1, t_ns=0, url="/v1/responses"))
            for f in frames:
                w.write(f)
            w.write(Close(conn=1, t_ns=frames[-1].t_ns + 1, code=1000, by="client"))
        proc, url = serve(trace, "1")
        try:
            errors, elapsed, got = play(url, frames, gaps=True)
        finally:
            proc.terminate()
            proc.wait()
        print(
            f"--speed 1: {got} frames in {elapsed:.1f}s; |observed gap - recorded gap| "
            f"p50 {pct(errors, 50):.3f} ms, p99 {pct(errors, 99):.3f} ms (target p99 < 2 ms)"
        )
        proc, url = serve(trace, "0")
        try:
            play(url, frames, gaps=False)  # warm up
            _, elapsed, got = play(url, frames, gaps=False)
        finally:
            proc.terminate()
            proc.wait()
        print(f"--speed 0: {got} frames in {elapsed:.2f}s, {got / elapsed:,.0f} frames/s")

        http = Path(tmp) / "http.trace"
        http_trace(http, frames)
        proc, url = serve(http, "1")
        base = url.replace("ws://", "http://").removesuffix("/v1/responses")
        try:
            errors, elapsed, got = play_http(base, frames, gaps=True)
        finally:
            proc.terminate()
            proc.wait()
        print(
            f"HTTP --speed 1: {got} requests in {elapsed:.1f}s; |observed gap - recorded gap| "
            f"p50 {pct(errors, 50):.3f} ms, p99 {pct(errors, 99):.3f} ms (target p99 < 2 ms)"
        )
        short = list(session_frames(turns=50, deltas=3, full_resend=False))
        quick = Path(tmp) / "quick.trace"
        http_trace(quick, short)
        proc, url = serve(quick, "0")
        base = url.replace("ws://", "http://").removesuffix("/v1/responses")
        try:
            play_http(base, short, gaps=False)  # warm up
            _, elapsed, got = play_http(base, short * 4, gaps=False)
        finally:
            proc.terminate()
            proc.wait()
        print(f"HTTP --speed 0: {got} requests in {elapsed:.2f}s, {got / elapsed:,.0f} requests/s")


if __name__ == "__main__":
    main()
