"""Analysis throughput and memory: `tracer inspect --json` on a large generated trace.

Run: python bench/bench_analysis.py [--mb 1000] [--baseline DIR]

Writes a trace of back-to-back full-resend agent sessions (the generated session of
bench/session.py, one connection each) until it holds about --mb megabytes of raw payload,
then runs `tracer inspect --json` on it in a subprocess and reports wall time, MB/s of raw
payload, turns/s and the subprocess's peak memory (max RSS). It also times stdlib json
against orjson on the same payloads, side by side.

With ``--baseline DIR`` (another checkout of tracer, e.g. ``git worktree add /tmp/base
HEAD~5``), it runs that tracer's ``inspect --json`` on the same trace too, alternating the
two three times, and prints the median times and memory and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
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


_MEASURE = """
import resource, subprocess, sys, time
t0 = time.perf_counter()
out = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, check=True).stdout
print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, len(out))
"""


def _measure(path: Path, pythonpath: str | None) -> tuple[float, float]:
    """One ``tracer inspect --json`` run in its own process: seconds and peak RSS (MB)."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    cmd = [sys.executable, "-m", "tracer", "inspect", "--json", str(path)]
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, *cmd], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), int(out[1]) / 1024


def compare(path: Path, baseline: str) -> None:
    """This tracer against the one in ``baseline``, alternated on the same trace."""
    runs: dict[str, list[tuple[float, float]]] = {"this": [], "baseline": []}
    for _ in range(3):
        runs["this"].append(_measure(path, None))
        runs["baseline"].append(_measure(path, baseline))
    med = {k: (statistics.median(t for t, _ in v), statistics.median(m for _, m in v))
           for k, v in runs.items()}  # fmt: skip
    for name, (t, m) in med.items():
        print(f"{name:8} inspect --json: median {t:.2f}s, peak RSS {m:,.0f} MB")
    (t1, m1), (t0, m0) = med["this"], med["baseline"]
    print(f"ratio this/baseline: time {t1 / t0:.3f}x, memory {m1 / m0:.3f}x (target: <= 1.10x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=float, default=1000.0, help="raw payload size to generate")
    ap.add_argument("--baseline", help="another tracer checkout to compare with, side by side")
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
        if args.baseline:
            compare(path, str(Path(args.baseline).resolve()))
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
