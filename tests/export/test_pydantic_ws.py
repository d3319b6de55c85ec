"""pydantic-ai's WebSocket cassettes (the shape its realtime tests write: each message's
direction and parsed JSON, in order): a Realtime session of a `websockets` client against
the scripted upstream, kept by a recorder of that shape, read by ``tracer inspect`` and
``tracer import`` with the upstream's response ids and usage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from websockets.sync.client import connect

from tests.conftest import assert_clean_error, run_tracer
from tracer.analysis.load import load
from tracer.trace import open_trace
from tracer.upstream import running_upstream


class Recorded:
    """A connection that keeps every message it sends and receives, as the cassette does."""

    def __init__(self, ws: Any) -> None:
        self.ws, self.interactions = ws, []

    def send(self, message: dict[str, Any]) -> None:
        self.interactions.append({"direction": "sent", "data": message})
        self.ws.send(json.dumps(message))

    def recv(self) -> dict[str, Any]:
        message = json.loads(self.ws.recv(timeout=30))
        self.interactions.append({"direction": "received", "data": message})
        return message


def _session(url: str, questions: list[str]) -> list[dict[str, Any]]:
    with connect(url) as ws:
        conn = Recorded(ws)
        conn.send({"type": "session.update",
                   "session": {"type": "realtime", "output_modalities": ["text"]}})  # fmt: skip
        for q in questions:
            conn.send({"type": "conversation.item.create", "item": {
                "type": "message", "role": "user",
                "content": [{"type": "input_text", "text": q}]}})  # fmt: skip
            conn.send({"type": "response.create"})
            while conn.recv()["type"] != "response.done":
                pass
    return conn.interactions


def test_a_realtime_cassette_is_read_with_the_upstreams_figures(tmp_path: Path):
    with running_upstream() as upstream:
        interactions = _session(
            f"ws://127.0.0.1:{upstream.port}/v1/realtime?model=gpt-realtime", ["Hi.", "Again."]
        )
        log = [e for e in upstream.realtime.log if "response_id" in e]
    cassette = tmp_path / "test_realtime_session.yaml"
    cassette.write_text(yaml.safe_dump({"version": 1, "interactions": interactions}))
    proc = run_tracer("inspect", str(cassette), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    turns = data["turns"]
    assert [t["response_id"] for t in turns] == [e["response_id"] for e in log]
    assert {t["protocol"] for t in turns} == {"realtime"}  # told from the messages
    assert [t["output_tokens"] for t in turns] == [e["usage"]["output_tokens"] for e in log]
    assert "synthesised" in proc.stderr
    out = tmp_path / "realtime.trace"
    assert run_tracer("import", str(cassette), "-o", str(out)).returncode == 0
    with open_trace(out) as reader:
        assert reader.header.metadata["times"] == "synthesised"
    assert {t.protocol for t in load(out).report.turns} == {"realtime"}


def test_a_damaged_websocket_cassette_gets_one_line(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\ninteractions:\n- {direction: sent, data: {}}\n- {direction: up}\n")
    assert_clean_error(run_tracer("inspect", str(path)))
