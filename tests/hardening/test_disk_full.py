"""The disk fills while recording: the proxy says so at once, keeps forwarding every frame,
and says exactly which frames of which connection were not recorded."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
from pathlib import Path

from websockets.sync.client import connect

from tests.hardening.helpers import free_port, wait_for_port
from tracer.trace import Close, Frame, Open, TraceError, TraceReader
from tracer.upstream import running_upstream

FILE_LIMIT = 256 * 1024  # bytes the recorder may write: RLIMIT_FSIZE, a size-limited file


def limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))


def client(port: int, turns: int, salt: int, counts: dict[int, int]) -> None:
    """Turns whose inputs are incompressible, so the trace outgrows the limit quickly."""
    frames = 0
    with connect(f"ws://127.0.0.1:{port}/v1/responses", max_size=None) as ws:
        for k in range(turns):
            noise = os.urandom(24 * 1024).hex()
            ws.send(json.dumps({"type": "response.create", "input": f"{salt} {k} {noise}"}))
            frames += 1
            while True:
                event = json.loads(ws.recv())
                frames += 1
                if event["type"] == "response.completed":
                    assert event["response"]["output"], event  # the whole answer arrived
                    break
    counts[salt] = frames


def test_a_full_disk_is_reported_and_traffic_still_flows(tmp_path: Path):
    out = tmp_path / "t.trace"
    port = free_port()
    with running_upstream() as upstream:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tracer", "record", "--upstream",
             f"ws://127.0.0.1:{upstream.port}", "-o", str(out), "--listen", f"127.0.0.1:{port}",
             "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=limit_file_size,
        )  # fmt: skip
        wait_for_port(port)
        counts: dict[int, int] = {}
        threads = [
            threading.Thread(target=client, args=(port, 12, salt, counts)) for salt in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert len(counts) == 4  # every client finished every turn through the proxy
        with connect(f"ws://127.0.0.1:{port}/v1/responses") as ws:  # and new ones still work
            ws.send(json.dumps({"type": "response.create", "input": "after"}))
            while json.loads(ws.recv())["type"] != "response.completed":
                pass
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stderr  # the trace could not be written whole
    said = [line for line in stderr.splitlines() if "cannot write the trace" in line]
    assert len(said) == 1 and "still forwarding" in said[0], stderr
    assert "Traceback" not in stderr
    assert out.stat().st_size <= FILE_LIMIT
    # What the file holds: a readable prefix.
    recorded: dict[int, int] = {}
    opened = set()
    with open(out, "rb") as f:
        reader = TraceReader(f)
        try:
            for r in reader:
                if type(r) is Open:
                    opened.add(r.conn)
                elif type(r) in (Frame,):
                    recorded[r.conn] = recorded.get(r.conn, 0) + 1
                elif type(r) is Close:
                    pass
        except TraceError:
            pass  # the cut may fall inside a block: the records before it still count
    summary = json.loads(stdout)
    assert summary["write_error"] and summary["trace_ok"] is False
    gaps = {g["conn"]: g for g in summary["unrecorded"]}
    assert len(gaps) == 5  # the 4 clients and the one after the disk filled
    assert summary["dropped_frames"] == sum(g["frames"] for g in gaps.values())
    # Each connection: the file holds its first k frames, and exactly the rest are listed.
    totals = []
    for conn, gap in gaps.items():
        k = recorded.get(conn, 0)
        assert gap["exact"] and gap["ranges"] == [[k + 1, k + gap["frames"]]], (conn, k, gap)
        totals.append(k + gap["frames"])
    # Every frame is accounted for: each client's frames and the two close frames.
    assert sorted(totals)[1:] == sorted(n + 2 for n in counts.values())
