"""Injection into a running response (the multi-agent beta), recorded through ``tracer
record`` from a raw WebSocket client: an accepted injection is input of the turn it went
into; a refused one (the response had ended) is shown with its code and counted nowhere.
Ground truth: the client's account (the answers it got) and the upstream's log."""

from __future__ import annotations

import sys
from dataclasses import replace

from tests.conftest import record_client
from tracer.analysis.load import load
from tracer.upstream import Timing, default_script, running_upstream

SCRIPT = replace(default_script(), timing=Timing(ttfe_ms=5.0, ttft_ms=150.0, jitter=0.0))
CLIENT = """
import json, os, sys
from websockets.sync.client import connect

url = os.environ["OPENAI_BASE_URL"].replace("http", "ws", 1) + "/responses"
account = {"ids": [], "accepted": 0, "rejected": []}

def until(ws, kind):
    while True:
        event = json.loads(ws.recv())
        if event["type"] == "response.inject.created":
            account["accepted"] += len(event["input"])
        if event["type"] == "response.inject.failed":
            account["rejected"].append(event["error"]["code"])
        if event["type"] == kind:
            return event

def note(text):
    return [{"role": "user", "content": text}]

with connect(url, additional_headers={"OpenAI-Beta": "responses_multi_agent=v1"}) as ws:
    ws.send(json.dumps({"type": "response.create", "model": "m", "input": note("Start."),
                        "multi_agent": {"enabled": True}}))
    rid = until(ws, "response.created")["response"]["id"]
    ws.send(json.dumps({"type": "response.inject", "response_id": rid,
                        "input": note("Also check the tests.")}))
    until(ws, "response.completed")
    account["ids"].append(rid)
    ws.send(json.dumps({"type": "response.inject", "response_id": rid,
                        "input": note("Too late.")}))
    until(ws, "response.inject.failed")
    ws.send(json.dumps({"type": "response.create", "model": "m", "input": note("Next."),
                        "previous_response_id": rid}))
    account["ids"].append(until(ws, "response.completed")["response"]["id"])
print(json.dumps(account))
"""


def test_an_accepted_and_a_refused_injection(tmp_path):
    client = tmp_path / "client.py"
    client.write_text(CLIENT)
    out = tmp_path / "inject.trace"
    with running_upstream(SCRIPT) as upstream:
        _, account = record_client(
            f"http://127.0.0.1:{upstream.port}", out, [sys.executable, str(client)]
        )
        log = list(upstream.engine.log)
    injects = [e for e in log if e.get("kind") == "inject"]
    assert [e["accepted"] for e in injects] == [True, False]
    assert account["accepted"] == 1 and account["rejected"] == ["response_already_completed"]
    first, second = load(out).report.turns
    assert [first.response_id, second.response_id] == account["ids"]
    # The accepted item is input of the first turn, new; the refused one counts nowhere.
    assert (first.input_items, first.injected_items, first.resent_items) == (2, 1, 0)
    assert first.rejected_injections == account["rejected"]
    assert (second.input_items, second.injected_items, second.rejected_injections) == (1, 0, [])
    assert second.referenced_items > 0 and second.resent_items == 0
