"""Replay fidelity and speed: `tracer replay` at --speed 1 and --speed 0, in one run.

Run: python bench/bench_replay.py [--turns 3] [--deltas 400]

Generates a session (bench/session.py: one create, then hundreds of small deltas a turn,
about 20 ms apart with jitter), serves it with `tracer replay` in its own process, and
plays the client side against it: at --speed 1 it measures |observed gap - recorded gap|
between consecutive server frames (p50, p99; target p99 < 2 ms), at --speed 0 the frames
per second a client receives.
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


if __name__ == "__main__":
    main()
