"""Raw WebSocket clients against the scripted upstream: cache, lanes, faults, determinism."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tracer.upstream import (
    Fault,
    Script,
    Timing,
    TurnScript,
    UpstreamServer,
    default_script,
)

TERMINAL = {"response.completed", "response.failed", "response.incomplete", "error"}


async def served(script: Script | None = None, **kw) -> UpstreamServer:
    server = UpstreamServer(script, **kw)
    await server.start()
    return server


async def create(ws, **body) -> list[dict]:
    """Send one create and collect its events up to the terminal one."""
    await ws.send(json.dumps({"type": "response.create", "model": "m", **body}))
    events = []
    while True:
        event = json.loads(await ws.recv())
        events.append(event)
        if event["type"] in TERMINAL:
            return events


def run(coro):
    return asyncio.run(coro)


def test_previous_response_id_is_connection_scoped():
    async def main():
        server = await served()
        try:
            async with connect(server.ws_url) as ws:
                first = await create(ws, input="hi")
                rid = first[-1]["response"]["id"]
                again = await create(ws, input="more", previous_response_id=rid)
                assert again[-1]["type"] == "response.completed"
            async with connect(server.ws_url) as other:
                lost = await create(other, input="more", previous_response_id=rid)
            assert lost == [
                {
                    "type": "error",
                    "status": 400,
                    "error": {
                        "type": "invalid_request_error",
                        "code": "previous_response_not_found",
                        "message": f"Previous response with id '{rid}' not found.",
                        "param": "previous_response_id",
                    },
                }
            ]
        finally:
            await server.close()

    run(main())


def test_only_the_latest_response_of_a_lane_is_cached():
    async def main():
        server = await served()
        try:
            async with connect(server.ws_url) as ws:
                r1 = (await create(ws, input="a"))[-1]["response"]["id"]
                r2 = (await create(ws, input="b", previous_response_id=r1))[-1]["response"]["id"]
                stale = await create(ws, input="c", previous_response_id=r1)
                assert stale[-1]["error"]["code"] == "previous_response_not_found"
                fresh = await create(ws, input="c", previous_response_id=r2)
                assert fresh[-1]["type"] == "response.completed"
        finally:
            await server.close()

    run(main())


def test_lanes_interleave_and_a_new_lane_forks():
    slow = Script(turns=(TurnScript(text=" ".join(["word"] * 30)),), timing=Timing(jitter=0))

    async def main():
        server = await served(slow)
        try:
            async with connect(server.ws_url) as ws:
                base = (await create(ws, input="start"))[-1]["response"]["id"]
                for lane in ("a", "b"):
                    await ws.send(
                        json.dumps(
                            {
                                "type": "response.create",
                                "stream_id": lane,
                                "previous_response_id": base,  # both lanes fork the base
                                "input": f"go {lane}",
                            }
                        )
                    )
                order = []
                done = set()
                while len(done) < 2:
                    event = json.loads(await ws.recv())
                    assert event["stream_id"] in ("a", "b")
                    order.append(event["stream_id"])
                    if event["type"] in TERMINAL:
                        assert event["type"] == "response.completed", event
                        assert event["response"]["previous_response_id"] == base
                        done.add(event["stream_id"])
                # Interleaved on the wire: lane a does not finish before lane b starts.
                first_b = order.index("b")
                last_a = len(order) - 1 - order[::-1].index("a")
                assert first_b < last_a
                # The default lane still holds base; lane a's latest is its own response.
                bad = await create(ws, input="x", stream_id="a", previous_response_id=base)
                assert bad[-1]["error"]["code"] == "previous_response_not_found"
                assert bad[-1]["stream_id"] == "a"
                invalid = await create(ws, input="x", stream_id="no spaces allowed")
                assert invalid[-1]["error"]["code"] == "invalid_stream_id"
        finally:
            await server.close()

    run(main())


def test_single_flight_gateway_rejects_a_second_create():
    async def main():
        server = await served(single_flight=True)
        try:
            async with connect(server.ws_url) as ws:
                await ws.send(json.dumps({"type": "response.create", "input": "one"}))
                await ws.send(json.dumps({"type": "response.create", "input": "two"}))
                events = []
                while not any(e["type"] == "response.completed" for e in events):
                    events.append(json.loads(await ws.recv()))
                errors = [e for e in events if e["type"] == "error"]
                assert [e["error"]["code"] for e in errors] == ["response_already_in_flight"]
                # Once the first is done, a new create is accepted.
                after = await create(ws, input="three")
                assert after[-1]["type"] == "response.completed"
        finally:
            await server.close()

    run(main())


@pytest.mark.parametrize("code", [1000, 1001, 1008, 1011, 4000])
def test_injected_close_codes(code):
    script = Script(
        turns=(
            TurnScript(
                text="partial answer here",
                fault=Fault(kind="close", after_events=3, code=code, reason="scripted"),
            ),
        )
    )

    async def main():
        server = await served(script)
        try:
            async with connect(server.ws_url) as ws:
                await ws.send(json.dumps({"type": "response.create", "input": "x"}))
                received = []
                with pytest.raises(ConnectionClosed) as info:
                    while True:
                        received.append(json.loads(await ws.recv()))
                assert len(received) == 3
                assert info.value.rcvd is not None
                assert info.value.rcvd.code == code
                assert info.value.rcvd.reason == "scripted"
        finally:
            await server.close()

    run(main())


def test_injected_drop_and_error_and_eviction():
    script = Script(
        turns=(
            TurnScript(text="ok"),
            TurnScript(text="fails", fault=Fault(kind="error", error_code="server_error")),
        )
    )

    async def main():
        server = await served(script)
        try:
            async with connect(server.ws_url) as ws:
                r1 = (await create(ws, input="a"))[-1]["response"]["id"]
                failed = await create(ws, input="b", previous_response_id=r1)
                assert failed[-1]["type"] == "error"
                assert failed[-1]["error"]["code"] == "server_error"
                # The error evicted what it referenced: the client must resend.
                gone = await create(ws, input="b", previous_response_id=r1)
                assert gone[-1]["error"]["code"] == "previous_response_not_found"
        finally:
            await server.close()

        drop = Script(turns=(TurnScript(text="x y z", fault=Fault(kind="drop", after_events=2)),))
        server = await served(drop)
        try:
            async with connect(server.ws_url) as ws:
                await ws.send(json.dumps({"type": "response.create", "input": "x"}))
                with pytest.raises(ConnectionClosed) as info:
                    while True:
                        await ws.recv()
                assert info.value.rcvd is None  # no close frame: the TCP connection dropped
        finally:
            await server.close()

    run(main())


def test_warmup_and_tool_fallback():
    async def main():
        server = await served(default_script())
        try:
            async with connect(server.ws_url) as ws:
                tools = [{"type": "function", "name": "exec_command", "parameters": {}}]
                warm = await create(ws, input=[], tools=tools, generate=False)
                assert [e["type"] for e in warm] == [
                    "response.created",
                    "response.in_progress",
                    "response.completed",
                ]
                assert warm[-1]["response"]["output"] == []
                rid = warm[-1]["response"]["id"]
                turn = await create(ws, input="go", previous_response_id=rid, tools=tools)
                call = turn[-1]["response"]["output"][-1]
                assert call["type"] == "function_call" and call["name"] == "exec_command"
                assert json.loads(call["arguments"]) == {"cmd": "pwd"}
                other = [{"type": "function", "name": "shell", "parameters": {}}]
                mapped = await create(ws, input="go", tools=other)
                assert mapped[-1]["response"]["output"][-1]["name"] == "shell"
        finally:
            await server.close()

    run(main())


def test_same_script_and_seed_give_byte_identical_events():
    async def session() -> list[bytes]:
        server = await served(default_script())
        frames = []
        try:
            async with connect(server.ws_url, compression=None) as ws:
                prev = None
                tools = [{"type": "function", "name": "exec_command", "parameters": {}}]
                for i in range(4):
                    body = {"type": "response.create", "input": f"step {i}", "tools": tools}
                    if prev:
                        body["previous_response_id"] = prev
                    await ws.send(json.dumps(body))
                    while True:
                        raw = await ws.recv(decode=False)
                        frames.append(raw)
                        event = json.loads(raw)
                        if event["type"] in TERMINAL:
                            prev = event["response"]["id"]
                            break
        finally:
            await server.close()
        return frames

    a = run(session())
    b = run(session())
    assert len(a) > 50
    assert a == b


def test_timing_knobs_are_honoured():
    script = Script(
        turns=(TurnScript(text="one two three four five six"),),
        timing=Timing(ttfe_ms=40, ttft_ms=120, tokens_per_s=50, jitter=0),
    )

    async def main():
        server = await served(script)
        loop = asyncio.get_running_loop()
        try:
            async with connect(server.ws_url) as ws:
                t0 = loop.time()
                await ws.send(json.dumps({"type": "response.create", "input": "x"}))
                stamps = {}
                while True:
                    event = json.loads(await ws.recv())
                    stamps.setdefault(event["type"], loop.time() - t0)
                    if event["type"] in TERMINAL:
                        break
        finally:
            await server.close()
        return stamps

    stamps = run(main())
    assert 0.035 <= stamps["response.created"] < 0.15
    assert 0.115 <= stamps["response.output_text.delta"] < 0.25
    # 6 tokens at 50/s: five more gaps of 20 ms after the first token, then the end.
    generation = stamps["response.completed"] - stamps["response.output_text.delta"]
    assert 0.1 <= generation < 0.3


def test_one_http_framing_layer():
    """Heads, chunks and server-sent events are framed in one place each
    (tracer.wire.http, tracer.responses.sse): no other module writes them by hand."""
    import re

    from tests.conftest import ROOT
    from tracer.responses.sse import SSEDecoder, encode_event
    from tracer.wire.http import LAST_CHUNK, chunk, response_head

    assert response_head(404, [("A", "b")]) == b"HTTP/1.1 404 Not Found\r\nA: b\r\n\r\n"
    assert response_head(200, reason="Connection Established").startswith(
        b"HTTP/1.1 200 Connection Established\r\n"
    )
    assert chunk(b"hello") + LAST_CHUNK == b"5\r\nhello\r\n0\r\n\r\n"
    assert SSEDecoder().feed(encode_event(b'{"a":1}', "x")) == [b'{"a":1}']
    by_hand = re.compile(r'HTTP/1\.1 \{|b"HTTP/1\.1 |%x\\r\\n|0\\r\\n\\r\\n|"event: |"data: ')
    framing = {"wire/http.py", "responses/sse.py"}
    found = [str(p.relative_to(ROOT / "tracer")) for p in (ROOT / "tracer").rglob("*.py")
             if str(p.relative_to(ROOT / "tracer")) not in framing
             and by_hand.search(p.read_text())]  # fmt: skip
    assert found == [], found
