"""HTTP capture: the official openai SDK's ordinary streaming client through `tracer record`."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from pathlib import Path

from tests.capture.test_record_cli import decompressed
from tests.conftest import run_tracer
from tracer.analysis import analyse
from tracer.capture.proxy import RecordingProxy
from tracer.capture.recorder import Recorder
from tracer.trace import Close, Direction, Frame, Open, open_trace
from tracer.upstream import Call, Script, TurnScript, running_upstream

FAKE_KEY = "sk-proj-httpcapture0123456789abcdefghijklmnop"

SDK_CLIENT = textwrap.dedent(
    """
    import json, sys
    import openai

    mode, key = sys.argv[1], sys.argv[2]
    tools = [{"type": "function", "name": "lookup",
              "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}]
    client = openai.OpenAI(api_key=key)  # base URL from OPENAI_BASE_URL: the proxy
    texts = []

    def follow_up(response):
        calls = [o for o in response.output if o.type == "function_call"]
        return [{"type": "function_call_output", "call_id": c.call_id, "output": "42"}
                for c in calls]

    if mode == "http":
        prev, items = None, f"my key is {key}"
        while True:
            stream = client.responses.create(
                model="m", input=items, tools=tools, stream=True, store=True,
                previous_response_id=prev)
            done = None
            for event in stream:
                if event.type == "response.completed":
                    done = event.response
            texts.append(done.output_text)
            items, prev = follow_up(done), done.id
            if not items:
                break
    else:
        with client.responses.connect() as conn:
            conn.response.create(model="m", input=f"my key is {key}", tools=tools, store=True)
            for event in conn:
                if event.type == "error":
                    sys.exit(f"error event: {event}")
                if event.type != "response.completed":
                    continue
                texts.append(event.response.output_text)
                items = follow_up(event.response)
                if not items:
                    break
                conn.response.create(model="m", previous_response_id=event.response.id,
                                     tools=tools, store=True, input=items)
    print(json.dumps({"texts": texts}))
    """
)

SCRIPT = Script(
    turns=(
        TurnScript(text="Looking it up.", calls=(Call("lookup", '{"q":"a"}'),)),
        TurnScript(text="Once more.", calls=(Call("lookup", '{"q":"b"}'),)),
        TurnScript(text="The answer is 42."),
    )
)

# Figures that depend on what the agent did, not on the transport that carried it.
SAME = (
    "status", "input_items", "input_bytes", "resent_items",
    "resent_bytes", "referenced_items", "output_items", "input_tokens", "output_tokens",
    "model", "warmup",
)  # fmt: skip


def _record(tmp_path: Path, mode: str) -> tuple[Path, list[str]]:
    client_file = tmp_path / "client.py"
    client_file.write_text(SDK_CLIENT)
    out = tmp_path / f"{mode}.trace"
    with running_upstream(SCRIPT) as upstream:
        proc = run_tracer(
            "record", "--upstream", f"http://127.0.0.1:{upstream.port}", "-o", str(out),
            "--", sys.executable, str(client_file), mode, FAKE_KEY,
            timeout=120,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out, json.loads(proc.stdout.splitlines()[-1])["texts"]


def test_sdk_http_streaming_session_analyses_like_its_websocket_twin(tmp_path: Path):
    http_trace, http_texts = _record(tmp_path, "http")
    ws_trace, ws_texts = _record(tmp_path, "ws")
    assert http_texts == ws_texts == ["Looking it up.", "Once more.", "The answer is 42."]

    with open_trace(http_trace) as reader:
        records = list(reader)
    opens = [r for r in records if type(r) is Open]
    assert [o.transport for o in opens] == ["http"] * 3  # one connection per request
    assert all(o.status == 200 and o.handshake_ns is not None for o in opens)
    for o in opens:
        frames = [r for r in records if type(r) is Frame and r.conn == o.conn]
        assert frames[0].direction is Direction.CLIENT
        assert json.loads(frames[0].payload)["stream"] is True
        events = [json.loads(f.payload)["type"] for f in frames[1:]]
        assert events[0] == "response.created" and events[-1] == "response.completed"
        assert all(f.direction is Direction.SERVER for f in frames[1:])
    assert sum(type(r) is Close for r in records) == 3

    with open_trace(http_trace) as reader:
        http = analyse(reader)
    with open_trace(ws_trace) as reader:
        ws = analyse(reader)
    assert [t.transport for t in http.turns] == ["http"] * 3
    assert [t.transport for t in ws.turns] == ["websocket"] * 3
    for a, b in zip(http.turns, ws.turns, strict=True):
        assert {k: getattr(a, k) for k in SAME} == {k: getattr(b, k) for k in SAME}
        assert (a.previous_response_id is None) == (b.previous_response_id is None)
        assert a.ttft_ms is not None and a.duration_ms is not None
        assert a.handshake_ms is not None  # every HTTP turn pays for a new connection
    assert sum(t.handshake_ms is not None for t in ws.turns) == 1
    assert http.summary.connections == 3 and ws.summary.connections == 1
    assert http.turns[1].referenced_items == ws.turns[1].referenced_items > 0

    proc = run_tracer("diff", str(http_trace), str(ws_trace), "--json")
    diff = json.loads(proc.stdout)
    assert len(diff["turns"]) == 3
    assert all(row["a"] is not None and row["b"] is not None for row in diff["turns"])

    for trace in (http_trace, ws_trace):
        raw = decompressed(trace)
        assert FAKE_KEY.encode() not in raw and FAKE_KEY[3:].encode() not in raw


def test_other_http_requests_are_forwarded_not_recorded(tmp_path: Path):
    async def main() -> None:
        recorder = Recorder(tmp_path / "t.trace")
        with running_upstream(SCRIPT) as upstream:
            proxy = RecordingProxy(f"http://127.0.0.1:{upstream.port}", recorder)
            await proxy.start()
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
                for _ in range(2):  # keep-alive: two requests on one client connection
                    writer.write(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                    await writer.drain()
                    status = await reader.readuntil(b"\r\n")
                    head = await reader.readuntil(b"\r\n\r\n")
                    assert b"chunked" in head.lower()
                    body = b""
                    while (size := int(await reader.readuntil(b"\r\n"), 16)) != 0:
                        body += await reader.readexactly(size + 2)
                    await reader.readuntil(b"\r\n")
                    assert status.split()[1] in (b"200", b"404")
                writer.close()
            finally:
                await proxy.close()
        recorder.close()

    asyncio.run(main())
    with open_trace(tmp_path / "t.trace") as reader:
        assert not [r for r in reader if type(r) in (Open, Frame)]


def test_unreachable_upstream_gives_502_and_records_the_failed_turn(tmp_path: Path):
    async def main() -> bytes:
        recorder = Recorder(tmp_path / "t.trace")
        proxy = RecordingProxy("http://127.0.0.1:9", recorder)  # discard port: nothing listens
        await proxy.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            body = b'{"model":"m","input":"hi","stream":true}'
            writer.write(
                b"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
            answer = await reader.readuntil(b"\r\n\r\n")
            writer.close()
        finally:
            await proxy.close()
            recorder.close()
        return answer

    answer = asyncio.run(main())
    assert answer.startswith(b"HTTP/1.1 502")
    with open_trace(tmp_path / "t.trace") as reader:
        records = list(reader)
    (op,) = [r for r in records if type(r) is Open]
    (close,) = [r for r in records if type(r) is Close]
    assert op.transport == "http" and op.status == 502
    assert "cannot reach upstream" in (close.error or "")
