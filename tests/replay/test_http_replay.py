"""HTTP replay: sessions the openai SDK recorded over HTTP (streamed or not, alone or mixed
with WebSocket) replay offline to the same client with identical answers. Ground truth:
what the client saw live."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.analysis.test_context_model import AGENT, TURNS
from tests.conftest import ROOT, assert_clean_error, run_tracer
from tests.replay.test_replay import start_replay
from tracer.trace import create_trace
from tracer.upstream import Script, running_upstream
from tracer.upstream.script import parse_profile


def _live(tmp_path: Path, mode: str) -> tuple[Path, dict]:
    out = tmp_path / f"{mode}.trace"
    with running_upstream(Script(turns=TURNS)) as upstream:
        proc = run_tracer(
            "record", "--upstream", f"http://127.0.0.1:{upstream.port}", "-o", str(out),
            "--", sys.executable, str(AGENT), mode, timeout=120,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out, json.loads(proc.stdout.splitlines()[-1])


def _against(base_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENAI_BASE_URL": base_url}
    return subprocess.run(
        [sys.executable, str(AGENT), *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("mode", ["http-resend", "http-stored", "mixed"])
def test_an_http_session_replays_offline_with_identical_answers(tmp_path: Path, mode: str):
    trace, live = _live(tmp_path, mode)
    assert live["turns"], live
    replay, base_url = start_replay(trace, "--speed", "0", "--once")
    try:
        proc = _against(base_url, mode)
        out, _ = replay.communicate(timeout=60)
    finally:
        replay.kill()
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == live  # the same answers, ids, usage
    assert replay.returncode == 0, out
    (stopped,) = [json.loads(line) for line in out.splitlines()]  # JSON Lines
    assert stopped["event"] == "stopped" and stopped["mismatch_count"] == 0
    assert stopped["turns"] == len(live["turns"])  # counted as the analysis counts them


CHANGED = """
import openai, sys
client = openai.OpenAI(api_key="sk-test-context-model-0000000000", max_retries=0)
try:
    client.responses.create(model="m", input="something else entirely", store=True)
except openai.BadRequestError as exc:
    print(exc.code, exc.message)
    sys.exit(0)
sys.exit("no error raised")
"""


def test_a_changed_request_gets_an_error_the_sdk_raises(tmp_path: Path):
    trace, _ = _live(tmp_path, "http-stored")
    replay, base_url = start_replay(trace, "--speed", "0")
    try:
        env = {**os.environ, "OPENAI_BASE_URL": base_url}
        proc = subprocess.run([sys.executable, "-c", CHANGED], env=env, capture_output=True,
                              text=True, timeout=60)  # fmt: skip
    finally:
        replay.terminate()
        replay.communicate(timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("replay_mismatch ") and "$.input" in proc.stdout
    assert "tracer replay" in proc.stdout


def test_a_trace_with_nothing_to_serve_is_refused_at_once(tmp_path: Path):
    """--once on a trace with nothing to serve exits at once with a clear line."""
    empty = tmp_path / "empty.trace"
    with create_trace(empty):
        pass
    proc = run_tracer("replay", str(empty), "--once", timeout=20)
    assert_clean_error(proc)
    assert "holds no WebSocket connection or HTTP request to replay" in proc.stderr


@pytest.mark.parametrize("sample", ["http.trace", "http-resend.trace"])
def test_rerun_resends_http_sessions_with_their_chains(tmp_path: Path, sample: str):
    """`tracer rerun` of an HTTP session: every request reaches the live server, and each
    chained one names the response that server itself gave (its log is the truth)."""
    recorded = [json.loads(line) for line in run_tracer(
        "frames", str(ROOT / "traces" / sample), "--json", "--payload", "--from", "client"
    ).stdout.splitlines()]  # fmt: skip
    with running_upstream(Script(turns=(), profile=parse_profile("stored"))) as upstream:
        proc = run_tracer(
            "rerun", str(ROOT / "traces" / sample), "--upstream",
            f"ws://127.0.0.1:{upstream.port}", "-o", str(tmp_path / "again.trace"), "--json",
        )  # fmt: skip
        log = [e for e in upstream.engine.log if e["transport"] == "http"]
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert len(log) == len(recorded) == result["turns"] and not result["errors"]
    chained = [json.loads(f["payload"]).get("previous_response_id") for f in recorded]
    for entry, was, before in zip(log[1:], chained[1:], log, strict=False):
        assert entry["status"] != "error", entry
        assert entry["previous_response_id"] == (before["response_id"] if was else None)
    assert result["rewritten_ids"] == sum(1 for c in chained if c)
