"""The scripted upstream's Realtime endpoint as a table (its sans-I/O engine: client events
in, server events out) and its script table, read from a file."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.conftest import run_tracer
from tracer.upstream.realtime import RealtimeEngine, RealtimeScript, tone
from tracer.upstream.script import Script, ScriptError


def append(ms: int, loud: bool) -> dict[str, object]:
    audio = tone(ms) if loud else tone(ms, amplitude=0)
    return {"type": "input_audio_buffer.append", "audio": base64.b64encode(audio).decode()}


def kinds(replies) -> list[str]:
    return [r.event["type"] for r in replies]


def test_the_detection_counts_silence_in_audio_time():
    conn = RealtimeEngine(RealtimeScript(silence_duration_ms=200)).connection()
    assert kinds(conn.opening()) == ["session.created"]
    out, response = conn.receive(append(100, loud=False))
    assert out == [] and response is None  # silence before speech: nothing
    out, _ = conn.receive(append(100, loud=True))
    assert kinds(out) == ["input_audio_buffer.speech_started"]
    assert out[0].event["audio_start_ms"] == 100
    out, response = conn.receive(append(180, loud=False))
    assert out == [] and response is None  # 180 ms of silence: not yet
    out, response = conn.receive(append(20, loud=False))
    assert kinds(out) == [
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    assert out[0].event["audio_end_ms"] == 400
    assert response is not None and response.trigger == "vad"
    assert response.input_audio_s == 0.4  # all the buffer held when it was committed


def test_a_second_create_while_one_runs_is_refused_and_speech_cancels():
    conn = RealtimeEngine().connection()
    conn.opening()
    _, first = conn.receive({"type": "response.create"})
    assert first is not None
    out, again = conn.receive({"type": "response.create"})
    assert again is None and out[0].event["error"]["code"] == (
        "conversation_already_has_active_response"
    )
    conn.receive(append(40, loud=True))  # the speaker talks over it
    assert first.cancelled and first.reason == "turn_detected"
    done = conn.finish(first)["response"]
    assert done["status"] == "cancelled" and done["status_details"]["reason"] == "turn_detected"


def test_the_realtime_table_of_a_script(tmp_path: Path):
    path = tmp_path / "s.toml"
    path.write_text('[realtime]\nfirst_audio_ms = 120\nanswers = ["Bonjour."]\n')
    script = Script.load(path)
    assert script.realtime.first_audio_ms == 120.0 and script.realtime.answers == ("Bonjour.",)
    assert RealtimeEngine(script.realtime).script.first_audio_ms == 120.0


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ({"first_audio_ms": -1}, "'first_audio_ms' must be >= 0"),
        ({"nope": 1}, "unknown key(s) ['nope']"),
        ({"answers": []}, "non-empty list of strings"),
        ({"chunk_ms": 0}, "'chunk_ms' must be > 0"),
        ({"model": 3}, "'model' must be str"),
    ],
)
def test_a_bad_realtime_table_is_one_clear_error(table, error, tmp_path: Path):
    with pytest.raises(ScriptError, match=None) as info:
        Script.from_dict({"realtime": table})
    assert error in str(info.value)
    path = tmp_path / "bad.json"
    path.write_text(__import__("json").dumps({"realtime": table}))
    proc = run_tracer("upstream", "--script", str(path), timeout=30)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert error in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_context_management_compacts_past_its_threshold():
    from tracer.upstream import Engine, default_script

    def output(threshold: int) -> list[str]:
        conn = Engine(default_script()).connection()
        plan = conn.start(
            {
                "model": "m",
                "input": "x" * 400,
                "context_management": [{"type": "compaction", "compact_threshold": threshold}],
            }
        )
        done = [s.event for s in plan.steps if s.event["type"] == "response.completed"]
        return [o["type"] for o in done[0]["response"]["output"]]

    assert output(10)[0] == "compaction"  # the context (about 100 tokens) passed 10
    assert "compaction" not in output(10_000)
