"""Runs every command that reads a trace on one file, in this process, and prints a JSON
report: per command its exit code, its stderr, its time; and this process's peak memory.

    python tests/fuzz/run_commands.py FILE OUTDIR
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import resource
import signal
import sys
import time
from pathlib import Path

from tracer.cli import main

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.slowness import guard_s  # noqa: E402  (the repository's root is on the path now)

SAMPLE = str(ROOT / "traces" / "incremental.trace")
# A hang guard, not a speed target: the slowest command on the corpus took 6.5 s on the
# reference machine; the guard is about 9 times that, scaled to this machine (bench/ times).
TIME_BOUND_S = 60


BOUND_S = TIME_BOUND_S


def commands(trace: str, out: str) -> list[list[str]]:
    return [
        ["verify", trace], ["verify", trace, "--json"],
        ["frames", trace], ["frames", trace, "--json", "--payload"],
        ["inspect", trace], ["inspect", trace, "--json"],
        ["cache", trace], ["latency", trace], ["turn", trace, "0"], ["turn", trace, "0", "--json"],
        ["stats", trace, "--jobs", "1"], ["diff", trace, SAMPLE, "--json"], ["diff", SAMPLE, trace],
        ["compact", trace, "-o", f"{out}/compact.trace"],
        ["export", trace, "-f", "jsonl", "-o", f"{out}/e.jsonl", "--jobs", "1"],
        ["export", trace, "-f", "har", "-o", f"{out}/e.har", "--jobs", "1"],
        ["export", trace, "-f", "perfetto", "-o", f"{out}/e.json", "--jobs", "1"],
        ["export", trace, "-f", "otlp", "-o", f"{out}/e.otlp.json", "--jobs", "1"],
        ["export", trace, "-f", "parquet", "-o", f"{out}/pq", "--jobs", "1"],
        ["query", "select count(*) from turns", trace, "--json", "--jobs", "1"],
        ["report", trace, "-o", f"{out}/r.html"],
        ["report", trace, SAMPLE, "-o", f"{out}/d.html"],
        ["watch", trace, "--json", "--idle", "0.5"],
    ]  # fmt: skip


class Timeout(BaseException):  # not an Exception: the CLI's catch-all must not turn it into 70
    pass


def on_alarm(signum: int, frame: object) -> None:
    raise Timeout


def run(args: list[str]) -> dict[str, object]:
    out, err = io.StringIO(), io.StringIO()
    start = time.monotonic()
    signal.alarm(BOUND_S)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code: int | str = main(args)
    except Timeout:
        code = "timeout"
    finally:
        signal.alarm(0)
    return {"args": args, "code": code, "stderr": err.getvalue()[-2000:],
            "seconds": round(time.monotonic() - start, 3)}  # fmt: skip


def main_() -> None:
    trace, outdir = sys.argv[1], sys.argv[2]
    global BOUND_S
    BOUND_S = math.ceil(guard_s(TIME_BOUND_S))
    signal.signal(signal.SIGALRM, on_alarm)
    results = [run(args) for args in commands(trace, outdir)]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"results": results, "peak_rss_mb": round(peak, 1), "guard_s": BOUND_S}))


if __name__ == "__main__":
    main_()
