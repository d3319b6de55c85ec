"""cassetter cassettes, written by cassetter itself: the openai SDK's HTTP calls (YAML and
TOML) and a Responses WebSocket-mode session on the ``websockets`` client (YAML), against
the scripted upstream; read directly by ``tracer inspect`` and by ``tracer import``, with
turns, ids, usage and items equal to the upstream's log."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import cassetter
import pytest
import websockets

from tests.capture.test_record_cli import decompressed
from tests.conftest import assert_clean_error, run_tracer
from tests.export.test_vcr import _calls  # the same three calls as the VCR.py test
from tracer.analysis.load import load
from tracer.trace import open_trace
from tracer.upstream import running_upstream

KEY = "sk-cassetter-0123456789abcdefghijkl"


async def _websocket_session(url: str, turns: int) -> list[str]:
    """A Responses WebSocket-mode client on `websockets`: each turn continues the last."""
    ids: list[str] = []
    headers = {"Authorization": f"Bearer {KEY}"}
    async with websockets.connect(url, additional_headers=headers) as ws:
        for n in range(turns):
            await ws.send(json.dumps({
                "type": "response.create", "model": "gpt-5.6",
                "input": [{"role": "user", "content": f"step {n}"}],
                "previous_response_id": ids[-1] if ids else None,
            }))  # fmt: skip
            while True:
                event = json.loads(await ws.recv())
                if event["type"] == "response.completed":
                    ids.append(event["response"]["id"])
                    break
    return ids


def _inspect(path: Path) -> tuple[list[dict], str]:
    proc = run_tracer("inspect", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["turns"], proc.stderr


@pytest.mark.parametrize("suffix", ["yaml", "toml"])
def test_http_calls_cassetter_recorded(tmp_path: Path, suffix: str):
    cassette = tmp_path / f"agent.{suffix}"
    with running_upstream() as upstream:
        with cassetter.use_cassette(cassette, record_mode="all"):
            ids = _calls(f"http://127.0.0.1:{upstream.port}/v1")["ids"]
        log = list(upstream.engine.log)
    assert cassette.exists()
    turns, stderr = _inspect(cassette)
    assert [t["response_id"] for t in turns] == ids == [e["response_id"] for e in log]
    assert [t["input_tokens"] for t in turns] == [e["usage"]["input_tokens"] for e in log]
    assert [t["output_tokens"] for t in turns] == [e["usage"]["output_tokens"] for e in log]
    assert [t["input_items"] for t in turns] == [e["input_items"] for e in log]
    assert turns[1]["previous_response_id"] == ids[0] and turns[1]["referenced_items"]
    assert "synthesised" in stderr  # a call's duration is not in a cassetter cassette
    out = tmp_path / "agent.trace"
    assert run_tracer("import", str(cassette), "-o", str(out)).returncode == 0
    with open_trace(out) as reader:
        assert reader.header.metadata["times"] == "synthesised"
    assert [t.response_id for t in load(out).report.turns] == ids


def test_a_websocket_session_cassetter_recorded(tmp_path: Path):
    cassette = tmp_path / "ws.yaml"
    with running_upstream() as upstream:
        url = f"ws://127.0.0.1:{upstream.port}/v1/responses"
        with cassetter.use_cassette(cassette, record_mode="all", intercept=["websockets"]):
            ids = asyncio.run(_websocket_session(url, 4))
        log = list(upstream.engine.log)
    assert "ws_interactions:" in cassette.read_text()
    turns, stderr = _inspect(cassette)
    assert [t["response_id"] for t in turns] == ids == [e["response_id"] for e in log]
    assert [t["previous_response_id"] for t in turns] == [e["previous_response_id"] for e in log]
    assert [t["input_tokens"] for t in turns] == [e["usage"]["input_tokens"] for e in log]
    assert [t["cached_tokens"] for t in turns] == [
        e["usage"]["input_tokens_details"]["cached_tokens"] for e in log
    ]
    assert len({t["conn"] for t in turns}) == 1  # one socket, continued turn by turn
    assert "synthesised" not in stderr  # each frame's offset is recorded
    out = tmp_path / "ws.trace"
    assert run_tracer("import", str(cassette), "-o", str(out)).returncode == 0
    with open_trace(out) as reader:
        assert reader.header.metadata["times"] == "recorded"
    assert KEY[:14].encode() not in decompressed(out)


def test_a_damaged_cassetter_cassette_gets_one_line(tmp_path: Path):
    cases = {
        "bad-type.yaml": "version: 1\ninteractions: []\nws_interactions:\n- uri: ws://h/v1/responses\n"
        "  frames:\n  - direction: send\n    frame_type: text\n    body: {type: xml, content: x}\n"
        "    offset_ms: 0\n  recorded_at: 2026-12-04T00:00:00+00:00\n",
        "bad-base64.yaml": "version: 1\ninteractions: []\nws_interactions:\n- uri: ws://h/x\n"
        "  frames:\n  - direction: recv\n    frame_type: binary\n"
        "    body: {type: binary, content: '***'}\n    offset_ms: 0\n"
        "  recorded_at: 2026-12-04T00:00:00+00:00\n",
        "no-time.yaml": "version: 1\ninteractions: []\nws_interactions:\n- uri: ws://h/x\n"
        "  frames: []\n",
        "bad.toml": "version = 1\n[[interactions]\n",
    }
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text)
        assert_clean_error(run_tracer("inspect", str(path)))
        assert_clean_error(run_tracer("import", str(path), "-o", str(tmp_path / "o.trace")))
