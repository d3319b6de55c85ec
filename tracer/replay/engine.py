"""The replay engine: recorded connections and requests in; for each live message, a plan
(frames with delays, then maybe a close) or a refusal out (no I/O).

Shaped like ``upstream/engine.py``: a ``ReplayEngine`` holds what was recorded and the
server-wide accounting (which recording was served how often, the mismatches); each live
WebSocket connection gets a ``LiveConnection`` that knows which recording it follows and
where in it it is. Which recording answers, the next expected message, "least served
first" and the mismatch accounting live here; the asyncio servers (``replay/websocket.py``,
``replay/http.py``) only wait and send.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tracer.replay.recorded import (
    Exchange,
    Ignore,
    Mismatch,
    RecordedConnection,
    RecordedRequest,
    match,
)
from tracer.responses.errors import error_body, error_event
from tracer.trace.records import Frame

__all__ = [
    "DEFAULT_MAX_QUEUE",
    "MAX_MISMATCHES_KEPT",
    "Forward",
    "LiveConnection",
    "Plan",
    "Refusal",
    "ReplayEngine",
    "ReplayStats",
]

DEFAULT_MAX_QUEUE = 256
"""Client messages a replayed connection holds before it pauses reading (``--max-queue``)."""

MAX_MISMATCHES_KEPT = 100


@dataclass(slots=True)
class ReplayStats:
    """What a replay has done so far."""

    connections: int = 0
    turns: int = 0
    mismatches: list[str] = field(default_factory=list)  # the first MAX_MISMATCHES_KEPT
    mismatch_count: int = 0
    served: dict[int, int] = field(default_factory=dict)  # recorded conn -> times served
    forwarded: int = 0  # connections and requests handed to the fallback (new episodes)


@dataclass(slots=True)
class Plan:
    """Recorded server frames to send, each ``delay`` seconds after the live message
    arrived (the recorded gaps divided by the speed; all 0 at speed 0); then, for a
    WebSocket, maybe a close. For HTTP, ``status`` and whether the answer is a stream of
    server-sent events."""

    steps: list[tuple[float, Frame]]
    close: tuple[int, str] | None = None
    status: int = 200
    streamed: bool = True


@dataclass(slots=True)
class Refusal:
    """What a live message gets when no recording answers it: an error in the OpenAI shape
    (``event()`` on a WebSocket, ``body()`` over HTTP), and a line for the log (None once
    the log has said enough)."""

    status: int
    code: str
    message: str  # what the client is told
    kind: str = "invalid_request_error"
    log: str | None = None

    def event(self) -> dict[str, Any]:
        return error_event(self.code, self.message, status=self.status, kind=self.kind)

    def body(self) -> bytes:
        return error_body(self.code, self.message, kind=self.kind)


@dataclass(slots=True)
class Forward:
    """Hand this connection or request to the fallback (a new episode, recorded there)."""


class ReplayEngine:
    """Server-wide replay state: the recordings, how often each was served, mismatches."""

    def __init__(
        self,
        recorded: Sequence[RecordedConnection] = (),
        requests: Sequence[RecordedRequest] = (),
        *,
        mode: str = "tolerant",
        ignore: Ignore | None = None,
        speed: float = 1.0,
        verbose_mismatch: bool = False,
        fallback: bool = False,
    ) -> None:
        self.recorded = list(recorded)
        self.requests = list(requests)
        self.mode = mode
        self.ignore = ignore or Ignore()  # paths tolerant matching skips (and the defaults)
        self.speed = speed
        self.verbose_mismatch = verbose_mismatch  # mismatch errors quote the recording
        self.fallback = fallback  # what matches nothing is forwarded, not refused
        self.stats = ReplayStats()

    # WebSocket ---------------------------------------------------------------------------

    def connect(self, target: str) -> LiveConnection | Refusal:
        """A live WebSocket upgrade for ``target`` (path and query): its state, or a 404
        when nothing was recorded on that path (and there is no fallback)."""
        path = target.split("?", 1)[0]
        candidates = [c for c in self.recorded if c.path == target] or [
            c for c in self.recorded if c.path.split("?", 1)[0] == path
        ]
        if not candidates and not self.fallback:
            message = f"tracer replay: no recorded WebSocket connection for {target}"
            return Refusal(404, "not_found", message, log=message.removeprefix("tracer replay: "))
        self.stats.connections += 1
        return LiveConnection(self, candidates)

    # HTTP --------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: bytes) -> Plan | Refusal | Forward:
        """A live HTTP request on ``path`` (no query): the least-served recorded request
        (earliest first) that it matches, played as recorded."""
        candidates = [r for r in self.requests if r.path.split("?", 1)[0] == path]
        if method != "POST" or not candidates:
            if self.fallback:
                return Forward()
            message = f"tracer replay: no recorded request for {method} {path}"
            return Refusal(404, "not_found", message, log=message.removeprefix("tracer replay: "))
        served = self.stats.served
        fitting: list[RecordedRequest] = []
        problem: Mismatch | None = None
        for req in candidates:
            differs = match(body, req.body, self.mode, self.ignore)
            if differs is None:
                fitting.append(req)
            elif problem is None:
                problem = differs
        if not fitting:
            if self.fallback:
                return Forward()
            what = (
                f"no recorded request matches; the closest is recorded connection "
                f"{candidates[0].conn}"
            )
            return self.mismatch(what, problem)
        chosen = min(fitting, key=lambda r: (served.get(r.conn, 0), r.t_request))
        self.stats.turns += 1
        self._served(chosen.conn)
        steps = [(self._delay(f.t_ns - chosen.t_request), f) for f in chosen.answer]
        return Plan(steps, status=chosen.status, streamed=chosen.streamed)

    # Both --------------------------------------------------------------------------------

    def mismatch(self, what: str, problem: Mismatch | None) -> Refusal:
        """Count a mismatch and keep the first ones in full (a flood must not grow memory);
        the refusal says where the message differed, and what the recording holds only
        with ``verbose_mismatch``."""
        detail = f"{what}: {problem.describe()}" if problem else what
        stats = self.stats
        stats.mismatch_count += 1
        log = None
        if len(stats.mismatches) < MAX_MISMATCHES_KEPT:
            stats.mismatches.append(detail)
            log = f"mismatch: {detail}"
        elif stats.mismatch_count == MAX_MISMATCHES_KEPT + 1:
            log = f"more than {MAX_MISMATCHES_KEPT} mismatches: no longer logged"
        told = (
            what
            if problem is None
            else f"{what}: {problem.describe(recorded=self.verbose_mismatch)}"
        )
        return Refusal(400, "replay_mismatch", f"tracer replay: {told}",
                       kind="tracer_replay_mismatch", log=log)  # fmt: skip

    def forwarded(self) -> None:
        """Count a connection or request handed to the fallback."""
        self.stats.forwarded += 1

    def all_served(self) -> bool:
        """Every recorded connection and request was served at least once."""
        served = self.stats.served
        conns = [c.conn for c in self.recorded] + [r.conn for r in self.requests]
        return all(served.get(conn) for conn in conns)

    def _served(self, conn: int) -> None:
        self.stats.served[conn] = self.stats.served.get(conn, 0) + 1

    def _delay(self, gap_ns: int) -> float:
        return gap_ns / 1e9 / self.speed if self.speed > 0 else 0.0


class LiveConnection:
    """One live WebSocket connection: the recordings it may follow (same path), the one it
    follows once its first message chose it, and the last exchange played."""

    def __init__(self, engine: ReplayEngine, candidates: list[RecordedConnection]) -> None:
        self.engine = engine
        self.candidates = candidates
        self.chosen: RecordedConnection | None = None
        self.position = 0  # index of the last exchange played

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the recordings on this path agreed to."""
        return sorted({c.subprotocol for c in self.candidates if c.subprotocol})

    def opening(self) -> Plan | None:
        """What to send before the client speaks: a recording whose server spoke first."""
        leading = [c for c in self.candidates if c.exchanges[0].server]
        if not leading:
            return None
        self._choose(self._least_served(leading))
        assert self.chosen is not None
        return self._plan(self.chosen.exchanges[0], close=None)

    def message(self, data: bytes) -> Plan | Refusal | Forward:
        """The plan for the live client message ``data``, or why none answers it."""
        engine = self.engine
        if self.chosen is None:
            firsts = [(c, c.first_message) for c in self.candidates]
            fitting = [
                c
                for c, first in firsts
                if first is not None and not match(data, first, engine.mode, engine.ignore)
            ]
            if not fitting and engine.fallback:
                return Forward()
            if not fitting:
                first = firsts[0][1] or b""
                problem = match(data, first, engine.mode, engine.ignore) if first else None
                return engine.mismatch(
                    f"no recorded connection on this path starts with this message; the closest "
                    f"is the first message of recorded connection {firsts[0][0].conn}",
                    problem,
                )
            self._choose(self._least_served(fitting))
        assert self.chosen is not None
        exchanges = self.chosen.exchanges
        nxt = next((i for i in range(self.position + 1, len(exchanges))
                    if exchanges[i].client is not None), None)  # fmt: skip
        if nxt is None:
            return engine.mismatch(
                f"the recording of connection {self.chosen.conn} has no more client messages",
                None,
            )
        expected = exchanges[nxt]
        assert expected.client is not None
        problem = match(data, expected.client, engine.mode, engine.ignore)
        if problem is not None:
            return engine.mismatch(
                f"message {nxt} of recorded connection {self.chosen.conn} does not match",
                problem,
            )
        self.position = nxt
        engine.stats.turns += 1
        close = None
        if nxt == len(exchanges) - 1 and self.chosen.closed_by == "server":
            close = (self.chosen.close_code or 1000, self.chosen.close_reason)
        return self._plan(expected, close=close)

    def _plan(self, exchange: Exchange, close: tuple[int, str] | None) -> Plan:
        delay = self.engine._delay
        return Plan([(delay(f.t_ns - exchange.t_client), f) for f in exchange.server], close)

    def _least_served(self, options: list[RecordedConnection]) -> RecordedConnection:
        served = self.engine.stats.served
        return min(options, key=lambda c: (served.get(c.conn, 0), c.conn))

    def _choose(self, recorded: RecordedConnection) -> None:
        self.chosen = recorded
        self.engine._served(recorded.conn)
