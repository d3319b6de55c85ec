"""The recorder's cost per frame, off the forwarding path: small ``*.delta`` server frames
through ``Recorder.frame`` and its writer thread into a trace file, with redaction (the
default: the split-key joiner and the per-frame pass) and without it, side by side.

Run: python bench/bench_recorder.py [--frames 100000] [--rounds 3]

The process's CPU time per frame is what the writer thread takes from the proxy's event
loop, with which it shares the GIL (``bench/bench_proxy.py`` measures the proxy itself).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

from bench_proxy import DELTA, WORDS  # the same delta frames as the proxy benchmark

from tracer.capture.recorder import Recorder
from tracer.trace.records import Direction, Opcode
from tracer.trace.redact import Redactor


def one_run(payloads: list[bytes], redact: bool, path: str) -> float:
    """CPU microseconds per frame, from the first frame to the closed trace."""
    recorder = Recorder(path, redactor=Redactor(enabled=redact))
    conn = recorder.open_connection("/v1/responses", status=101)
    start = time.process_time()
    for payload in payloads:
        recorder.frame(conn, Direction.SERVER, Opcode.TEXT, payload, True)
    recorder.close()
    return (time.process_time() - start) / len(payloads) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    payloads = []
    for i in range(args.frames):
        DELTA["sequence_number"] = i
        DELTA["delta"] = " " + WORDS[i % len(WORDS)]
        payloads.append(json.dumps(DELTA).encode())
    times: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="tracer-bench-") as tmp:
        for _ in range(args.rounds):  # interleaved, so that noise hurts both alike
            for redact in (False, True):
                times[redact].append(one_run(payloads, redact, os.path.join(tmp, "t.trace")))
    plain, redacted = statistics.median(times[False]), statistics.median(times[True])
    print(f"{args.frames} delta frames, median of {args.rounds} interleaved rounds")
    print(f"without redaction: {plain:6.2f} us CPU a frame")
    print(f"with redaction:    {redacted:6.2f} us CPU a frame")
    print(f"redaction / none:  {redacted / plain:.2f}x")


if __name__ == "__main__":
    main()
