"""Analysis of a long voice session: throughput and peak memory, beside the decode floor.

Run: python bench/bench_voice.py [--minutes 60]

Writes one Realtime connection of ``--minutes`` of a speaker: 20 ms audio chunks appended
(24 kHz PCM16, base64), a spoken turn every 10 s answered by the server's voice detection
with 3 s of audio in 40 ms deltas and their transcript. Then, each in its own process and
side by side, alternated three times: the decode floor (every record of the trace read, no
analysis) and ``tracer inspect --json``. Prints the medians, the ratio of the two, and each
one's peak memory (max RSS): the analysis should cost a small multiple of reading the trace,
and its memory should not grow with the session.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tracer.trace import Close, Direction, Frame, Opcode, Open, create_trace

CHUNK_BYTES, DELTA_BYTES = 960, 1920  # 20 ms and 40 ms of 24 kHz PCM16
MS = 1_000_000


def _event(kind: str, **fields: object) -> bytes:
    return json.dumps({"type": kind, "event_id": "event_0", **fields}).encode()


def write_trace(path: Path, minutes: float) -> tuple[int, int, int]:
    """Returns (raw payload bytes, frames, turns)."""
    raw = frames = turns = 0
    with create_trace(path, flush_interval=None) as w:

        def put(t_ms: float, side: Direction, payload: bytes) -> None:
            nonlocal raw, frames
            w.write(Frame(1, int(t_ms * MS), side, Opcode.TEXT, payload, True))
            raw += len(payload)
            frames += 1

        w.write(Open(conn=1, t_ns=0, url="wss://api.openai.com/v1/realtime?model=gpt-realtime"))
        put(0, Direction.SERVER, _event("session.created", session={"model": "gpt-realtime"}))
        total_ms = int(minutes * 60_000)
        for t in range(20, total_ms, 20):
            audio = base64.b64encode(os.urandom(CHUNK_BYTES)).decode()  # noise: incompressible
            put(t, Direction.CLIENT, _event("input_audio_buffer.append", audio=audio))
            if t % 10_000 == 4_000:  # the speech ended: the server answers
                turns += 1
                rid, item = f"resp_{turns}", f"item_{turns}"
                put(
                    t + 1,
                    Direction.SERVER,
                    _event(
                        "input_audio_buffer.speech_stopped", audio_end_ms=t, item_id=f"u{turns}"
                    ),
                )
                put(
                    t + 2,
                    Direction.SERVER,
                    _event("input_audio_buffer.committed", item_id=f"u{turns}"),
                )
                put(t + 5, Direction.SERVER, _event("response.created", response={"id": rid}))
                for k in range(75):  # 3 s of audio in 40 ms deltas, with their transcript
                    put(
                        t + 300 + k * 2,
                        Direction.SERVER,
                        _event(
                            "response.output_audio.delta",
                            response_id=rid,
                            item_id=item,
                            output_index=0,
                            content_index=0,
                            delta=base64.b64encode(os.urandom(DELTA_BYTES)).decode(),
                        ),
                    )
                    put(
                        t + 301 + k * 2,
                        Direction.SERVER,
                        _event(
                            "response.output_audio_transcript.delta",
                            response_id=rid,
                            item_id=item,
                            delta=" word",
                        ),
                    )
                put(
                    t + 600,
                    Direction.SERVER,
                    _event(
                        "response.done",
                        response={
                            "id": rid,
                            "status": "completed",
                            "output": [],
                            "usage": {"input_tokens": 100, "output_tokens": 200},
                        },
                    ),
                )
        w.write(Close(conn=1, t_ns=total_ms * MS + MS, code=1000, by="client"))
    return raw, frames, turns


_DECODE = """
import sys
from tracer.trace import open_trace
n = 0
with open_trace(sys.argv[1]) as reader:
    for _ in reader:
        n += 1
print(n)
"""
_MEASURE = """
import resource, subprocess, sys, time
t0 = time.perf_counter()
out = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, check=True).stdout
print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.stderr.buffer.write(out)
"""


def _measure(cmd: list[str]) -> tuple[float, float, bytes]:
    """One run in its own process: seconds, peak RSS (MB) and what it printed."""
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, *cmd],
        capture_output=True,
        check=True,
        env=dict(os.environ),
    )
    seconds, kb = proc.stdout.split()
    return float(seconds), int(kb) / 1024, proc.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=60.0, help="length of the voice session")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tracer-bench-") as tmp:
        path = Path(tmp) / "voice.trace"
        t0 = time.perf_counter()
        raw, frames, turns = write_trace(path, args.minutes)
        print(
            f"generated {args.minutes:g} min of voice: {frames:,} frames, {raw / 1e6:,.0f} MB "
            f"raw payload, {turns:,} turns, trace {path.stat().st_size / 1e6:,.1f} MB "
            f"in {time.perf_counter() - t0:.1f}s"
        )
        decode = [sys.executable, "-c", _DECODE, str(path)]
        inspect = [sys.executable, "-m", "tracer", "inspect", "--json", str(path)]
        runs: dict[str, list[tuple[float, float]]] = {"decode": [], "inspect": []}
        for _ in range(3):
            for name, cmd in (("decode", decode), ("inspect", inspect)):
                seconds, mb, out = _measure(cmd)
                runs[name].append((seconds, mb))
                if name == "inspect":
                    report = json.loads(out)
                    assert report["summary"]["turns"] == turns, report["summary"]["turns"]
                    assert report["summary"]["voice_turns"] == turns
        med = {
            k: (statistics.median(s for s, _ in v), statistics.median(m for _, m in v))
            for k, v in runs.items()
        }
        for name, (seconds, mb) in med.items():
            print(
                f"{name:8} median {seconds:6.2f}s  {frames / seconds:>10,.0f} frames/s  "
                f"{raw / 1e6 / seconds:6,.0f} MB/s  peak RSS {mb:,.0f} MB"
            )
        (ti, mi), (td, md) = med["inspect"], med["decode"]
        print(f"ratio inspect/decode: time {ti / td:.2f}x, memory {mi / md:.2f}x")


if __name__ == "__main__":
    main()
