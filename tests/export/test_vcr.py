"""VCR.py cassettes: written by VCR.py itself recording the openai SDK against the scripted
upstream, read by ``tracer inspect`` directly and by ``tracer import`` (figures equal the
upstream's log and the SDK's account); a cassette with ``!!python/object`` tags read
without running anything; ``tracer export -f vcr`` of a recorded session replayed by VCR.py
to the same answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import openai
import pytest
import vcr

from tests.capture.test_record_cli import decompressed
from tests.conftest import ROOT, assert_clean_error, record_client, run_tracer
from tracer.analysis.load import load
from tracer.trace import open_trace
from tracer.upstream import running_upstream

HTTP_CLIENT = ROOT / "tests" / "clients" / "openai_client.py"


def _calls(base_url: str) -> dict:
    """Three calls as an agent makes them: non-streamed, chained, and streamed."""
    client = openai.OpenAI(api_key="sk-vcr-0123456789abcdefghijkl", base_url=base_url,
                           max_retries=0)  # fmt: skip
    warnings.simplefilter("ignore")
    r1 = client.responses.create(model="gpt-5.6", input="Plan the work.", store=True)
    r2 = client.responses.create(
        model="gpt-5.6", input="Go on.", previous_response_id=r1.id, store=True
    )
    with client.responses.stream(model="gpt-5.6", input="And stream it.") as stream:
        r3 = stream.get_final_response()
    return {"ids": [r1.id, r2.id, r3.id], "usage": [r.usage.input_tokens for r in (r1, r2, r3)],
            "texts": [r.output_text for r in (r1, r2, r3)]}  # fmt: skip


def test_a_cassette_vcr_py_wrote_is_read_directly_and_imported(tmp_path: Path):
    cassette = tmp_path / "agent.yaml"
    with running_upstream() as upstream:
        base = f"http://127.0.0.1:{upstream.port}/v1"
        with vcr.use_cassette(str(cassette), record_mode="all"):
            sdk = _calls(base)
        log = list(upstream.engine.log)
    assert "interactions:" in cassette.read_text()
    proc = run_tracer("inspect", str(cassette), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    turns = data["turns"]
    assert [t["response_id"] for t in turns] == sdk["ids"] == [e["response_id"] for e in log]
    assert [t["input_tokens"] for t in turns] == sdk["usage"]
    assert [t["output_tokens"] for t in turns] == [e["usage"]["output_tokens"] for e in log]
    assert turns[1]["previous_response_id"] == sdk["ids"][0] and turns[1]["referenced_items"]
    assert "synthesised" in proc.stderr  # latency figures are not measured, and it says so
    out = tmp_path / "agent.trace"
    assert run_tracer("import", str(cassette), "-o", str(out)).returncode == 0
    with open_trace(out) as reader:
        assert reader.header.metadata["times"] == "synthesised"
    assert [t.response_id for t in load(out).report.turns] == sdk["ids"]
    assert b"sk-vcr-0123456789" not in decompressed(out)
    # Several recordings into one trace: the cassette and a HAR of its own export.
    har = tmp_path / "agent.har"
    assert run_tracer("export", str(out), "-f", "har", "-o", str(har)).returncode == 0
    both = tmp_path / "both.trace"
    proc = run_tracer("import", str(cassette), str(har), "-o", str(both), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["connections"] == 2 * len(log)
    # Both hold the same synthesised times: their calls interleave, each call twice.
    assert sorted(t.response_id for t in load(both).report.turns) == sorted(sdk["ids"] * 2)
    missing = run_tracer("import", str(cassette), str(tmp_path / "nope.har"), "-o", str(both))
    assert_clean_error(missing)


def test_python_tags_in_a_cassette_run_nothing(tmp_path: Path):
    marker = tmp_path / "ran"
    cassette = tmp_path / "hostile.yaml"
    cassette.write_text(
        "interactions:\n"
        "- request:\n"
        f"    body: !!python/object/apply:os.system ['touch {marker}']\n"
        "    headers: {}\n"
        "    method: POST\n"
        "    uri: http://h/v1/responses\n"
        "  response:\n"
        "    body: {string: !!python/object/new:builtins.bytearray [[123, 125]]}\n"
        "    headers: {Content-Type: [application/json]}\n"
        "    status: {code: 200, message: OK}\n"
        "version: 1\n"
    )
    proc = run_tracer("import", str(cassette), "-o", str(tmp_path / "h.trace"))
    assert not marker.exists()
    # Read as plain data: the call has no JSON body to import, and says so.
    assert proc.returncode == 0, proc.stderr
    assert "0 connections" in proc.stdout and "1 other entries skipped" in proc.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("interactions: [unclosed\n")
    assert_clean_error(run_tracer("inspect", str(bad)))
    assert_clean_error(run_tracer("import", str(bad), "-o", str(tmp_path / "b.trace")))


def test_an_exported_cassette_replays_in_vcr_py_to_the_same_answers(tmp_path: Path):
    trace = tmp_path / "http.trace"
    with running_upstream() as upstream:
        _, client = record_client(
            f"http://127.0.0.1:{upstream.port}", trace, [sys.executable, str(HTTP_CLIENT), "http"]
        )
    cassette = tmp_path / "exported.yaml"
    proc = run_tracer("export", str(trace), "-f", "vcr", "-o", str(cassette), "--json")
    assert proc.returncode == 0, proc.stderr
    recorded = load(trace)
    host = next(
        v for k, v in recorded_open_headers(trace) if k.lower() == "host"
    )  # the recorder's address, which the client used
    # Offline: no server listens any more; VCR.py answers from the cassette.
    with vcr.use_cassette(str(cassette), record_mode="none", match_on=["method", "path"]):
        replayed = openai.OpenAI(api_key="sk-offline", base_url=f"http://{host}/v1",
                                 max_retries=0)  # fmt: skip
        first = replayed.responses.create(model="x", input="y")
    assert first.id == client["responses"][0] == recorded.report.turns[0].response_id


def recorded_open_headers(trace: Path) -> list[tuple[str, str]]:
    from tracer.trace.records import Open

    with open_trace(trace) as reader:
        for record in reader:
            if type(record) is Open:
                return list(record.request_headers)
    pytest.fail("no connection in the trace")


PYTEST_RECORDING_TEST = """
import json, os, openai, pytest

@pytest.mark.vcr
def test_agent():
    client = openai.OpenAI(api_key="sk-prec-0123456789abcdefghijkl",
                           base_url=os.environ["UPSTREAM"], max_retries=0)
    r1 = client.responses.create(model="gpt-5.6", input="Plan the work.", store=True)
    r2 = client.responses.create(model="gpt-5.6", input="Go on.", previous_response_id=r1.id)
    with client.responses.stream(model="gpt-5.6", input="And stream it.") as stream:
        r3 = stream.get_final_response()
    with open(os.environ["ACCOUNT"], "w") as f:
        json.dump([r1.id, r2.id, r3.id], f)
"""


def test_a_pytest_recording_cassette(tmp_path: Path):
    """pytest-recording (VCR.py under a pytest marker) records a test of the SDK; its
    cassette imports with the upstream's figures. It runs in a virtualenv of its own
    (tests/setup/install-pytest-recording.sh): its plugin and cassetter's both add
    --record-mode."""
    setup = ROOT / "tests" / "setup" / "install-pytest-recording.sh"
    made = subprocess.run(["bash", str(setup)], capture_output=True, text=True, timeout=900)
    assert made.returncode == 0, made.stderr[-2000:]
    python = made.stdout.strip().splitlines()[-1]
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_agent.py").write_text(PYTEST_RECORDING_TEST)
    account = tmp_path / "account.json"
    with running_upstream() as upstream:
        env = {**os.environ, "UPSTREAM": f"http://127.0.0.1:{upstream.port}/v1",
               "ACCOUNT": str(account), "PYTHONPATH": ""}  # fmt: skip
        proc = subprocess.run(
            [python, "-m", "pytest", "-q", "--record-mode=all", "test_agent.py"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        log = list(upstream.engine.log)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    (cassette,) = (tmp_path / "cassettes").rglob("*.yaml")
    ids = json.loads(account.read_text())
    proc = run_tracer("inspect", str(cassette), "--json")
    assert proc.returncode == 0, proc.stderr
    turns = json.loads(proc.stdout)["turns"]
    assert [t["response_id"] for t in turns] == ids == [e["response_id"] for e in log]
    assert [t["input_tokens"] for t in turns] == [e["usage"]["input_tokens"] for e in log]
    assert [t["input_items"] for t in turns] == [e["input_items"] for e in log]
