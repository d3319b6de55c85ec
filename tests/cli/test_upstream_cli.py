from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import zstandard
from websockets.sync.client import connect

from tests.conftest import ROOT, assert_clean_error, run_tracer
from tracer.trace import Frame, open_trace


def test_upstream_serves_and_stops_cleanly_on_sigterm():
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracer", "upstream", "--listen", "127.0.0.1:0", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["event"] == "listening"
        with connect(info["ws_url"]) as ws:
            ws.send(json.dumps({"type": "response.create", "input": "hi"}))
            types = []
            while not types or types[-1] != "response.completed":
                types.append(json.loads(ws.recv())["type"])
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert json.loads(out.splitlines()[-1]) == {"event": "stopped", "connections": 1}
    assert "Traceback" not in err


def test_upstream_bad_script_and_remote_host(tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"turns": [{"calls": [{"nom": "x"}]}]}')
    assert_clean_error(run_tracer("upstream", "--script", str(bad)))
    broken = tmp_path / "broken.toml"
    broken.write_text("turns = [")
    assert_clean_error(run_tracer("upstream", "--script", str(broken)))
    assert_clean_error(run_tracer("upstream", "--script", str(tmp_path / "missing.json")))
    assert_clean_error(run_tracer("upstream", "--host", "0.0.0.0"))


def test_demo_records_a_verified_trace(tmp_path: Path):
    out = tmp_path / "demo.trace"
    proc = run_tracer("demo", "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    # Counted as every command counts them: 13 turns and the warm-up, in one object.
    assert (
        (report["turns"], report["warmups"])
        == (14, 1)
        == (report["summary"]["turns"], report["summary"]["warmups"])
    )
    assert report["connections"] == 1
    assert report["verify"]["ok"] is True
    assert report["verify"]["connections"] == 1
    assert out.stat().st_mode & 0o777 == 0o600
    frames = run_tracer("frames", str(out), "--json", "--payload", "--from", "client")
    creates = [json.loads(json.loads(line)["payload"]) for line in frames.stdout.splitlines()]
    # A warm-up create, then 13 turns chained with previous_response_id.
    assert len(creates) == 14
    assert creates[0]["generate"] is False
    assert all(c.get("previous_response_id") for c in creates[1:])
    # The demo's (fake) API key went out in the Authorization header; it is not in the trace.
    raw = zstandard.ZstdDecompressor().decompressobj().decompress(out.read_bytes()[16:])
    assert b"Bearer [REDACTED:" in raw
    assert b"sk-demo" not in raw
    # The recorder keeps microseconds (docs/format.md), and compaction keeps the unit.
    with open_trace(out) as reader:
        times = [r.t_ns for r in reader if type(r) is Frame]
    assert reader.header.time_unit_ns == 1000 and reader.version == 2
    assert len(times) > 100 and all(t % 1000 == 0 for t in times)


def test_silent_errors_now_say_what_is_wrong(tmp_path: Path):
    """Each gets one clear line and a non-zero exit (issue: they printed nothing, or an
    empty message, or 'ok')."""
    bare = run_tracer()
    assert bare.returncode == 2 and "tracer: error: a command is needed" in bare.stderr
    frames = run_tracer("frames", str(ROOT / "traces" / "incremental.trace"), "--conn", "9")
    assert_clean_error(frames)
    assert "no frames of connection 9 (connections: 1)" in frames.stderr
    stats = run_tracer("stats", str(ROOT / "traces" / "incremental.trace"),
                       str(ROOT / "README.md"), "--json")  # fmt: skip
    assert stats.returncode == 1 and json.loads(stats.stdout)["total"]["error"] == "1 of 2 failed"
    out = str(tmp_path / "t.trace")
    too_big = run_tracer(
        "record", "--upstream", "ws://127.0.0.1:9", "-o", out, "--max-frame", str(200 << 20)
    )
    assert_clean_error(too_big)
    assert "--max-frame" in too_big.stderr


def test_replay_and_upstream_default_to_different_ports():
    replay = run_tracer("replay", "--help")
    upstream = run_tracer("upstream", "--help")
    assert "127.0.0.1:8766" in replay.stdout and "8765" in upstream.stdout
