"""Fleets: many generated traces exported to Parquet and queried, with one worker and with
one per CPU, side by side in one run.

Run: python bench/bench_fleet.py [--traces 1000] [--mb-each 2]

Writes --traces agent sessions (bench/session.py, incremental and full-resend alternately,
about --mb-each MB of payload each, by a rough size per turn; it prints the real total),
then times
`tracer export -f parquet` and `tracer query` over them with `--jobs 1` and with the default
(one per CPU), and prints traces per second and the speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from session import session_frames

from tracer.trace import Close, Open, create_trace

SQL = "select trace, count(*), sum(resent_bytes), sum(cost_usd) from turns group by trace"


def write_fleet(folder: Path, n: int, mb_each: float) -> int:
    """``n`` traces; their payload bytes in all."""
    total = 0
    for k in range(n):
        full = k % 2 == 0
        # A full-resend turn is about 230 KB of payload, an incremental one about 70 KB.
        turns = max(1, round(mb_each * 1e6 / (230e3 if full else 70e3)))
        with create_trace(folder / f"agent-{k:04d}.trace", flush_interval=None) as w:
            w.write(Open(conn=1, t_ns=0, url="/v1/responses"))
            last = 0
            for f in session_frames(turns=turns, full_resend=full, seed=k):
                w.write(f)
                total += len(f.payload)
                last = f.t_ns
            w.write(Close(conn=1, t_ns=last + 1, code=1000, by="client"))
    return total


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tracer", *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--traces", type=int, default=1000)
    ap.add_argument("--mb-each", type=float, default=2.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tracer-fleet-") as tmp:
        folder = Path(tmp) / "traces"
        folder.mkdir()
        payload = write_fleet(folder, args.traces, args.mb_each)
        results: dict[str, float] = {}
        for jobs in ("1", str(os.cpu_count() or 1)):  # side by side
            out = Path(tmp) / f"pq-{jobs}"
            files = sorted(str(p) for p in folder.glob("*.trace"))
            results[f"export_jobs_{jobs}"] = timed(
                ["export", *files, "-f", "parquet", "-o", str(out), "--jobs", jobs]
            )
            results[f"query_jobs_{jobs}"] = timed(
                ["query", SQL, str(folder), "--json", "--jobs", jobs])  # fmt: skip
    n = args.traces
    rates = {k: n / v for k, v in results.items()}
    cpus = str(os.cpu_count() or 1)
    speedup = {
        "export": results["export_jobs_1"] / results[f"export_jobs_{cpus}"],
        "query": results["query_jobs_1"] / results[f"query_jobs_{cpus}"],
    }
    if args.json:
        print(json.dumps({"traces": n, "payload_mb": payload / 1e6, "seconds": results,
                          "traces_per_s": rates, "speedup": speedup}, indent=2))  # fmt: skip
        return
    print(f"{n} traces, {payload / 1e6:,.0f} MB of payload, {cpus} CPUs")
    for key, seconds in results.items():
        print(f"{key:16} {seconds:8.1f} s {rates[key]:8.1f} traces/s")
    print(f"speed-up with {cpus} workers: export {speedup['export']:.2f}x, "
          f"query {speedup['query']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
