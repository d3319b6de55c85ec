"""A cheap stop: the recorder verifies the live trace and leaves its recompression to a
process of its own, whose memory is bounded; a trace replaced meanwhile is never
overwritten; every record reads the same before and after."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT, record_client
from tracer.analysis.load import load
from tracer.capture.compactor import start_background_compaction
from tracer.capture.recorder import Recorder
from tracer.trace import open_trace
from tracer.upstream import running_upstream

sys.path.insert(0, str(ROOT / "bench"))
from session import session_frames

# The compactor's own peak memory, in a fresh process (RUSAGE_CHILDREN of the wrapper).
_MEASURE = (
    "import json, resource, subprocess, sys\n"
    "p = subprocess.run(sys.argv[1:])\n"
    "print(json.dumps({'rc': p.returncode,\n"
    "                  'kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n"
)


def _full_resend_trace(path: Path, turns: int = 40) -> None:
    """A 40-turn full-resend session (9 MB of payload) as the recorder writes it."""
    recorder = Recorder(path)
    conn = recorder.open_connection("/v1/responses", status=101)
    for n, f in enumerate(session_frames(turns=turns, full_resend=True)):
        recorder.frame(conn, f.direction, f.opcode, f.payload, True)
        if n % 256 == 0:
            time.sleep(0.001)  # as a session arrives: the writer keeps up, nothing dropped
    recorder.close()
    assert recorder.stats.dropped_frames == 0


def _records(path: Path) -> list:
    with open_trace(path) as reader:
        return [r for r in reader if type(r).__name__ != "Footer"]


def _wait(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_the_background_recompression_keeps_every_record(tmp_path: Path):
    trace = tmp_path / "session.trace"
    _full_resend_trace(trace)
    live_size, before = trace.stat().st_size, _records(trace)
    assert _wait(start_background_compaction(trace)) == 0
    assert trace.stat().st_size < live_size * 0.85  # the point of recompressing
    assert _records(trace) == before
    assert [p.name for p in tmp_path.iterdir()] == ["session.trace"]  # no copy left behind


def test_the_compactor_memory_is_bounded(tmp_path: Path):
    trace = tmp_path / "session.trace"
    _full_resend_trace(trace)
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, sys.executable, "-m", "tracer.capture.compactor",
         str(trace)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    m = json.loads(proc.stdout)
    assert m["rc"] == 0
    # Level 19's own match tables alone take 80 MiB (134 MB in all); capped, about 86 MB.
    assert m["kb"] / 1024 < 110, m["kb"] / 1024


def test_a_trace_replaced_meanwhile_is_not_overwritten(tmp_path: Path):
    trace = tmp_path / "session.trace"
    _full_resend_trace(trace)
    newer = tmp_path / "newer.trace"
    _full_resend_trace(newer, turns=2)
    pid = start_background_compaction(trace)
    os.replace(newer, trace)  # a new recording to the same path, while it works
    expected = trace.read_bytes()
    assert _wait(pid) == 1  # it says it did nothing
    assert trace.read_bytes() == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["session.trace"]


def test_tracer_record_exits_then_the_trace_is_recompressed(tmp_path: Path):
    trace = tmp_path / "cli.trace"
    client = [sys.executable, str(ROOT / "tests" / "clients" / "openai_client.py"), "websocket"]
    with running_upstream() as upstream:
        proc, account = record_client(f"http://127.0.0.1:{upstream.port}", trace, client)
        log = list(upstream.engine.log)
    assert "recompressing it in the background" in proc.stderr
    pid = int(proc.stderr.split("(pid ")[1].split(")")[0])
    deadline = time.monotonic() + 120
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # not our child: tracer's, which has exited
    assert not Path(f"/proc/{pid}").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli.trace"]
    with open_trace(trace) as reader:
        records = list(reader)
        assert reader.footer is not None and records
    ids = [t.response_id for t in load(trace).report.turns]
    assert ids == account["responses"] == [e["response_id"] for e in log]
