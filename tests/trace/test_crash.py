from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tracer.trace import Frame, open_trace

FLUSH_INTERVAL = 0.1

WRITER = """
import sys, time
from tracer.trace import Direction, Frame, Opcode, Open, create_trace
with create_trace(sys.argv[1], flush_interval=float(sys.argv[2])) as w:
    w.write(Open(conn=1, t_ns=w.now_ns(), url="ws://127.0.0.1/v1/responses"))
    print("ready", flush=True)
    i = 0
    while True:
        body = b'{"i":%d,"mono":%.6f,"pad":"%s"}' % (i, time.monotonic(), b"x" * (i % 300))
        w.write(Frame(1, w.now_ns(), Direction.SERVER, Opcode.TEXT, body))
        i += 1
        time.sleep(0.001)
"""


def test_sigkill_loses_at_most_the_flush_interval(tmp_path: Path):
    for attempt, run_for in enumerate((0.35, 0.8, 1.5)):
        path = tmp_path / f"killed{attempt}.trace"
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(FLUSH_INTERVAL)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(run_for)
        killed_at = time.monotonic()
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)

        with open_trace(path) as reader:
            frames = [r for r in reader if type(r) is Frame]
            assert reader.truncated is True
        bodies = [json.loads(f.payload) for f in frames]
        assert [b["i"] for b in bodies] == list(range(len(bodies))), "not a clean prefix"
        # Every frame written before (kill - flush interval) must be there; allow 20 ms for
        # the writer's last sleep and scheduling on a busy machine.
        assert bodies, "nothing survived"
        last_kept = bodies[-1]["mono"]
        assert last_kept >= killed_at - FLUSH_INTERVAL - 0.02, (killed_at - last_kept, len(bodies))
