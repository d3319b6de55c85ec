"""The scripted upstream's asyncio server: WebSocket mode and HTTP SSE on one port."""

# Over 400 lines: one port's shell: WebSocket mode, HTTP SSE, compaction, timing, Realtime.

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import parse_qs

from websockets.frames import Opcode

from tracer.responses.errors import error_body
from tracer.responses.sse import encode_event
from tracer.responses.timing import TIMING_EVENT, TIMING_HEADER
from tracer.upstream.engine import (
    DEFAULT_MAX_PENDING,
    MAX_IN_FLIGHT,
    Connection,
    Engine,
    Plan,
    error_event,
)
from tracer.upstream.gemini import GeminiConnection, GeminiEngine
from tracer.upstream.live import LiveConnection, LiveEngine
from tracer.upstream.realtime import RealtimeEngine, RealtimeScript
from tracer.upstream.realtime_ws import serve_live, serve_realtime
from tracer.upstream.script import Script, default_script
from tracer.wire import (
    DEFAULT_MAX_SIZE,
    HTTPError,
    RequestHead,
    WebSocket,
    accept_websocket,
    read_body,
    write_response,
)
from tracer.wire.guard import Guard
from tracer.wire.service import TCPService

__all__ = ["UpstreamServer", "running_upstream"]

MAX_BODY = 64 * 1024 * 1024
DEFAULT_MAX_FRAME = DEFAULT_MAX_SIZE  # a larger message closes the connection with 1009


def _dumps(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


class UpstreamServer(TCPService):
    """A Responses-compatible server answering from a script, on 127.0.0.1 by default."""

    def __init__(
        self,
        script: Script | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        single_flight: bool = False,
        on_connect: Callable[[WebSocket, RequestHead], None] | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
        max_pending: int = DEFAULT_MAX_PENDING,
        allow_origins: Sequence[str] = (),
        log: Callable[[str], None] | None = None,
        tls: ssl.SSLContext | None = None,
        names: Sequence[str] = (),
        realtime: RealtimeScript | None = None,
    ) -> None:
        """``tls``: serve https and wss; ``names``: the host names it answers as (its
        certificate's), besides this machine's; ``realtime``: how ``/v1/realtime`` plays."""
        guard = Guard.of(host, allow_origins, names=names)
        super().__init__(host, port, guard=guard, log=log)
        self.ssl = tls
        self.max_frame = max_frame  # limits against a hostile client
        self.engine = Engine(
            script or default_script(), single_flight=single_flight, max_pending=max_pending
        )
        self.realtime = RealtimeEngine(realtime or self.engine.script.realtime)
        self.gemini = GeminiEngine(self.engine.script)  # BidiGenerateContent: Gemini Live
        self.live = LiveEngine(self.engine.script)  # /v1/live/sessions: OpenAI Live
        # Called with each accepted WebSocket, e.g. to tap the server's own view of it.
        self.on_connect = on_connect
        self.connections = 0
        self._turn_states = 0

    @property
    def base_url(self) -> str:
        """The HTTP base URL clients use, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"{'https' if self.ssl else 'http'}://{self.host}:{self.port}/v1"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.ssl else 'ws'}://{self.host}:{self.port}/v1/responses"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await self.read_head(reader, writer)
                if head is None or await self.refused(head, writer):
                    return
                path = head.path.split("?", 1)[0].rstrip("/")
                if path.endswith("/realtime") and head.is_websocket_upgrade:
                    await self._realtime(reader, writer, head)
                    return
                if path.endswith("BidiGenerateContent") and head.is_websocket_upgrade:
                    await self._live(reader, writer, head, self.gemini.connection())
                    return
                if path.endswith("/live/sessions") and head.is_websocket_upgrade:
                    await self._live(reader, writer, head, self.live.connection())
                    return
                compact = path.endswith("/responses/compact")
                if not path.endswith("/responses") and not compact:
                    _json_error(writer, 404, "not_found", f"No route for {head.path}.")
                elif head.is_websocket_upgrade:
                    self.connections += 1
                    ws = await accept_websocket(
                        reader,
                        writer,
                        head,
                        max_size=self.max_frame,
                        extra_headers=self._handshake_headers(),
                    )
                    if self.on_connect is not None:
                        self.on_connect(ws, head)
                    await self._websocket(ws, timed=_asks_timing(head))
                    return
                elif head.method == "POST":
                    serve = self._compact if compact else self._http
                    if not await serve(reader, writer, head):
                        return
                    continue
                else:
                    _json_error(writer, 405, "method_not_allowed", "Use POST or a WebSocket.")
                await writer.drain()
                if (head.header("Connection") or "").lower() == "close":
                    return
        except HTTPError as exc:
            with contextlib.suppress(Exception):
                _json_error(writer, exc.status, "invalid_request", str(exc))
                await writer.drain()

    def _handshake_headers(self) -> list[tuple[str, str]]:
        """Headers of the upgrade response: the Codex backend's, with that profile."""
        script = self.engine.script
        if not script.profile.handshake_headers:
            return []
        self._turn_states += 1
        return [("x-codex-turn-state", f"ts_{script.seed}_{self._turn_states}"),
                ("openai-model", script.model)]  # fmt: skip

    async def _live(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        head: RequestHead,
        conn: GeminiConnection | LiveConnection,
    ) -> None:
        self.connections += 1
        ws = await accept_websocket(reader, writer, head, max_size=self.max_frame)
        if self.on_connect is not None:
            self.on_connect(ws, head)
        await serve_live(conn, ws)
        if not ws.closed:
            await ws.close(1000, "", timeout=2.0)

    async def _realtime(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: RequestHead
    ) -> None:
        self.connections += 1
        ws = await accept_websocket(reader, writer, head, max_size=self.max_frame)
        if self.on_connect is not None:
            self.on_connect(ws, head)
        query = parse_qs(head.path.partition("?")[2])
        model = query.get("model", [None])[0]
        await serve_realtime(self.realtime.connection(model), ws)
        if not ws.closed:
            await ws.close(1000, "", timeout=2.0)

    # WebSocket mode

    async def _websocket(self, ws: WebSocket, *, timed: bool = False) -> None:
        conn = self.engine.connection()
        conn.timed = timed
        session = _Session(conn, ws)
        try:
            await session.run()
        finally:
            await session.stop()

    # HTTP mode

    async def _compact(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: RequestHead
    ) -> bool:
        """``POST /responses/compact``: one JSON answer, a ``response.compaction``."""
        body = await _json_body(reader, writer, head)
        if body is None:
            return True
        answer = self.engine.http_connection().compact(body)
        if answer.get("type") == "error":
            _write_error_event(writer, answer)
        else:
            write_response(writer, 200, [("Content-Type", "application/json")],
                           _dumps(answer).encode())  # fmt: skip
        return True

    async def _http(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: RequestHead
    ) -> bool:
        """Answer one POST; True when the connection may serve another request."""
        body = await _json_body(reader, writer, head)
        if body is None:
            return True
        conn = self.engine.http_connection()
        conn.timed = _asks_timing(head) and bool(body.get("stream"))  # an event: streams only
        received = time.monotonic_ns()
        plan = conn.start(body)
        first = plan.steps[0].event if plan.steps else {}
        if plan.response_id is None and first.get("type") == "error":
            _write_error_event(writer, first)
            return True
        if body.get("stream"):
            write_response(
                writer,
                200,
                [
                    ("Content-Type", "text/event-stream; charset=utf-8"),
                    ("Cache-Control", "no-cache"),
                    ("Connection", "close"),
                ],
            )
            clock = _Clock(received)
            for step in plan.steps:
                if step.delay:
                    await asyncio.sleep(step.delay)
                event = step.event
                clock.sending(event)
                writer.write(encode_event(_dumps(event).encode(), event["type"]))
                await writer.drain()
            if plan.fault is not None:
                writer.transport.abort()
                return False
            plan.finish()
            await writer.drain()
            return False  # the stream ends with the connection
        final: dict[str, Any] = {}
        for step in plan.steps:
            if step.delay:
                await asyncio.sleep(step.delay)
            final = step.event
        if plan.fault is not None:
            writer.transport.abort()
            return False
        plan.finish()
        if final.get("type") == "error":
            _write_error_event(writer, final)
        else:
            data = _dumps(final.get("response", {})).encode()
            write_response(writer, 200, [("Content-Type", "application/json")], data)
        return True


class _Session:
    """One WebSocket connection: reads client events, runs each lane's creates in order."""

    def __init__(self, conn: Connection, ws: WebSocket) -> None:
        self.conn = conn
        self.ws = ws
        self.lanes: dict[str | None, asyncio.Queue[tuple[dict[str, Any], int]]] = {}
        self.workers: list[asyncio.Task[None]] = []
        self.slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self.ended = asyncio.Event()

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send_text(_dumps(event))

    async def run(self) -> None:
        reader = asyncio.create_task(self._read())
        ended = asyncio.create_task(self.ended.wait())
        try:
            await asyncio.wait({reader, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when the server's shutdown cancels this session
            for t in (reader, ended):
                t.cancel()
            await asyncio.gather(reader, ended, return_exceptions=True)

    async def _read(self) -> None:
        while True:
            message = await self.ws.recv_message()
            if message is None:
                return
            opcode, data = message
            if opcode is not Opcode.TEXT:
                await self.send(error_event("invalid_frame", "Only text frames are accepted."))
                continue
            try:
                event = json.loads(data)
                if not isinstance(event, dict):
                    raise ValueError
            except (ValueError, RecursionError):  # RecursionError: hostile nesting
                await self.send(error_event("invalid_json", "The message is not a JSON object."))
                continue
            await self._dispatch(event)

    async def _dispatch(self, event: dict[str, Any]) -> None:
        admission = self.conn.receive(event)  # the engine decides; this shell queues and sends
        if admission.reply is not None:
            await self.send(admission.reply)
        if admission.queue:
            lane = admission.lane
            if lane not in self.lanes:
                self.lanes[lane] = asyncio.Queue()
                self.workers.append(asyncio.create_task(self._lane(self.lanes[lane])))
            self.lanes[lane].put_nowait((event, time.monotonic_ns()))

    async def _lane(self, queue: asyncio.Queue[tuple[dict[str, Any], int]]) -> None:
        while True:
            body, received = await queue.get()
            async with self.slots:
                plan = self.conn.start(body)
                try:
                    await self._carry_out(plan, received)
                finally:
                    self.conn.ended_plan(plan)

    async def _carry_out(self, plan: Plan, received: int) -> None:
        self.conn.running_plan(plan)
        clock = _Clock(received)
        for step in plan.steps:
            if step.delay:
                await asyncio.sleep(step.delay)
            clock.sending(step.event)
            await self.send(step.event)
        if plan.fault is None:
            plan.finish()
            return
        if plan.fault.kind == "close":
            await self.ws.close(plan.fault.code, plan.fault.reason)
        else:
            self.ws.abort()
        self.ended.set()

    async def stop(self) -> None:
        for w in self.workers:
            w.cancel()
        await asyncio.gather(*self.workers, return_exceptions=True)
        if not self.ws.closed:
            await self.ws.close(1000, "", timeout=2.0)


async def _json_body(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: RequestHead
) -> dict[str, Any] | None:
    """A POST's body as a JSON object; None, with a 400 answered, when it is not one."""
    raw = await read_body(reader, head, MAX_BODY)
    try:
        body = json.loads(raw)
        if isinstance(body, dict):
            return body
    except (ValueError, RecursionError):  # RecursionError: hostile nesting
        pass
    _json_error(writer, 400, "invalid_json", "The request body is not a JSON object.")
    return None


def _asks_timing(head: RequestHead) -> bool:
    return (head.header(TIMING_HEADER) or "").strip().lower() == "true"


class _Clock:
    """What the upstream measured of a response, for its timing metrics: from the create's
    arrival to the first delta sent (its time to first token) and to the last event. The
    engine's figures are that less the scripted pre-inference and queue time."""

    def __init__(self, received: int) -> None:
        self.received = received
        self.first: int | None = None

    def sending(self, event: dict[str, Any]) -> None:
        now = time.monotonic_ns()
        kind = event.get("type")
        if self.first is None and isinstance(kind, str) and kind.endswith(".delta"):
            self.first = now
        metrics = event.get("timing_metrics") if kind == TIMING_EVENT else None
        if isinstance(metrics, dict):
            overhead = metrics["pre_inference_ms"] + metrics["engine_queue_max_ms"]
            ttft = ((self.first or now) - self.received) / 1e6
            total = (now - self.received) / 1e6
            metrics.update(
                first_sampled_message_ttft_ms=round(max(0.0, ttft - overhead), 3),
                engine_service_ttft_total_ms=round(max(0.0, ttft - overhead), 3),
                engine_service_total_ms=round(max(0.0, total - overhead), 3),
                total_turn_time_s=round(total / 1000, 6),
                num_engine_calls=1,
            )


def _json_error(writer: asyncio.StreamWriter, status: int, code: str, message: str) -> None:
    write_response(
        writer, status, [("Content-Type", "application/json")], error_body(code, message)
    )


def _write_error_event(writer: asyncio.StreamWriter, event: dict[str, Any]) -> None:
    error = event.get("error", {})
    body = error_body(
        error.get("code", ""),
        error.get("message", ""),
        kind=error.get("type", "invalid_request_error"),
        param=error.get("param"),
    )
    status = int(event.get("status", 400))
    write_response(writer, status, [("Content-Type", "application/json")], body)


@contextlib.contextmanager
def running_upstream(
    script: Script | None = None,
    *,
    single_flight: bool = False,
    tls: ssl.SSLContext | None = None,
    names: Sequence[str] = (),
    realtime: RealtimeScript | None = None,
    allow_origins: Sequence[str] = (),
) -> Iterator[UpstreamServer]:
    """Run an upstream on 127.0.0.1 in a background thread (for sync code and tests);
    ``allow_origins``: the web pages' origins it admits (none by default)."""
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    server = UpstreamServer(
        script,
        single_flight=single_flight,
        tls=tls,
        names=names,
        realtime=realtime,
        allow_origins=allow_origins,
    )
    failure: list[BaseException] = []

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start())
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(server.close())
        loop.close()

    thread = threading.Thread(target=main, name="tracer-upstream", daemon=True)
    thread.start()
    ready.wait()
    if failure:
        raise failure[0]
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
