"""The openai SDK's ``client.realtime.connect()`` recorded through ``tracer record`` against
the scripted upstream's Realtime endpoint, and replayed offline to the same client.

Ground truth is the upstream's own log (one entry per response: trigger, status, usage,
audio seconds, the voice latency it measured when it sent) and the client's account (the
response ids and usage it received, what it appended, truncated and re-created); never
tracer's output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.analysis.paths import assert_both_paths_agree
from tests.conftest import ROOT, record_client
from tests.replay.test_replay import start_replay
from tracer.analysis.load import load
from tracer.trace import Direction, Frame, open_trace
from tracer.upstream.realtime import RealtimeScript
from tracer.upstream.server import running_upstream

CLIENT = ROOT / "tests" / "clients" / "realtime_client.py"
KEY = "sk-proj-realtimeTEST0123456789abcdefghijklmnop"
SCRIPT = RealtimeScript(first_audio_ms=60.0, transcription_ms=25.0)


def record(
    tmp_path: Path, mode: str, script: RealtimeScript
) -> tuple[Path, list[dict[str, Any]], dict[str, Any]]:
    out = tmp_path / f"{mode}.trace"
    with running_upstream(realtime=script) as upstream:
        _, account = record_client(
            upstream.base_url, out, [sys.executable, str(CLIENT), mode], key=KEY
        )
        log = list(upstream.realtime.log)
        transcripts = list(upstream.realtime.transcripts)
    vad = [e for e in log if e["trigger"] == "vad"]
    for entry, transcript in zip(vad, transcripts, strict=True):  # one per spoken turn
        entry["transcription_delay_ms"] = transcript["delay_ms"]
        entry["transcript_event"] = transcript["event"]
        assert transcript["stopped_event"] == entry["stopped_event"]  # the same speech
    return out, log, account


def sent_at(trace: Path) -> dict[str, int]:
    """When the recorder saw each server event, by the event id the upstream gave it: the
    frames of the trace, read as records (no analysis)."""
    seen: dict[str, int] = {}
    with open_trace(trace) as reader:
        for r in reader:
            if type(r) is Frame and r.direction is Direction.SERVER and r.payload[:1] == b"{":
                event_id = json.loads(r.payload).get("event_id")
                if event_id is not None:
                    seen.setdefault(event_id, r.t_ns)
    return seen


def span_ms(seen: dict[str, int], start: str, end: str) -> float:
    return (seen[end] - seen[start]) / 1e6


def test_a_voice_session_of_the_sdk_is_read_exactly(tmp_path: Path):
    trace, log, client = record(tmp_path, "session", SCRIPT)
    assert KEY not in trace.read_bytes().decode("latin-1")
    report = load(trace).report
    assert_both_paths_agree(trace)
    turns = report.turns
    assert report.connections[0].protocol == "realtime"
    # Every response the upstream ran is a turn, in order, with its id, trigger and status;
    # the create the upstream refused is one more, failed with the client's error code.
    answered = [t for t in turns if t.response_id is not None]
    assert [t.response_id for t in answered] == [e["response_id"] for e in log]
    assert [r["id"] for r in client["responses"]] == [e["response_id"] for e in log]
    assert [t.trigger for t in answered] == [e["trigger"] for e in log]
    assert [t.status for t in answered] == [e["status"] for e in log]
    refused = [t for t in turns if t.response_id is None]
    assert [t.error_code for t in refused] == client["errors"]
    assert all(t.status == "error" for t in refused)
    assert {e["trigger"] for e in log} == {"client", "vad"} and any(e["call"] for e in log)
    # Usage, as the upstream sent it, text, audio and cached.
    for t, e in zip(answered, log, strict=True):
        u = e["usage"]
        assert (t.input_tokens, t.output_tokens) == (u["input_tokens"], u["output_tokens"])
        assert t.cached_tokens == u["input_token_details"]["cached_tokens"]
        assert t.input_audio_tokens == u["input_token_details"]["audio_tokens"]
        assert t.output_audio_tokens == u["output_token_details"]["audio_tokens"]
        # Audio seconds each way, as the upstream committed and streamed them.
        assert t.voice.input_audio_s == e["input_audio_s"], t.index
        assert t.voice.output_audio_s == e["output_audio_s"], t.index
    assert sum(e["input_audio_s"] for e in log) <= client["appended_bytes"] / 48_000
    assert any(t.cached_tokens for t in answered)
    # Voice latency: the span, on the recorder's clock, from the speech_stopped the upstream
    # answered to the first audio it sent (both named by the upstream's log); the upstream's
    # own clock measured at least the delay it injected. (How far the two clocks' spans
    # differ is how the machine scheduled the frames between them: no test bound.)
    seen = sent_at(trace)
    spoken = [(t, e) for t, e in zip(answered, log, strict=True) if e["trigger"] == "vad"]
    assert len(spoken) >= 3
    for t, e in spoken:
        recorded = span_ms(seen, e["stopped_event"], e["first_audio_event"])
        assert t.voice.voice_latency_ms == pytest.approx(recorded, abs=0.001), (t.index, e)
        assert e["voice_latency_ms"] >= SCRIPT.first_audio_ms
        assert t.voice.perceived_latency_ms == pytest.approx(t.voice.voice_latency_ms + 300)
        transcribed = span_ms(seen, e["stopped_event"], e["transcript_event"])
        assert t.voice.transcription_delay_ms == pytest.approx(transcribed, abs=0.001)
        assert e["transcription_delay_ms"] >= SCRIPT.transcription_ms
    # The answer the speaker talked over: cancelled by the server, truncated by the client
    # at 20 ms of the audio the upstream streamed for it.
    (cut,) = [(t, e) for t, e in spoken if e["status"] == "cancelled"]
    assert cut[0].voice.interrupted and cut[0].error_code == "turn_detected"
    (truncated,) = client["truncated"]
    expected_cut = round(cut[1]["output_audio_s"] - truncated["audio_end_ms"] / 1000, 3)
    assert cut[0].voice.output_audio_cut_s == pytest.approx(expected_cut, abs=0.001)
    # The create the client cancelled.
    (cancelled,) = [
        t
        for t, e in zip(answered, log, strict=True)
        if e["trigger"] == "client" and e["status"] == "cancelled"
    ]
    assert cancelled.error_code == "client_cancelled" and cancelled.voice.interrupted
    s = report.summary
    assert s.interruptions == sum(t.voice.interrupted for t in turns) >= 2
    assert s.voice_turns == len(turns) and s.protocols == {"realtime": 1}
    assert s.voice_latency_p50_ms is not None
    assert s.voice_latency_p50_ms is not None and s.voice_latency_p50_ms >= 0
    # Replayed offline to the same client: the same events, in the same order.
    replay, base_url = start_replay(trace, "--once", "--speed", "0")
    try:
        run = subprocess.run(
            [sys.executable, str(CLIENT), "session"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "sk-offline"},
        )
        out, err = replay.communicate(timeout=30)
    finally:
        replay.kill()
    assert run.returncode == 0, run.stderr[-3000:]
    # The same account, down to a digest of every event the client received, in order.
    assert client["events"] > 100
    assert json.loads(run.stdout) == client
    assert replay.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["mismatches"] == []


def test_a_dropped_session_resumed_on_a_new_connection(tmp_path: Path):
    trace, log, client = record(tmp_path, "resume", RealtimeScript(close_on_response=1))
    report = load(trace).report
    first, dropped, resumed = report.turns
    assert [e["status"] for e in log] == ["completed", "dropped", "completed"]
    assert (first.response_id, first.status) == (log[0]["response_id"], "completed")
    # The close 1011 cut the second turn short.
    assert (dropped.response_id, dropped.status) == (log[1]["response_id"], "error")
    assert dropped.error_code == "websocket_close_1011"
    assert report.connections[0].close_code == 1011
    # On the new connection the client re-created its history: resent, for a lost cache.
    assert resumed.conn == 2 and resumed.response_id == log[2]["response_id"]
    assert resumed.resent_items == client["recreated"] == 3
    assert resumed.input_items == client["recreated"] + 1
    assert (resumed.resent_reason, resumed.cache_loss) == ("cache_loss", "reconnect")
    assert resumed.conversation == first.conversation
    assert report.connection_starts() == {2: "reconnect"}
    assert report.summary.resent_cache_loss_bytes == resumed.resent_bytes > 0
