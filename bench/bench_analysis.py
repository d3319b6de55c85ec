"""Analysis throughput and memory: `tracer inspect --json` on a large generated trace.

Run: python bench/bench_analysis.py [--mb 1000]

Writes a trace of back-to-back full-resend agent sessions (the generated session of
bench/session.py, one connection each) until it holds about --mb megabytes of raw payload,
then runs `tracer inspect --json` on it in a subprocess and reports wall time, MB/s of raw
payload, turns/s and the subprocess's peak memory (max RSS). It also times stdlib json
against orjson on the same payloads, side by side.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from session import session_frames

from tracer.trace import Close, Frame, Open, create_trace


def write_trace(path: Path, target_mb: float) -> tuple[int, int]:
    """Returns (raw payload bytes, turns)."""
    one = list(session_frames(full_resend=True))
    per_session = sum(len(f.payload) for f in one)
    sessions = max(1, int(target_mb * 1e6 / per_session))
    raw = 0
    with create_trace(path, flush_interval=None) as w:
        t = 0
        for s in range(sessions):
            conn = s + 1
            w.write(Open(conn=conn, t_ns=t, url="/v1/responses"))
            for f in one:
                w.write(Frame(conn, t + f.t_ns, f.direction, f.opcode, f.payload, True))
                raw += len(f.payload)
            t += one[-1].t_ns + 1_000_000
            w.write(Close(conn=conn, t_ns=t, code=1000, by="client"))
    return raw, sessions * 40


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=float, default=1000.0, help="raw payload size to generate")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tracer-bench-") as tmp:
        path = Path(tmp) / "big.trace"
        t0 = time.perf_counter()
        raw, turns = write_trace(path, args.mb)
        print(
            f"generated {raw / 1e6:,.0f} MB raw payload, {turns:,} turns, "
            f"trace {path.stat().st_size / 1e6:,.1f} MB in {time.perf_counter() - t0:.1f}s"
        )
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "tracer", "inspect", "--json", str(path)],
            stdout=subprocess.PIPE,
            check=True,
        )
        elapsed = time.perf_counter() - t0
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        report = json.loads(proc.stdout)
        assert report["summary"]["turns"] == turns
        print(
            f"tracer inspect --json: {elapsed:.1f}s, {raw / 1e6 / elapsed:,.0f} MB/s raw payload, "
            f"{turns / elapsed:,.0f} turns/s, peak RSS {max(peak_kb, before) / 1024:,.0f} MB "
            "(targets for 1 GB: < 15 s, < 200 MB)"
        )
    frames = list(session_frames(full_resend=True))
    payloads = [f.payload for f in frames]
    size = sum(map(len, payloads)) / 1e6
    for name, loads in [("json", json.loads), ("orjson", __import__("orjson").loads)]:
        t0 = time.perf_counter()
        for p in payloads:
            loads(p)
        print(f"{name:7} parses these payloads at {size / (time.perf_counter() - t0):,.0f} MB/s")


if __name__ == "__main__":
    main()
