"""The OpenAI Live API from a client that sends what the real service's recordings show
(``tests/clients/live_client.py``), recorded through ``tracer record`` against the scripted
upstream: two spoken answers, the speech end placed from the input transcript, usage in
seconds. Ground truth: the client's account and the upstream's log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.analysis.paths import assert_both_paths_agree
from tests.conftest import ROOT, assert_clean_error, record_client, run_tracer
from tests.replay.test_replay import start_replay
from tracer.analysis.load import load
from tracer.upstream import running_upstream
from tracer.upstream.live import CONTEXT_WINDOW_S

CLIENT = ROOT / "tests" / "clients" / "live_client.py"


def test_a_live_session_recorded_and_explained(tmp_path: Path):
    trace = tmp_path / "live.trace"
    with running_upstream() as upstream:
        _, client = record_client(
            f"http://127.0.0.1:{upstream.port}/v1", trace, [sys.executable, str(CLIENT)]
        )
        log = list(upstream.live.log)
    report = load(trace).report
    turns = report.turns
    assert report.summary.protocols == {"openai-live": 1}
    assert len(turns) == len(log) == len(client["answers"]) == 2
    assert client["closed"] == "session.closed"
    assert [t.trigger for t in turns] == ["vad", "vad"]
    assert all(t.status == "completed" and t.model == "gpt-live-1" for t in turns)
    for t, entry, answer in zip(turns, log, client["answers"], strict=True):
        v = t.voice
        assert v is not None
        assert v.output_audio_s == answer["audio"] / 48_000 == entry["output_audio_bytes"] / 48_000
        assert v.speech_end == "transcript" and answer["heard_end_ms"] == entry["speech_end_ms"]
        assert v.voice_latency_ms is not None and v.voice_latency_ms > 0
        assert v.context_ratio == answer["usage"]["context_window"]["usage_ratio"]
    # Audio in: everything appended, split between the answers at their transcripts.
    assert sum(t.voice.input_audio_s for t in turns) == pytest.approx(client["appended"] / 48_000)
    # Billed seconds: what each usage update added, adding up to the session's last one.
    last = client["answers"][-1]["usage"]
    billed = last["input_seconds"] + last["output_seconds"]
    assert sum(t.voice.billed_s for t in turns) == pytest.approx(billed, abs=0.002)
    assert turns[-1].voice.context_ratio == pytest.approx(billed / CONTEXT_WINDOW_S, abs=1e-4)
    # The session holds the conversation: the second answer refers to the first.
    assert turns[1].referenced_items > 0 and turns[1].conversation == turns[0].conversation
    # Replayed offline to the same client: the same events, in the same order.
    replay, base_url = start_replay(trace, "--once", "--speed", "0")
    try:
        run = subprocess.run(
            [sys.executable, str(CLIENT)], capture_output=True, text=True, timeout=60,
            env={**os.environ, "OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "sk-offline"},
        )  # fmt: skip
        out, err = replay.communicate(timeout=30)
    finally:
        replay.kill()
    assert run.returncode == 0, run.stderr[-3000:]
    assert client["events"] > 10 and json.loads(run.stdout) == client
    assert replay.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["mismatches"] == []


@pytest.mark.parametrize(("protocol", "spoken"), [("gemini-live", 1), ("openai-live", 2)])
def test_the_demo_speaks_each_live_protocol(tmp_path: Path, protocol: str, spoken: int):
    out = tmp_path / f"{protocol}.trace"
    proc = run_tracer("demo", "--protocol", protocol, "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["spoken_turns"] == spoken and data["verify"]["ok"]
    assert data["summary"]["protocols"] == {protocol: 1}
    report = load(out).report
    assert_both_paths_agree(out)
    vad = [t for t in report.turns if t.trigger == "vad"]
    assert len(vad) == spoken
    assert all(t.voice and t.voice.voice_latency_ms and t.voice.speech_end for t in vad)
    text = run_tracer("inspect", str(out), env_extra={"COLUMNS": "160"}).stdout
    assert "~" in text and "estimated" in text
    bad = run_tracer("demo", "--protocol", "carrier-pigeon", "-o", str(out))
    assert_clean_error(bad)


@pytest.mark.parametrize("protocol", ["gemini-live", "openai-live"])
def test_a_live_demo_session_replays_offline_to_the_same_agent(tmp_path: Path, protocol: str):
    import asyncio

    from tracer.demo.live import run_gemini_agent, run_live_agent

    out = tmp_path / f"{protocol}.trace"
    assert run_tracer("demo", "--protocol", protocol, "-o", str(out)).returncode == 0
    agent = run_gemini_agent if protocol == "gemini-live" else run_live_agent
    replay, base_url = start_replay(out, "--once", "--speed", "0")
    try:
        run = asyncio.run(agent(base_url))
        stdout, err = replay.communicate(timeout=30)
    finally:
        replay.kill()
    assert replay.returncode == 0, err
    served = json.loads(stdout.strip().splitlines()[-1])
    assert served["mismatches"] == []
    recorded = load(out).report
    assert run.responses >= len([t for t in recorded.turns if t.status == "completed"]) > 0
