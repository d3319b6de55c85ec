"""Re-send a recorded client side to a live server, preserving its chains, and record it:
WebSocket connections message by message, HTTP requests one by one, in recorded order."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from websockets.frames import Opcode as WsOpcode

from tracer.analysis.items import identity
from tracer.capture.recorder import Recorder
from tracer.capture.tap import tap_websocket
from tracer.protocols.turns import dict_items, loads
from tracer.replay.recorded import Exchange, RecordedConnection, RecordedRequest, payload_of
from tracer.responses.sse import SSEDecoder
from tracer.trace.records import Direction, Opcode
from tracer.wire import WebSocket, connect_websocket
from tracer.wire.http import read_response_head, request_head, response_body

__all__ = ["RerunResult", "rerun"]

TERMINAL = ("response.completed", "response.failed", "response.incomplete", "error")


@dataclass(slots=True)
class RerunResult:
    """What a rerun sent and got back."""

    connections: int = 0
    messages: int = 0
    turns: int = 0
    errors: list[str] = field(default_factory=list)
    rewritten_ids: int = 0  # previous_response_id values mapped to the new server's ids
    made_incremental: int = 0  # full resends turned into chained creates


def _recorded_response(exchange: Exchange) -> dict[str, Any]:
    """The response object the recorded server sent last for this exchange, if any."""
    found: dict[str, Any] = {}
    for frame in exchange.server:
        payload = payload_of(frame)  # a large one may be spilled (replay.recorded)
        head = payload[:80]
        if b'"response.created"' in head or b'"response.completed"' in head:
            event = loads(payload)
            if isinstance(event, dict) and isinstance(event.get("response"), dict):
                found = event["response"]
        elif b'"object"' in payload:  # a non-streamed HTTP answer: the response itself
            body = loads(payload)
            if isinstance(body, dict) and body.get("object") == "response":
                found = body
    return found


@dataclass(slots=True)
class _Chain:
    """A lane's chain: the live response id, and the recorded items it holds (canonical)."""

    response_id: str | None = None
    items: list[bytes] = field(default_factory=list)


class _Rerun:
    def __init__(self, result: RerunResult, incremental: bool) -> None:
        self.result = result
        self.incremental = incremental
        self.ids: dict[str, str] = {}  # recorded response id -> live one
        self.call_ids: dict[str, str] = {}  # recorded call_id -> live one
        self.chains: dict[str | None, _Chain] = {}

    def prepare(
        self, exchange: Exchange, *, http: bool = False
    ) -> tuple[bytes, dict[str, Any] | None]:
        """The message to send for a recorded client message (an HTTP request body, with
        ``http``), and its body if a create."""
        assert exchange.client is not None
        body = loads(exchange.client)
        if not isinstance(body, dict) or (not http and body.get("type") != "response.create"):
            return exchange.client, None
        recorded_input = body.get("input")
        changed = False
        prev = body.get("previous_response_id")
        if isinstance(prev, str) and prev in self.ids:
            body["previous_response_id"] = self.ids[prev]
            self.result.rewritten_ids += 1
            changed = True
        items = recorded_input if isinstance(recorded_input, list) else None
        lane = body.get("stream_id") if isinstance(body.get("stream_id"), str) else None
        chain = self.chains.get(lane)
        if self.incremental and not prev and items and chain and chain.response_id:
            keys = [identity(i) for i in items]
            n = 0
            while n < min(len(keys), len(chain.items)) and keys[n] == chain.items[n]:
                n += 1
            if n:  # the chain already holds the first n items: send the rest, chained
                body["previous_response_id"] = chain.response_id
                body["input"] = items = items[n:]
                self.result.made_incremental += 1
                changed = True
        if items:
            for item in items:
                if isinstance(item, dict) and item.get("call_id") in self.call_ids:
                    item["call_id"] = self.call_ids[item["call_id"]]
                    changed = True
        payload = json.dumps(body).encode() if changed else exchange.client
        return payload, body

    def learn(self, final: dict[str, Any], exchange: Exchange, body: dict[str, Any]) -> None:
        """Map the recorded response to the live one, and update the lane's chain."""
        if final.get("type") == "error":
            nested = final.get("error")
            error: dict[str, Any] = nested if isinstance(nested, dict) else final
            self.result.errors.append(str(error.get("code")))
            return
        got = final.get("response")
        live: dict[str, Any] = got if isinstance(got, dict) else {}
        recorded = _recorded_response(exchange)
        if isinstance(live.get("id"), str) and isinstance(recorded.get("id"), str):
            self.ids[recorded["id"]] = live["id"]
        live_out = dict_items(live.get("output"))
        rec_out = dict_items(recorded.get("output"))
        for r, lv in zip(rec_out, live_out, strict=False):
            if isinstance(r.get("call_id"), str) and isinstance(lv.get("call_id"), str):
                self.call_ids[r["call_id"]] = lv["call_id"]
        # The chain, in the recorded session's terms: what a full resend would repeat.
        assert exchange.client is not None
        sent = loads(exchange.client)
        recorded_input = sent.get("input") if isinstance(sent, dict) else None
        lane = body.get("stream_id") if isinstance(body.get("stream_id"), str) else None
        chain = self.chains.setdefault(lane, _Chain())
        if not (isinstance(sent, dict) and sent.get("previous_response_id")):
            chain.items = []
        if isinstance(recorded_input, list):
            chain.items += [identity(i) for i in recorded_input]
        chain.items += [identity(o) for o in rec_out]
        chain.response_id = live.get("id") if isinstance(live.get("id"), str) else None


async def rerun(
    recorded: list[RecordedConnection],
    upstream: str,
    recorder: Recorder,
    *,
    headers: list[tuple[str, str]] | None = None,
    keep_client_time: bool = False,
    incremental: bool = False,
    turn_timeout: float = 300.0,
    requests: Sequence[RecordedRequest] = (),
    http_over_websocket: bool = False,
) -> RerunResult:
    """Re-send every recorded connection's client messages and every recorded HTTP request,
    one after another in recorded order.

    Each message goes once the previous turn has ended (with ``keep_client_time``, after the
    recorded client time too); ``previous_response_id`` and ``call_id`` values are rewritten
    to the ids the live server returned, across both transports.
    """
    result = RerunResult()
    state = _Rerun(result, incremental)
    base = upstream.rstrip("/")
    work: list[tuple[int, RecordedConnection | RecordedRequest]] = [
        *((c.exchanges[0].t_client, c) for c in recorded),
        *((r.t_request, r) for r in requests),
    ]
    shared: WebSocket | None = None  # the one socket HTTP creates move to
    try:
        for _, conn in sorted(work, key=lambda w: w[0]):
            if isinstance(conn, RecordedRequest):
                if http_over_websocket and conn.path.endswith("/responses"):
                    if shared is None:
                        shared = await connect_websocket(base + conn.path, headers=headers or [])
                        tap_websocket(shared, recorder, conn.path)
                        result.connections += 1
                    await _request_over(shared, conn, state, turn_timeout)
                    continue
                http = "http" + base.removeprefix("ws")
                await _rerun_request(conn, http, recorder, headers or [], state, turn_timeout)
                continue
            await _rerun_connection(conn, base, recorder, headers, keep_client_time, state,
                                    turn_timeout)  # fmt: skip
    finally:
        if shared is not None:
            await shared.close()
    return result


async def _request_over(ws: WebSocket, req: RecordedRequest, state: _Rerun, timeout: float) -> None:
    """A recorded HTTP create sent as a ``response.create`` on a WebSocket (its transport
    fields dropped), ids rewritten and, with ``--incremental``, chained."""
    body = loads(req.body)
    if not isinstance(body, dict):
        state.result.errors.append("not_a_create")
        return
    body = {"type": "response.create", **body}
    for name in ("stream", "background"):
        body.pop(name, None)
    exchange = Exchange(json.dumps(body).encode(), Opcode.TEXT, req.t_request, list(req.answer))
    payload, create = state.prepare(exchange)
    await ws.send_frame(WsOpcode.TEXT, payload)
    state.result.messages += 1
    if create is not None:
        final = await asyncio.wait_for(_await_end(ws, create), timeout)
        state.result.turns += 1
        state.learn(final, exchange, create)


async def _rerun_connection(
    conn: RecordedConnection,
    base: str,
    recorder: Recorder,
    headers: list[tuple[str, str]] | None,
    keep_client_time: bool,
    state: _Rerun,
    turn_timeout: float,
) -> None:
    """One recorded WebSocket connection, message by message."""
    result = state.result
    loop = asyncio.get_running_loop()
    ws = await connect_websocket(base + conn.path, headers=headers or [])
    tap_websocket(ws, recorder, conn.path)
    result.connections += 1
    state.chains.clear()  # a new connection starts with an empty cache
    last_end: float | None = None
    recorded_end = conn.exchanges[0].t_client
    try:
        for exchange in conn.exchanges:
            if exchange.client is not None:
                if keep_client_time and last_end is not None:
                    wait = (exchange.t_client - recorded_end) / 1e9 - (loop.time() - last_end)
                    if wait > 0:
                        await asyncio.sleep(wait)
                payload, body = state.prepare(exchange)
                opcode = WsOpcode(int(exchange.client_opcode or 1))
                await ws.send_frame(opcode, payload)
                result.messages += 1
                if body is not None:
                    final = await asyncio.wait_for(_await_end(ws, body), turn_timeout)
                    result.turns += 1
                    state.learn(final, exchange, body)
                last_end = loop.time()
            if exchange.server:
                recorded_end = exchange.server[-1].t_ns
    finally:
        await ws.close()


async def _rerun_request(
    req: RecordedRequest,
    base: str,
    recorder: Recorder,
    headers: list[tuple[str, str]],
    state: _Rerun,
    timeout: float,
) -> None:
    """POST one recorded request again (ids rewritten) and record the exchange."""
    exchange = Exchange(req.body, Opcode.TEXT, req.t_request, list(req.answer))
    payload, body = state.prepare(exchange, http=True)
    where = urlsplit(base)
    tls = where.scheme == "https"
    host = where.hostname or "localhost"
    ctx = ssl.create_default_context() if tls else None
    path = where.path.rstrip("/") + req.path
    sent = [("Host", where.netloc), ("Content-Type", "application/json"), *headers]
    framing = [("Content-Length", str(len(payload))), ("Accept-Encoding", "identity"),
               ("Connection", "close")]  # fmt: skip
    t0 = recorder.now_ns()
    reader, writer = await asyncio.open_connection(
        host, where.port or (443 if tls else 80), ssl=ctx, server_hostname=host if tls else None
    )
    try:
        writer.write(request_head("POST", path, [*sent, *framing]) + payload)
        await writer.drain()
        status, _, answer_headers = await read_response_head(reader, timeout)
        conn = recorder.open_connection(
            req.path, request_headers=sent, response_headers=answer_headers, status=status,
            transport="http", t_ns=t0,
        )  # fmt: skip
        recorder.frame(conn, Direction.CLIENT, Opcode.TEXT, payload, True, t0)
        ctype = next((v for k, v in answer_headers if k.lower() == "content-type"), "")
        decoder = SSEDecoder() if ctype.startswith("text/event-stream") else None
        whole, last = bytearray(), b""
        async for data in response_body(reader, answer_headers, timeout):
            if decoder is None:
                whole += data
                continue
            for event in decoder.feed(data):
                recorder.frame(conn, Direction.SERVER, Opcode.TEXT, event, True)
                last = event
        if whole:
            recorder.frame(conn, Direction.SERVER, Opcode.TEXT, bytes(whole), True)
        recorder.close_connection(conn, by="server")
    finally:
        writer.close()
    state.result.connections += 1
    state.result.messages += 1
    if body is not None:
        state.result.turns += 1
        state.learn(_http_final(status, last or bytes(whole)), exchange, body)


def _http_final(status: int, data: bytes) -> dict[str, Any]:
    """An HTTP answer as the terminal event ``learn`` reads."""
    answer = loads(data)
    if not isinstance(answer, dict):
        return {"type": "error", "error": {"code": f"http_{status}"}}
    if "type" in answer:  # the last server-sent event
        return answer
    if status >= 400 or ("error" in answer and answer.get("object") != "response"):
        error = answer.get("error")
        return {"type": "error", "error": error if isinstance(error, dict) else {}}
    return {"type": "response.completed", "response": answer}


async def _await_end(ws: WebSocket, body: dict[str, Any]) -> dict[str, Any]:
    lane = body.get("stream_id")
    while True:
        message = await ws.recv_message()
        if message is None:
            return {"type": "error", "error": {"code": "connection_closed"}}
        event = loads(message[1])
        if not isinstance(event, dict):
            continue
        if event.get("type") in TERMINAL and event.get("stream_id") == lane:
            return event
