"""Analysis throughput and memory against the decode floor, on one large generated trace.

Run: python bench/bench_analysis.py [--mb 1000] [--distinct 24] [--baseline DIR]

Writes a trace of back-to-back full-resend agent sessions (the generated session of
bench/session.py, one connection each, ``--distinct`` different seeds in turn, so that the
trace compresses as a real fleet's does rather than as one session repeated) until it holds
about --mb megabytes of raw payload. Then, each in a process of its own, one after the other
on the same file, it runs:

- the decode floor: zstd and msgpack over the whole file, building no objects;
- ``tracer inspect --json``;
- ``tracer diff --json`` of the trace with itself;
- ``tracer export -f parquet``;

and prints each one's wall time, MB/s of raw payload, its ratio to the floor and its peak
memory (max RSS). Targets (issue 32): ``inspect --json`` >= 0.5x of the floor, peak memory
under 200 MB.

With ``--baseline DIR`` (another checkout of tracer, e.g. ``git worktree add /tmp/base
HEAD~5``), it also runs that tracer's ``inspect --json`` on the same trace, alternating the
two three times, and prints the median times and memory and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from session import session_frames

from tracer.trace import Close, Frame, Open, create_trace


def write_trace(path: Path, target_mb: float, distinct: int) -> tuple[int, int]:
    """Returns (raw payload bytes, turns)."""
    raw = turns = 0
    cycle: list[list[Frame]] = []
    with create_trace(path, flush_interval=None) as w:
        t = 0
        conn = 0
        while raw < target_mb * 1e6:
            if len(cycle) < distinct:
                cycle.append(list(session_frames(full_resend=True, seed=len(cycle) + 1)))
            one = cycle[conn % distinct]
            conn += 1
            w.write(Open(conn=conn, t_ns=t, url="/v1/responses"))
            for f in one:
                w.write(Frame(conn, t + f.t_ns, f.direction, f.opcode, f.payload, True))
                raw += len(f.payload)
            t += one[-1].t_ns + 1_000_000
            w.write(Close(conn=conn, t_ns=t, code=1000, by="client"))
            turns += 40
    return raw, turns


# Runs a command line, or the decode floor, in a child; prints seconds, peak RSS (KB) and
# the size of what it printed.
_MEASURE = """
import resource, subprocess, sys, time
t0 = time.perf_counter()
out = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, check=True).stdout
print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, len(out))
sys.stderr.buffer.write(out)
"""

# The floor: zstd and msgpack alone, as fast as the reader's own settings allow.
_FLOOR = """
import sys, msgpack, zstandard as zstd
from tracer.trace.format import MAX_WINDOW_SIZE, PREAMBLE_SIZE
with open(sys.argv[1], "rb") as f:
    f.seek(PREAMBLE_SIZE)
    body = zstd.ZstdDecompressor(max_window_size=MAX_WINDOW_SIZE).stream_reader(f)
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=1 << 28)
    n = 0
    while chunk := body.read(1 << 20):
        unpacker.feed(chunk)
        for _ in unpacker:
            n += 1
print(n)
"""


def measure(
    cmd: list[str], env: dict[str, str] | None = None, cwd: str | None = None
) -> tuple[float, float, bytes]:
    """One command line in its own process: seconds, peak RSS (MB) and what it printed."""
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, *cmd], env=env, cwd=cwd, capture_output=True, check=True
    )
    seconds, rss_kb, _ = proc.stdout.split()
    return float(seconds), int(rss_kb) / 1024, proc.stderr


def tracer(*args: str) -> list[str]:
    return [sys.executable, "-m", "tracer", *args]


def compare(path: Path, baseline: str) -> None:
    """This tracer against the one in ``baseline``, alternated on the same trace."""
    # python -m puts the working directory first on the path: run the baseline from its own.
    env = {**os.environ, "PYTHONPATH": baseline}
    runs: dict[str, list[tuple[float, float]]] = {"this": [], "baseline": []}
    for _ in range(3):
        for name, e, cwd in (("this", None, None), ("baseline", env, baseline)):
            t, m, _ = measure(tracer("inspect", "--json", str(path)), e, cwd)
            runs[name].append((t, m))
    med = {k: (statistics.median(t for t, _ in v), statistics.median(m for _, m in v))
           for k, v in runs.items()}  # fmt: skip
    for name, (t, m) in med.items():
        print(f"{name:8} inspect --json: median {t:.2f}s, peak RSS {m:,.0f} MB")
    (t1, m1), (t0, m0) = med["this"], med["baseline"]
    print(f"ratio this/baseline: time {t1 / t0:.3f}x, memory {m1 / m0:.3f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=float, default=1000.0, help="raw payload size to generate")
    ap.add_argument("--distinct", type=int, default=24, help="different sessions in turn")
    ap.add_argument("--baseline", help="another tracer checkout to compare with, side by side")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tracer-bench-") as tmp:
        path = Path(tmp) / "big.trace"
        t0 = time.perf_counter()
        raw, turns = write_trace(path, args.mb, args.distinct)
        mb = raw / 1e6
        print(
            f"generated {mb:,.0f} MB raw payload, {turns:,} turns, "
            f"trace {path.stat().st_size / 1e6:,.1f} MB in {time.perf_counter() - t0:.1f}s"
        )
        rows = [
            ("decode floor (zstd + msgpack)", [sys.executable, "-c", _FLOOR, str(path)]),
            ("inspect --json", tracer("inspect", "--json", str(path))),
            ("diff --json (itself)", tracer("diff", "--json", str(path), str(path))),
            ("export -f parquet", tracer("export", "-f", "parquet", "-o", f"{tmp}/pq", str(path))),
        ]
        floor = None
        for name, cmd in rows:
            seconds, rss, out = measure(cmd)
            rate = mb / seconds
            floor = floor or rate
            print(
                f"{name:30} {seconds:6.2f}s {rate:7,.0f} MB/s {rate / floor:5.2f}x of the floor, "
                f"peak RSS {rss:5,.0f} MB"
            )
            if name.startswith("inspect"):
                assert json.loads(out)["summary"]["turns"] == turns
                inspect = (rate / floor, rss)
        print(
            f"inspect --json: {inspect[0]:.2f}x of the floor (target >= 0.5x), "
            f"peak RSS {inspect[1]:,.0f} MB (target < 200 MB)"
        )
        if args.baseline:
            compare(path, str(Path(args.baseline).resolve()))


if __name__ == "__main__":
    main()
