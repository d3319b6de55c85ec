"""A cheap stop: a 40-turn full-resend session (about 9 MB of payload) through (a) a bare
websockets forwarder, (b) `tracer record` as it stops by default (the live trace verified,
its recompression left to a background process) and (c) `tracer record --wait-compact`
(recompressed before it exits, as every stop did before); each proxy's lifetime peak RSS
and the time from Ctrl-C to its exit, side by side in one run; then the trace's size as the
background step left it against level 19 with zstd's own tables (the old recompression).

Run: python bench/bench_compact.py [--turns 40] [--rounds 3]

Targets (issue #32): (b)'s peak RSS <= 2x (a)'s, its stop < 0.3 s, its compacted size
within 2% of the old one.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from bench_proxy import FORWARDER, free_port, wait_port

from tracer.trace.compact import compact_trace

HERE = os.path.dirname(os.path.abspath(__file__))

SERVER = r"""
import asyncio, logging, sys
logging.getLogger("websockets").setLevel(logging.CRITICAL)  # probes and killed proxies
sys.path.insert(0, sys.argv[3])
from session import session_frames
from websockets.asyncio.server import serve

turns, server_frames = [], None
for f in session_frames(turns=int(sys.argv[2]), full_resend=True):
    if f.direction == 0:  # a create: a new turn
        server_frames = []
        turns.append(server_frames)
    else:
        server_frames.append(f.payload.decode())

async def handler(ws):
    n = 0
    async for _ in ws:
        for payload in turns[n]:
            await ws.send(payload)
        n += 1

async def main():
    async with serve(handler, "127.0.0.1", int(sys.argv[1]), compression=None,
                     max_size=None):
        print("ready", flush=True)
        await asyncio.Future()

asyncio.run(main())
"""

# Runs a proxy and reports its own peak RSS (wait4 on that child) and how long it took to
# exit once told to stop; SIGINT is passed on to it as the signal named by argv[1] (the bare
# forwarder does not stop on SIGINT while a connection's upstream half is open: SIGTERM).
MEASURED = r"""
import json, os, signal, subprocess, sys, time
child = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
told = []
def stop(signum, frame):
    told.append(time.monotonic())
    child.send_signal(getattr(signal, sys.argv[1]))
signal.signal(signal.SIGINT, stop)
_, status, usage = os.wait4(child.pid, 0)
print(json.dumps({"rss_mb": usage.ru_maxrss / 1024,
                  "stop_s": time.monotonic() - told[0] if told else None}), flush=True)
"""

CLIENT = r"""
import sys
sys.path.insert(0, sys.argv[3])
from session import session_frames
from websockets.sync.client import connect

creates = [f.payload for f in session_frames(turns=int(sys.argv[2]), full_resend=True)
           if f.direction == 0]
with connect(sys.argv[1], compression=None, max_size=None) as ws:
    for body in creates:
        ws.send(body.decode())
        while b'"response.completed"' not in ws.recv(decode=False):
            pass
"""


def run_path(argv: list[str], port: int, turns: int, stop: str) -> dict[str, float]:
    proc = subprocess.Popen([sys.executable, "-c", MEASURED, stop, *argv],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    wait_port(port)
    subprocess.run([sys.executable, "-c", CLIENT, f"ws://127.0.0.1:{port}/v1/responses",
                    str(turns), HERE], check=True, timeout=600)  # fmt: skip
    time.sleep(0.3)  # the recorder's last flush
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=600)
    return json.loads(out)


def settled(path: str, live_size: int, timeout: float = 120.0) -> None:
    """Wait until the background recompression of ``path`` has renamed its copy over it
    (the trace shrinks) and left no copy behind."""
    directory, name = os.path.split(path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = any(p.startswith(f".{name}.") for p in os.listdir(directory))
        if not busy and os.path.getsize(path) != live_size:
            return
        time.sleep(0.05)
    raise SystemExit("the background recompression did not finish")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--turns", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="tracer-bench-")
    src = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(src), str(args.turns), HERE])
    results: dict[str, dict[str, list[float]]] = {}
    sizes: dict[str, int] = {}
    try:
        wait_port(src)
        upstream = f"ws://127.0.0.1:{src}"
        for _ in range(args.rounds):  # interleaved: noise hurts the paths alike
            for name, extra in (("a_forwarder", None), ("b_record", []),
                                ("c_record_wait", ["--wait-compact"])):  # fmt: skip
                port = free_port()
                trace = os.path.join(tmp, f"{name}.trace")
                if extra is None:
                    argv = [sys.executable, "-c", FORWARDER, str(port), upstream]
                else:
                    argv = [sys.executable, "-m", "tracer", "record", "--upstream", upstream,
                            "-o", trace, "--listen", f"127.0.0.1:{port}", *extra]  # fmt: skip
                got = run_path(argv, port, args.turns, "SIGTERM" if extra is None else "SIGINT")
                for key, value in got.items():
                    results.setdefault(name, {}).setdefault(key, []).append(value)
                if extra == []:  # the default stop: compacted after the recorder exits
                    sizes["b_live"] = os.path.getsize(trace)
                    settled(trace, sizes["b_live"])
                if extra is not None:
                    sizes[name] = os.path.getsize(trace)
        old = io.BytesIO()
        with open(os.path.join(tmp, "b_record.trace"), "rb") as f:
            compact_trace(f, old, table_log=None)  # level 19 with zstd's own tables
        sizes["old_level19"] = len(old.getvalue())
    finally:
        server.terminate()
        server.wait(10)
    med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in results.items()}
    a, b, c = med["a_forwarder"], med["b_record"], med["c_record_wait"]
    ratios = {
        "rss_b_over_a": b["rss_mb"] / a["rss_mb"],
        "rss_c_over_a": c["rss_mb"] / a["rss_mb"],
        "size_b_over_old": sizes["b_record"] / sizes["old_level19"],
    }
    if args.json:
        print(json.dumps({"paths": med, "sizes": sizes, "ratios": ratios}, indent=2))
        return
    print(f"{args.turns}-turn full-resend session, median of {args.rounds} interleaved rounds")
    print(f"{'path':16} {'peak RSS MB':>12} {'stop s':>8}")
    for name, m in med.items():
        stop = "-" if name == "a_forwarder" else f"{m['stop_s']:.3f}"  # killed, not stopped
        print(f"{name:16} {m['rss_mb']:12.1f} {stop:>8}")
    print(f"sizes: live {sizes['b_live']:,} B, recompressed in the background "
          f"{sizes['b_record']:,} B, --wait-compact {sizes['c_record_wait']:,} B, "
          f"old level 19 {sizes['old_level19']:,} B")  # fmt: skip
    print(
        f"tracer record / bare forwarder peak RSS: {ratios['rss_b_over_a']:.2f}x "
        f"(target <= 2.0; --wait-compact {ratios['rss_c_over_a']:.2f}x); "
        f"stop {b['stop_s']:.3f} s (target < 0.3); "
        f"size / old {ratios['size_b_over_old']:.3f} (target <= 1.02)"
    )


if __name__ == "__main__":
    main()
