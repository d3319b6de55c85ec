"""Replay over HTTP: recorded ``POST .../responses`` requests answered as recorded.

A live request is matched, in the same modes as WebSocket messages, against the recorded
requests of its path, in recorded order (the least-served match first, so a test suite can
be served many times); the answer is the recorded status with its server-sent events at
the recorded pacing (scaled by ``--speed``), or the recorded JSON body. A request that
matches nothing gets a 400 whose JSON error says where it differed, as an SDK raises it.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import orjson

from tracer.replay.recorded import Mismatch, RecordedRequest, match, payload_of
from tracer.wire.http import RequestHead, read_body, request_head, write_response

if TYPE_CHECKING:
    from tracer.replay.server import ReplayServer

__all__ = ["serve_http"]

MAX_BODY = 64 * 1024 * 1024


async def serve_http(
    server: ReplayServer,
    head: RequestHead,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> bool:
    """Answer one request; True when the connection may carry another."""
    body = await read_body(reader, head, MAX_BODY)
    arrived = asyncio.get_running_loop().time()
    path = server.guard.strip_token_path(head.target).split("?", 1)[0]
    candidates = [r for r in server.requests if r.path.split("?", 1)[0] == path]
    keep = (head.header("Connection") or "").lower() != "close"
    if server.fallback is not None and (head.method != "POST" or not candidates):
        return await _forward(server, head, body, reader, writer)
    if head.method != "POST" or not candidates:
        message = f"tracer replay: no recorded request for {head.method} {path}"
        server.log(message.removeprefix("tracer replay: "))
        _error(writer, 404, "not_found", message)
        await writer.drain()
        return keep
    chosen, problem = _choose(server, candidates, body)
    if chosen is None and server.fallback is not None:
        return await _forward(server, head, body, reader, writer)
    if chosen is None:
        await _mismatch(server, writer, candidates[0], problem)
        return keep
    server.stats.turns += 1
    served = server.stats.served
    served[chosen.conn] = served.get(chosen.conn, 0) + 1
    if chosen.streamed:
        await _stream(server, writer, chosen, arrived)
    else:
        data = b"".join(payload_of(f) for f in chosen.answer)
        write_response(writer, chosen.status, [("Content-Type", "application/json")], data)
        await writer.drain()
    return keep


async def _forward(
    server: ReplayServer,
    head: RequestHead,
    body: bytes,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> bool:
    """Send a request that matches nothing to the fallback (a new episode, recorded there)
    and its answer back as it comes; the connection then closes."""
    assert server.fallback is not None
    where = urlsplit(server.fallback)
    try:
        up_reader, up_writer = await asyncio.open_connection(where.hostname, where.port)
    except OSError as exc:
        _error(writer, 502, "fallback_unreachable", f"tracer replay: fallback: {exc}")
        await writer.drain()
        return False
    server.stats.forwarded += 1
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


def _choose(
    server: ReplayServer, candidates: list[RecordedRequest], body: bytes
) -> tuple[RecordedRequest | None, Mismatch | None]:
    """The least-served recorded request (earliest first) that ``body`` matches, or the
    first one's mismatch."""
    served = server.stats.served
    first_problem: Mismatch | None = None
    fitting = []
    for req in candidates:
        problem = match(body, req.body, server.mode, server.ignore)
        if problem is None:
            fitting.append(req)
        elif first_problem is None:
            first_problem = problem
    if not fitting:
        return None, first_problem
    return min(fitting, key=lambda r: (served.get(r.conn, 0), r.t_request)), None


async def _mismatch(
    server: ReplayServer,
    writer: asyncio.StreamWriter,
    closest: RecordedRequest,
    problem: Mismatch | None,
) -> None:
    what = f"no recorded request matches; the closest is recorded connection {closest.conn}"
    told = server.note_mismatch(what, problem)
    _error(writer, 400, "replay_mismatch", f"tracer replay: {told}", "tracer_replay_mismatch")
    await writer.drain()


async def _stream(
    server: ReplayServer, writer: asyncio.StreamWriter, req: RecordedRequest, arrived: float
) -> None:
    """The recorded events as server-sent events, each at its recorded time after the
    request (scaled by the server's speed), in chunked encoding."""
    headers = [("Content-Type", "text/event-stream; charset=utf-8"), ("Cache-Control", "no-cache"),
               ("Transfer-Encoding", "chunked")]  # fmt: skip
    write_response(writer, req.status, headers)
    loop = asyncio.get_running_loop()
    for frame in req.answer:
        if server.speed > 0:
            delay = arrived + (frame.t_ns - req.t_request) / 1e9 / server.speed - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        payload = payload_of(frame)
        event = f"event: {_event_type(payload)}\ndata: ".encode() + payload + b"\n\n"
        writer.write(b"%x\r\n%s\r\n" % (len(event), event))
        await writer.drain()
    writer.write(b"0\r\n\r\n")
    await writer.drain()


def _event_type(payload: bytes) -> str:
    try:
        event = orjson.loads(payload)
    except ValueError:
        return "message"
    kind = event.get("type") if isinstance(event, dict) else None
    return kind if isinstance(kind, str) and "\n" not in kind else "message"


def _error(
    writer: asyncio.StreamWriter,
    status: int,
    code: str,
    message: str,
    kind: str = "invalid_request_error",
) -> None:
    body = {"error": {"type": kind, "code": code, "message": message, "param": None}}
    write_response(
        writer, status, [("Content-Type", "application/json")], json.dumps(body).encode()
    )
