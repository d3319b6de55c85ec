"""claude-tap's JSONL traces: claude-tap itself (its own virtualenv, installed by
tests/setup/install-claude-tap.sh) proxies the openai SDK to the scripted upstream over
HTTP (not streamed and streamed) and in WebSocket mode; its store exports the session as
JSONL, which ``tracer inspect`` reads with the upstream's ids, usage and items."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, assert_clean_error, run_tracer
from tests.hardening.helpers import free_port, wait_for_port
from tracer.analysis.load import load
from tracer.trace import open_trace
from tracer.upstream import running_upstream

CLIENT = ROOT / "tests" / "clients" / "openai_client.py"
KEY = "sk-claude-tap-0123456789abcdefghij"
EXPORT = (
    "import sys\nfrom claude_tap.trace_store import get_trace_store\n"
    "sys.stdout.write(get_trace_store().export_jsonl(sys.argv[1]))\n"
)


@pytest.fixture(scope="module")
def claude_tap() -> Path:
    script = ROOT / "tests" / "setup" / "install-claude-tap.sh"
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return Path(proc.stdout.strip().splitlines()[-1])


def test_a_claude_tap_trace_is_read(claude_tap: Path, tmp_path: Path):
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    accounts = []
    with running_upstream() as upstream:
        port = free_port()
        proxy = subprocess.Popen(
            [str(claude_tap / "claude-tap"), "--tap-client", "codex",
             "--tap-target", f"http://127.0.0.1:{upstream.port}", "--tap-host", "127.0.0.1",
             "--tap-port", str(port), "--tap-no-launch", "--tap-output-dir", str(tmp_path),
             "--tap-no-live", "--tap-no-open", "--tap-no-update-check", "--tap-no-auto-update"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            wait_for_port(port, timeout=60)
            client_env = {**os.environ, "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1",
                          "OPENAI_API_KEY": KEY}  # fmt: skip
            for mode in ("http", "http-sse", "websocket"):
                proc = subprocess.run([sys.executable, str(CLIENT), mode], env=client_env,
                                      capture_output=True, text=True, timeout=120)  # fmt: skip
                assert proc.returncode == 0, proc.stderr[-2000:]
                accounts.append(json.loads(proc.stdout.splitlines()[-1]))
        finally:
            proxy.send_signal(signal.SIGINT)
            out, _ = proxy.communicate(timeout=60)
        log = list(upstream.engine.log)
    session = re.search(r"Trace session: (\S+)", out)
    assert session, out[-2000:]
    export = subprocess.run([str(claude_tap / "python"), "-c", EXPORT, session.group(1)],
                            env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert export.returncode == 0, export.stderr[-2000:]
    jsonl = tmp_path / "session.jsonl"
    jsonl.write_text(export.stdout)
    ids = [rid for account in accounts for rid in account["responses"]]
    proc = run_tracer("inspect", str(jsonl), "--json")
    assert proc.returncode == 0, proc.stderr
    turns = json.loads(proc.stdout)["turns"]
    assert [t["response_id"] for t in turns] == ids == [e["response_id"] for e in log]
    assert [t["input_tokens"] for t in turns] == [e["usage"]["input_tokens"] for e in log]
    assert [t["cached_tokens"] for t in turns] == [
        e["usage"]["input_tokens_details"]["cached_tokens"] for e in log
    ]
    assert [t["input_items"] for t in turns] == [e["input_items"] for e in log]
    assert [t["previous_response_id"] for t in turns] == [e["previous_response_id"] for e in log]
    per_mode = len(accounts[-1]["responses"])  # the WebSocket session: one connection
    assert len({t["conn"] for t in turns[-per_mode:]}) == 1
    assert "synthesised" in proc.stderr
    out_trace = tmp_path / "session.trace"
    assert run_tracer("import", str(jsonl), "-o", str(out_trace)).returncode == 0
    with open_trace(out_trace) as reader:
        assert reader.header.metadata["times"] == "synthesised"
    assert [t.response_id for t in load(out_trace).report.turns] == ids


def test_json_lines_of_another_shape_are_named(tmp_path: Path):
    other = tmp_path / "other.jsonl"
    other.write_text('{"event": "x"}\n{"event": "y"}\n')
    proc = run_tracer("inspect", str(other))
    assert_clean_error(proc)
    assert "JSON lines" in proc.stderr
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"request": {}, "response": {}, "request_id": 1, "duration_ms": 1}\n{\n')
    proc = run_tracer("inspect", str(broken))
    assert_clean_error(proc)
    assert "line 2" in proc.stderr
