"""Replay over HTTP: recorded ``POST .../responses`` requests answered as recorded.

A live request is matched, in the same modes as WebSocket messages, against the recorded
requests of its path, in recorded order (the least-served match first, so a test suite can
be served many times); the answer is the recorded status with its server-sent events at
the recorded pacing (scaled by ``--speed``), or the recorded JSON body. A request that
matches nothing gets a 400 whose JSON error says where it differed, as an SDK raises it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import urlsplit

import orjson

from tracer.replay.engine import Plan, Refusal, ReplayEngine
from tracer.replay.recorded import payload_of
from tracer.responses.errors import error_body
from tracer.responses.sse import encode_event
from tracer.wire.http import LAST_CHUNK, RequestHead, chunk, read_body, request_head, write_response

__all__ = ["serve_http"]

MAX_BODY = 64 * 1024 * 1024
_JSON = [("Content-Type", "application/json")]


async def serve_http(
    engine: ReplayEngine,
    head: RequestHead,
    path: str,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    log: Callable[[str], None],
    fallback: str | None = None,
) -> bool:
    """Answer one request on ``path`` (its query and any token part removed) as the engine
    plans it; True when the connection may carry another."""
    body = await read_body(reader, head, MAX_BODY)
    arrived = asyncio.get_running_loop().time()
    keep = (head.header("Connection") or "").lower() != "close"
    outcome = engine.request(head.method, path, body)
    if isinstance(outcome, Refusal):
        if outcome.log:
            log(outcome.log)
        write_response(writer, outcome.status, _JSON, outcome.body())
        await writer.drain()
        return keep
    if not isinstance(outcome, Plan):
        assert fallback is not None
        return await _forward(engine, fallback, head, body, reader, writer)
    if outcome.streamed:
        await _stream(writer, outcome, arrived)
    else:
        data = b"".join(payload_of(f) for _, f in outcome.steps)
        write_response(writer, outcome.status, _JSON, data)
        await writer.drain()
    return keep


async def _forward(
    engine: ReplayEngine,
    fallback: str,
    head: RequestHead,
    body: bytes,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> bool:
    """Send a request that matches nothing to the fallback (a new episode, recorded there)
    and its answer back as it comes; the connection then closes."""
    where = urlsplit(fallback)
    try:
        up_reader, up_writer = await asyncio.open_connection(where.hostname, where.port)
    except OSError as exc:
        message = f"tracer replay: fallback: {exc}"
        write_response(writer, 502, _JSON, error_body("fallback_unreachable", message))
        await writer.drain()
        return False
    engine.forwarded()
    skip = {"content-length", "transfer-encoding", "connection"}
    sent = [(k, v) for k, v in head.headers if k.lower() not in skip]
    sent += [("Content-Length", str(len(body))), ("Connection", "close")]
    up_writer.write(request_head(head.method, head.target, sent) + body)
    try:
        await up_writer.drain()
        while data := await up_reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    finally:
        up_writer.close()
    return False


async def _stream(writer: asyncio.StreamWriter, plan: Plan, arrived: float) -> None:
    """The recorded events as server-sent events, each when the plan says, in chunked
    encoding."""
    headers = [("Content-Type", "text/event-stream; charset=utf-8"), ("Cache-Control", "no-cache"),
               ("Transfer-Encoding", "chunked")]  # fmt: skip
    write_response(writer, plan.status, headers)
    loop = asyncio.get_running_loop()
    for delay, frame in plan.steps:
        wait = arrived + delay - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        payload = payload_of(frame)
        writer.write(chunk(encode_event(payload, _event_type(payload))))
        await writer.drain()
    writer.write(LAST_CHUNK)
    await writer.drain()


def _event_type(payload: bytes) -> str:
    try:
        event = orjson.loads(payload)
    except ValueError:
        return "message"
    kind = event.get("type") if isinstance(event, dict) else None
    return kind if isinstance(kind, str) and "\n" not in kind else "message"
