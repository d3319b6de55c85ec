"""A HAR of non-streamed JSON calls (the SDKs' default), as a capture tool writes one: the
openai SDK's own HTTP client (httpx) records each request and response it exchanged with
the scripted upstream, with its times, into HAR 1.2 entries. ``tracer import`` makes them
turns; ids, usage and items equal the SDK's account and the upstream's log, and the
compact call is a turn of its own kind."""

from __future__ import annotations

import json
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openai

from tests.capture.test_record_cli import decompressed
from tests.conftest import run_tracer
from tracer.analysis.load import load
from tracer.trace import open_trace
from tracer.upstream import running_upstream


class HarCapture:
    """HAR entries of every exchange an httpx client makes (its event hooks)."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self._sent: dict[int, float] = {}

    def request(self, request: httpx.Request) -> None:
        self._sent[id(request)] = time.time()

    def response(self, response: httpx.Response) -> None:
        response.read()
        started = self._sent.pop(id(response.request))
        waited = (time.time() - started) * 1000
        request = response.request
        self.entries.append({
            "startedDateTime": datetime.fromtimestamp(started, UTC).isoformat(),
            "time": waited,
            "request": {
                "method": request.method, "url": str(request.url), "httpVersion": "HTTP/1.1",
                "headers": [{"name": k, "value": v} for k, v in request.headers.items()],
                "queryString": [], "cookies": [], "headersSize": -1,
                "bodySize": len(request.content),
                "postData": {"mimeType": "application/json", "text": request.content.decode()},
            },
            "response": {
                "status": response.status_code, "statusText": "", "httpVersion": "HTTP/1.1",
                "headers": [{"name": k, "value": v} for k, v in response.headers.items()],
                "cookies": [], "redirectURL": "", "headersSize": -1,
                "bodySize": len(response.content),
                "content": {"size": len(response.content),
                            "mimeType": response.headers.get("content-type", ""),
                            "text": response.text},
            },
            "cache": {},
            "timings": {"send": 0, "wait": waited, "receive": 0},
        })  # fmt: skip

    def har(self) -> dict[str, Any]:
        creator = {"name": "httpx event hooks", "version": httpx.__version__}
        return {"log": {"version": "1.2", "creator": creator, "entries": self.entries}}


def test_a_har_of_non_streamed_calls_imports_as_turns(tmp_path: Path):
    capture = HarCapture()
    hooks = {"request": [capture.request], "response": [capture.response]}
    with running_upstream() as upstream:
        client = openai.OpenAI(
            api_key="sk-har-0123456789abcdefghij",
            base_url=f"http://127.0.0.1:{upstream.port}/v1",
            http_client=httpx.Client(event_hooks=hooks),
            max_retries=0,
        )
        warnings.simplefilter("ignore")
        r1 = client.responses.create(model="gpt-5.6", input="Plan the work.")
        r2 = client.responses.create(model="gpt-5.6", input="Go on.", previous_response_id=r1.id)
        c = client.responses.compact(model="gpt-5.6", previous_response_id=r2.id)
        log = list(upstream.engine.log)
    har = tmp_path / "calls.har"
    har.write_text(json.dumps(capture.har()))
    out = tmp_path / "calls.trace"
    proc = run_tracer("import", str(har), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "skipped" not in proc.stdout + proc.stderr
    report = load(out).report
    turns = report.turns
    assert [t.response_id for t in turns] == [r1.id, r2.id, c.id] == [e["response_id"] for e in log]
    assert [t.kind for t in turns] == ["response", "response", "compaction"]
    assert [t.transport for t in turns] == ["http"] * 3
    for t, e in zip(turns, log, strict=True):
        assert t.input_tokens == e["usage"]["input_tokens"]
        assert t.output_tokens == e["usage"]["output_tokens"]
        if t.kind == "response":  # a compact call's log counts the chain it compacted
            assert t.input_items == e["input_items"]
    assert turns[1].previous_response_id == r1.id and turns[1].referenced_items > 0
    assert turns[0].duration_ms is not None and turns[0].duration_ms > 0
    with open_trace(out) as reader:
        assert reader.header.metadata["times"] == "recorded"
    assert b"sk-har-0123456789" not in decompressed(out)
    text = run_tracer("inspect", str(out)).stdout
    assert "3 turns (1 compaction)" in text
