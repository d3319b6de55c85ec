"""The views of a voice session and of a connection no protocol claims, from trace files on
disk through the CLI: they speak of voice in its own terms, and say what is not understood."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from tests.analysis.test_report import SCHEMA
from tests.conftest import run_tracer
from tests.protocols.test_models import SESSION, C, S, done, pcm, rt, script
from tracer.trace import TraceWriter
from tracer.trace.records import Record


def write(path: Path, records: list[Record]) -> Path:
    with path.open("wb") as f, TraceWriter(f) as w:
        for r in records:
            w.write(r)
    return path


def voice_trace(tmp_path: Path) -> Path:
    return write(
        tmp_path / "voice.trace",
        script(
            "wss://h/v1/realtime",
            [
                (0, S, SESSION),
                (1, C, rt("input_audio_buffer.append", audio=pcm(600))),
                (100, S, rt("input_audio_buffer.speech_stopped", audio_end_ms=500, item_id="u1")),
                (101, S, rt("input_audio_buffer.committed", item_id="u1")),
                (102, S, rt("response.created", response={"id": "resp_voice_1"})),
                (
                    350,
                    S,
                    rt(
                        "response.output_audio.delta",
                        response_id="resp_voice_1",
                        item_id="a",
                        delta=pcm(900),
                    ),
                ),
                (360, S, done("resp_voice_1")),
            ],
            close=(400, 1000),
        ),
    )


def test_inspect_speaks_of_a_voice_session_in_its_terms(tmp_path: Path):
    trace = voice_trace(tmp_path)
    out = run_tracer("inspect", str(trace), env_extra={"COLUMNS": "160"}).stdout
    assert "1 connection (Realtime API), 1 turn" in out
    assert "voice: 0.50 s of audio in, 0.90 s out" in out
    assert "p50 250ms" in out and "what the speaker waits p50 650ms" in out
    assert "vad" in out and "No Responses API turns" not in out
    data = json.loads(run_tracer("inspect", str(trace), "--json").stdout)
    jsonschema.validate(data, SCHEMA)
    (turn,) = data["turns"]
    assert turn["protocol"] == "realtime" and turn["trigger"] == "vad"
    assert turn["voice"]["voice_latency_ms"] == 250.0
    assert data["connections"][0]["protocol"] == "realtime"
    latency = run_tracer("latency", str(trace), env_extra={"COLUMNS": "160"}).stdout
    assert "voice latency (speech end to first audio): p50 250ms" in latency
    assert "voice turns: ░ speech end (or the create) → the response starts" in latency
    assert latency.rstrip().splitlines()[-2].rstrip().endswith(" vad")  # the turn's row
    detail = run_tracer("turn", str(trace), "0").stdout
    assert "the server heard the speaker stop" in detail and "voice latency 250ms" in detail
    report = tmp_path / "r.html"
    assert run_tracer("report", str(trace), "-o", str(report)).returncode == 0
    page = report.read_text()
    assert 'id="voice"' in page and "voice latency p50 / p90" in page


def test_a_connection_no_protocol_claims_is_said_to_be_not_understood(tmp_path: Path):
    trace = write(
        tmp_path / "unknown.trace",
        script(
            "wss://h/v1/agents/stream",
            [
                (0, C, {"hello": {"model": "some-live-model"}}),
                (5, S, {"welcome": {}}),
            ],
            close=(9, 1000),
        ),
    )
    out = run_tracer("inspect", str(trace), env_extra={"COLUMNS": "160"}).stdout
    assert "1 connection (not understood), 0 turns" in out
    assert "a protocol tracer does not understand" in out and "not understood" in out
    data = json.loads(run_tracer("inspect", str(trace), "--json").stdout)
    jsonschema.validate(data, SCHEMA)
    assert data["turns"] == [] and data["connections"][0]["protocol"] is None
    assert data["summary"]["unknown_connections"] == 1
    report = tmp_path / "r.html"
    run_tracer("report", str(trace), "-o", str(report))
    assert "does not understand" in report.read_text()


def test_demo_realtime_records_and_explains_a_voice_session(tmp_path: Path):
    out = tmp_path / "voice.trace"
    proc = run_tracer("demo", "--realtime", "-o", str(out), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["verify"]["ok"] and data["errors"] == []
    s = data["summary"]
    # The agent's account: three text turns, then it spoke four times, once over an answer,
    # so the server answered four times on its own (one answer cut short).
    assert data["spoken_turns"] == 4 and data["turns"] == 3 + 4
    assert s["voice_turns"] == data["turns"] and s["protocols"] == {"realtime": 1}
    assert s["interruptions"] == 1 and s["voice_latency_p50_ms"] >= 40
    text = run_tracer("demo", "--realtime", "-o", str(out), env_extra={"COLUMNS": "160"}).stdout
    assert "the voice agent ran 7 turns, 4 of them spoken" in text
    assert "1 connection (Realtime API)" in text


def test_the_tui_shows_a_voice_turn_in_its_terms(tmp_path: Path):
    from rich.console import Console

    from tracer.analysis.load import load
    from tracer.tui.render import summary_text, turn_text

    report = load(voice_trace(tmp_path)).report
    console = Console(width=100, record=True)
    console.print(summary_text(report))
    console.print(turn_text(report.turns[0], None))
    text = console.export_text()
    assert "voice p50 250ms" in text and "voice latency 250ms" in text
    assert "the speaker waits 650ms" in text and "previous_response_id" not in text
