"""Gemini Live from its real client: the google-genai SDK's live sessions, at the SDK's
own endpoint (generativelanguage.googleapis.com), recorded through ``tracer record
--forward`` against the scripted upstream standing in for that host. A text turn, a
tool-call round and a spoken turn; every figure checked against the upstream's log and the
SDK's own account."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import trustme

from tests.analysis.paths import assert_both_paths_agree
from tests.capture.test_record_cli import decompressed
from tests.conftest import ROOT
from tracer.analysis.load import load
from tracer.upstream import Call, Script, TurnScript, running_upstream
from tracer.upstream.gemini import AUDIO_TOKENS_PER_S

HOST = "generativelanguage.googleapis.com"
CLIENT = ROOT / "tests" / "clients" / "gemini_client.py"
KEY = "AIzaSyTEST0123456789abcdefghijklmnopqr"
SCRIPT = Script(
    turns=(
        TurnScript(text="The answer is 42."),
        TurnScript(calls=(Call("lookup", '{"q": "answer"}'),)),
        TurnScript(text="Found it: 42."),
    ),
    seed=3,
)


def test_the_google_genai_live_client_recorded_and_explained(tmp_path: Path):
    pytest.importorskip("google.genai")
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(HOST).configure_cert(tls)
    trace = tmp_path / "gemini.trace"
    with running_upstream(SCRIPT, tls=tls, names=[HOST]) as upstream:
        proc = subprocess.run(
            [sys.executable, "-m", "tracer", "record", "--forward",  # Gemini's host by default
             "--connect-to", f"{HOST}:443:127.0.0.1:{upstream.port}",
             "--upstream-ca", str(ca_file), "-o", str(trace), "--",
             sys.executable, str(CLIENT)],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "GEMINI_API_KEY": KEY},
        )  # fmt: skip
        log = list(upstream.gemini.log)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sdk = json.loads(proc.stdout.strip().splitlines()[-1])
    report = load(trace).report
    assert_both_paths_agree(trace)
    turns = report.turns
    assert report.summary.protocols == {"gemini-live": 3}
    assert len(turns) == len(log) == 6
    assert [t.trigger for t in turns] == [e["trigger"] for e in log] == [
        "client", "client", "client", "vad", "client", "client",
    ]  # fmt: skip
    assert [t.model for t in turns] == [e["model"] for e in log]
    for t, entry in zip(turns, log, strict=True):
        usage = entry["usage"]
        assert t.input_tokens == usage["promptTokenCount"]
        assert t.output_tokens == usage["responseTokenCount"]
        assert t.status == "completed"
    # The SDK's own account of the usage it was sent, turn by turn.
    said = [*sdk["text"]["usage"], *sdk["spoken"]["usage"], *sdk["resumed"]["usage"]]
    assert [(t.input_tokens, t.output_tokens) for t in turns] == [
        (u["prompt"], u["response"]) for u in said
    ]
    # The tool round: the call the SDK answered, then the answer that used it.
    assert sdk["text"]["calls"] == ["lookup"] and turns[1].output_items == 1
    assert turns[2].input_items == 1 and turns[2].referenced_items > 0
    # The spoken turn: the audio each way, and its tokens by modality.
    spoken = turns[3]
    assert spoken.voice is not None
    assert spoken.voice.input_audio_s == sdk["spoken"]["sent"] / 32_000
    assert spoken.voice.output_audio_s == sdk["spoken"]["audio_bytes"] / 48_000
    assert sdk["spoken"]["audio_bytes"] == log[3]["output_audio_bytes"]
    audio_in = round(log[3]["input_audio_bytes"] / 32_000 * AUDIO_TOKENS_PER_S)
    assert spoken.input_audio_tokens == audio_in
    assert spoken.voice.speech_end == "estimate" and spoken.voice.voice_latency_ms is not None
    assert spoken.voice.voice_latency_ms > 0
    assert sdk["spoken"]["handles"] == ["handle_2_1"]
    # The third connection resumed the spoken session by its handle: the same conversation,
    # holding what the session held (the upstream's prompt counts the resumed context).
    resumed = turns[4]
    assert resumed.conn != spoken.conn and resumed.conversation == spoken.conversation
    assert resumed.referenced_items == spoken.input_items + spoken.output_items
    held = log[3]["usage"]["promptTokenCount"] + log[3]["usage"]["responseTokenCount"]
    assert log[4]["usage"]["promptTokenCount"] > held and resumed.input_tokens > held
    assert turns[0].conversation != spoken.conversation  # the text session is another
    assert sdk["resumed"]["calls"] == ["lookup"] and sdk["resumed"]["text"] == "Found it: 42."
    assert turns[5].conversation == spoken.conversation
    assert KEY.encode() not in decompressed(trace)
