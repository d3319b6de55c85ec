"""The replay server: plays a trace's recorded server side to live clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from websockets.frames import Opcode as WsOpcode

from tracer.replay.http import serve_http
from tracer.replay.recorded import (
    Exchange,
    Ignore,
    Mismatch,
    RecordedConnection,
    RecordedRequest,
    match,
    payload_of,
)
from tracer.wire import (
    ConnectError,
    HTTPError,
    RequestHead,
    WebSocket,
    accept_websocket,
    connect_websocket,
    write_response,
)
from tracer.wire.guard import Guard
from tracer.wire.service import TCPService

DEFAULT_MAX_FRAME = 64 * 1024 * 1024
DEFAULT_MAX_QUEUE = 256
MAX_MISMATCHES_KEPT = 100

__all__ = ["ReplayServer", "ReplayStats"]


@dataclass(slots=True)
class ReplayStats:
    """What a replay server has done so far."""

    connections: int = 0
    turns: int = 0
    mismatches: list[str] = field(default_factory=list)  # the first MAX_MISMATCHES_KEPT
    mismatch_count: int = 0
    served: dict[int, int] = field(default_factory=dict)  # recorded conn -> times served
    forwarded: int = 0  # connections and requests handed to the fallback (new episodes)


class ReplayServer(TCPService):
    """Serves recorded connections: each live connection is paired with a recorded one by its
    path and first message, and each live message with the recorded message it repeats."""

    def __init__(
        self,
        recorded: list[RecordedConnection],
        *,
        requests: Sequence[RecordedRequest] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float = 1.0,
        mode: str = "tolerant",
        log: Callable[[str], None] | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
        max_queue: int = DEFAULT_MAX_QUEUE,
        allow_origins: Sequence[str] = (),
        token: str | None = None,
        verbose_mismatch: bool = False,
        ignore: Ignore | None = None,
        fallback: str | None = None,
    ) -> None:
        super().__init__(host, port, guard=Guard.of(host, allow_origins, token), log=log)
        self.max_frame = max_frame  # a larger message closes the connection with 1009
        self.max_queue = max_queue  # client messages waiting; past it, reading pauses
        self.recorded = recorded
        self.requests = list(requests)  # recorded HTTP requests, answered over HTTP
        self.speed = speed
        self.mode = mode
        self.ignore = ignore or Ignore()  # paths tolerant matching skips (and the defaults)
        # Where what matches nothing goes instead of a mismatch error (a recording proxy:
        # the pytest plugin's new_episodes mode), as http://HOST:PORT.
        self.fallback = fallback
        self.stats = ReplayStats()
        self.verbose_mismatch = verbose_mismatch  # mismatch errors quote the recording
        self.all_served = asyncio.Event()
        self._active = 0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def note_mismatch(self, what: str, problem: Mismatch | None) -> str:
        """Count a mismatch, keep and log the first ones in full (a flood must not grow
        memory); returns what the client is told: where it differed, and what the
        recording holds only with ``verbose_mismatch``."""
        detail = f"{what}: {problem.describe()}" if problem else what
        stats = self.stats
        stats.mismatch_count += 1
        if len(stats.mismatches) < MAX_MISMATCHES_KEPT:
            stats.mismatches.append(detail)
            self.log(f"mismatch: {detail}")
        elif stats.mismatch_count == MAX_MISMATCHES_KEPT + 1:
            self.log(f"more than {MAX_MISMATCHES_KEPT} mismatches: no longer logged")
        if problem is None:
            return what
        return f"{what}: {problem.describe(recorded=self.verbose_mismatch)}"

    def connection_ended(self) -> None:
        self._active -= 1
        served = self.stats.served
        conns = [c.conn for c in self.recorded] + [r.conn for r in self.requests]
        if self._active == 0 and all(served.get(conn) for conn in conns):
            self.all_served.set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._active += 1
        try:
            head = await self.read_head(reader, writer)
            if head is None or await self.refused(head, writer):
                return
            while not head.is_websocket_upgrade:  # HTTP requests, kept alive
                if not await serve_http(self, head, reader, writer):
                    return
                next_head = await self.read_head(reader, writer)
                if next_head is None or await self.refused(next_head, writer):
                    return
                head = next_head
            target = self.guard.strip_token_path(head.target)
            path = target.split("?", 1)[0]
            candidates = [c for c in self.recorded if c.path == target] or [
                c for c in self.recorded if c.path.split("?", 1)[0] == path
            ]
            if not candidates and self.fallback is None:
                message = f"tracer replay: no recorded WebSocket connection for {head.target}\n"
                self.log(message.strip())
                write_response(writer, 404, [("Content-Type", "text/plain")], message.encode())
                await writer.drain()
                return
            subprotocols = sorted({c.subprotocol for c in candidates if c.subprotocol})
            ws = await accept_websocket(
                reader, writer, head, subprotocols=subprotocols or None, max_size=self.max_frame
            )
            self.stats.connections += 1
            await _Session(self, ws, candidates, target, head).run()
        except HTTPError:
            pass


class _Session:
    def __init__(
        self,
        server: ReplayServer,
        ws: WebSocket,
        candidates: list[RecordedConnection],
        target: str,
        head: RequestHead,
    ) -> None:
        self.server = server
        self.ws = ws
        self.candidates = candidates
        self.target, self.head = target, head
        self.forward: WebSocket | None = None  # the fallback, once this connection went there
        self._pump: asyncio.Task[None] | None = None
        self.chosen: RecordedConnection | None = None
        self.position = 0  # index of the last exchange played
        # Bounded: a client that floods messages waits (TCP backpressure), memory does not grow.
        self.inbox: asyncio.Queue[tuple[WsOpcode, bytes] | None] = asyncio.Queue(server.max_queue)

    async def run(self) -> None:
        reader = asyncio.create_task(self._read())
        try:
            # A recording whose server spoke first: play that before waiting for the client.
            leading = [c for c in self.candidates if c.exchanges[0].server]
            if leading:
                self._choose(self._least_served(leading))
                assert self.chosen is not None
                await self._play(self.chosen.exchanges[0], asyncio.get_running_loop().time())
            while (message := await self.inbox.get()) is not None:
                if self.forward is not None:
                    await self.forward.send_frame(message[0], message[1], True)
                    continue
                arrived = asyncio.get_running_loop().time()
                await self._answer(message[1], arrived)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            if self.forward is not None:
                with contextlib.suppress(Exception):
                    await self.forward.close(1000, "", timeout=2.0)
            if self._pump is not None:
                self._pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._pump
            if not self.ws.closed:
                await self.ws.close(1000, "", timeout=2.0)

    async def _read(self) -> None:
        while (message := await self.ws.recv_message()) is not None:
            await self.inbox.put(message)
        await self.inbox.put(None)

    def _least_served(self, options: list[RecordedConnection]) -> RecordedConnection:
        served = self.server.stats.served
        return min(options, key=lambda c: (served.get(c.conn, 0), c.conn))

    def _choose(self, recorded: RecordedConnection) -> None:
        self.chosen = recorded
        served = self.server.stats.served
        served[recorded.conn] = served.get(recorded.conn, 0) + 1

    async def _answer(self, data: bytes, arrived: float) -> None:
        mode, ignore = self.server.mode, self.server.ignore
        if self.chosen is None:
            firsts = [(c, c.first_message) for c in self.candidates]
            fitting = [
                c
                for c, first in firsts
                if first is not None and not match(data, first, mode, ignore)
            ]
            if not fitting and self.server.fallback is not None:
                await self._go_forward(data)
                return
            if not fitting:
                first = firsts[0][1] or b""
                problem = match(data, first, mode, ignore) if first else None
                await self._mismatch(
                    f"no recorded connection on this path starts with this message; the closest "
                    f"is the first message of recorded connection {firsts[0][0].conn}",
                    problem,
                )
                return
            self._choose(self._least_served(fitting))
        assert self.chosen is not None
        exchanges = self.chosen.exchanges
        nxt = next(
            (
                i
                for i in range(self.position + 1, len(exchanges))
                if exchanges[i].client is not None
            ),
            None,
        )
        if nxt is None:
            await self._mismatch(
                f"the recording of connection {self.chosen.conn} has no more client messages",
                None,
            )
            return
        expected = exchanges[nxt]
        assert expected.client is not None
        problem = match(data, expected.client, mode, ignore)
        if problem is not None:
            await self._mismatch(
                f"message {nxt} of recorded connection {self.chosen.conn} does not match",
                problem,
            )
            return
        self.position = nxt
        self.server.stats.turns += 1
        await self._play(expected, arrived)
        if nxt == len(exchanges) - 1 and self.chosen.closed_by == "server":
            await self.ws.close(self.chosen.close_code or 1000, self.chosen.close_reason)

    async def _play(self, exchange: Exchange, arrived: float) -> None:
        """Send the exchange's server frames, keeping the recorded gaps scaled by speed."""
        loop = asyncio.get_running_loop()
        speed = self.server.speed
        for frame in exchange.server:
            if speed > 0:
                due = arrived + (frame.t_ns - exchange.t_client) / 1e9 / speed
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            try:
                payload = payload_of(frame)
                await self.ws.send_frame(WsOpcode(int(frame.opcode)), payload, frame.fin)
            except ConnectionError:
                return

    async def _go_forward(self, first: bytes) -> None:
        """Hand this connection to the fallback: a new episode, recorded there."""
        assert self.server.fallback is not None
        url = self.server.fallback.replace("http", "ws", 1) + self.target
        keep = [(k, v) for k, v in self.head.headers if k.lower() in ("authorization",)]
        try:
            self.forward = await connect_websocket(url, headers=keep, max_size=None)
        except ConnectError as exc:
            await self._mismatch(f"the fallback refused a new episode: {exc}", None)
            return
        self.server.stats.forwarded += 1
        self._pump = asyncio.create_task(self._pump_back(self.forward))
        await self.forward.send_text(first.decode("utf-8", "replace"))

    async def _pump_back(self, upstream: WebSocket) -> None:
        while (frame := await upstream.recv_frame()) is not None:
            if frame.opcode in (WsOpcode.CLOSE, WsOpcode.PING, WsOpcode.PONG):
                continue
            with contextlib.suppress(ConnectionError):
                await self.ws.send_frame(frame.opcode, bytes(frame.data), frame.fin)

    async def _mismatch(self, what: str, problem: Mismatch | None) -> None:
        told = self.server.note_mismatch(what, problem)
        event = {
            "type": "error",
            "status": 400,
            "error": {
                "type": "tracer_replay_mismatch",
                "code": "replay_mismatch",
                "message": f"tracer replay: {told}",
                "param": None,
            },
        }
        with contextlib.suppress(ConnectionError):
            await self.ws.send_text(json.dumps(event))
