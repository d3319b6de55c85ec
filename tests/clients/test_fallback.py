"""A reconnect storm and a transport fallback from a real client: the Codex CLI, recorded
through ``tracer record``, against a scripted upstream whose WebSocket drops every attempt
at the first answer while HTTP answers. Codex reconnects five times, then falls back to
HTTPS for the rest of the session. Ground truth: Codex's own JSON events and the
upstream's log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from tests.capture.test_record_cli import codex_binary
from tests.conftest import ROOT, record_client, run_tracer
from tracer.analysis.findings import find
from tracer.analysis.load import load
from tracer.upstream import running_upstream
from tracer.upstream.script import Fault, default_script, parse_profile

RETRY_CLIENT = ROOT / "tests" / "clients" / "retry_client.py"


def test_codex_reconnects_then_falls_back_to_http(tmp_path: Path):
    codex = codex_binary()
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir(parents=True)
    home.mkdir()
    script = default_script()
    drop = Fault("drop", after_events=3, repeat=True, transport="websocket")
    turns = (replace(script.turns[0], fault=drop), script.turns[-1])
    script = replace(script, turns=turns, profile=parse_profile("codex"))
    trace = tmp_path / "fallback.trace"
    with running_upstream(script) as upstream:
        proc = subprocess.run(
            [sys.executable, "-m", "tracer", "record",
             "--upstream", f"http://127.0.0.1:{upstream.port}/v1", "-o", str(trace), "--",
             str(codex), "exec", "--json", "--skip-git-repo-check",
             "--dangerously-bypass-approvals-and-sandbox", "-m", "gpt-5.1-codex",
             "Look around and report."],
            cwd=work, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
            env={**os.environ, "CODEX_HOME": str(home), "OPENAI_API_KEY": "sk-test-fallback"},
        )  # fmt: skip
        log = list(upstream.engine.log)
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    said = [e.get("message") or e.get("item", {}).get("message") or "" for e in events]
    # "Reconnecting... N/5": Codex's count of its reconnects (its first is not printed).
    reconnects = max(int(m.split()[1].split("/")[0]) for m in said if m.startswith("Reconn"))
    assert any(m.startswith("Falling back from WebSockets to HTTPS") for m in said), said
    dropped = [e for e in log if e.get("fault") == "drop"]
    assert {e["transport"] for e in dropped} == {"websocket"}
    assert len(dropped) == reconnects + 1  # the first attempt, then each reconnect
    http = [e for e in log if e["transport"] == "http"]
    assert http and all(e["status"] == "completed" for e in http)

    report = load(trace).report
    found = {f.code: f for f in find(report)}
    storm, fallback = found["reconnect_storm"], found["transport_fallback"]
    # Every attempt at the create: the dropped ones over WebSocket, then the one over HTTP.
    assert storm.figures["attempts"] == len(dropped) + 1
    assert storm.figures["errors"] == {"connection_dropped": len(dropped)}
    ids = [t.response_id for t in report.turns]
    assert [ids[i] for i in storm.turns] == [e["response_id"] for e in dropped] + [
        http[0]["response_id"]
    ]
    assert len({report.turns[i].conn for i in storm.turns}) == len(dropped) + 1
    assert fallback.figures["websocket_attempts"] == len(dropped)
    assert fallback.figures["http_turns"] == len(http)
    assert found["cut_short"].turns == storm.turns[:-1]
    # The one-line summary in the CLI names them too, and --fail-on catches the fallback.
    fail = run_tracer("findings", str(trace), "--fail-on", "transport_fallback")
    assert fail.returncode == 3 and "transport_fallback" in fail.stdout


def test_the_openai_sdk_retries_a_create_after_a_5xx(tmp_path: Path):
    """The SDK's own retry of a create the service failed with a 500: one retried_create,
    its attempts the SDK's count (``retries_taken``) and the upstream's log."""
    script = default_script()
    error = Fault("error", status=500, error_code="server_error")
    script = replace(script, turns=(replace(script.turns[-1], fault=error),))
    trace = tmp_path / "retry.trace"
    with running_upstream(script) as upstream:
        _, client = record_client(
            f"http://127.0.0.1:{upstream.port}/v1", trace, [sys.executable, str(RETRY_CLIENT)]
        )
        log = list(upstream.engine.log)
    assert client["retries"] == 1 and [e["status"] for e in log] == ["error", "completed"]
    report = load(trace).report
    (f,) = [f for f in find(report) if f.code == "retried_create"]
    first, last = (report.turns[i] for i in f.turns)
    assert (first.status, first.error_code) == ("error", "server_error")
    assert last.response_id == client["id"] == log[-1]["response_id"]
    assert last.retry_of == first.index and f.bytes == first.request_bytes
    assert {"reconnect_storm", "transport_fallback"}.isdisjoint(x.code for x in find(report))
