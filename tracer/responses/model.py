"""The Responses protocol model: frames -> events -> turns (no I/O).

``TurnSegmenter`` is fed trace records in order and yields ``Turn`` objects as they end. It
keeps per connection the turns in flight, one queue per lane (``stream_id``), so events of
lanes that interleave on the wire go to the right turn. Streaming output deltas, the bulk of
any session, are recognised by a byte search and never JSON-decoded.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from tracer.responses.turns import (
    TEXT_LIMIT,
    Connection,
    Turn,
    dict_items,
    loads,
)
from tracer.trace.caps import frames_exceeded
from tracer.trace.errors import LimitExceeded
from tracer.trace.records import Close, Direction, Frame, Opcode, Open, Record

__all__ = ["TEXT_LIMIT", "Connection", "Turn", "TurnSegmenter", "dict_items", "loads"]

TERMINAL = {
    "response.completed": "completed",
    "response.failed": "failed",
    "response.incomplete": "incomplete",
}
# Events whose first occurrence marks the first output token of a turn.
_TOKEN_TYPES = (
    b"response.output_text.delta",
    b"response.function_call_arguments.delta",
    b"response.reasoning_summary_text.delta",
    b"response.reasoning_text.delta",
    b"response.refusal.delta",
    b"response.audio.delta",
    b"response.custom_tool_call_input.delta",
)
_DELTA_MARK = b'.delta"'
_CLIENT, _TEXT = Direction.CLIENT, Opcode.TEXT
_OBJECT = re.compile(rb"[ \t\r\n]*\{")  # how a JSON object starts: cheaper than a parse


class TurnSegmenter:
    """Feeds on records; yields turns when they end (or when the input ends)."""

    def __init__(
        self,
        *,
        collect_text: bool = False,
        text_limit: int = TEXT_LIMIT,
        keep_frames: bool = False,
        frame_budget: int = 64 * 1024 * 1024,
        max_turns: int | None = None,
        max_connections: int | None = None,
        max_frames: int | None = None,
    ) -> None:
        self.connections: dict[int, Connection] = {}
        # Caps (None: none): past them, LimitExceeded, rather than memory without bound.
        self.max_turns = max_turns
        self.max_connections = max_connections
        self.max_frames = max_frames
        self._frame_cap = max_frames if max_frames is not None else float("inf")
        self.frames = 0
        self._collect_text = collect_text
        self._text_limit = text_limit  # characters of output text kept per turn
        self._keep_frames = keep_frames  # each turn keeps its create, steers and events
        self._frame_budget = frame_budget  # payload bytes of frames one turn keeps at most
        self._next_index = 0
        self.t_first: int | None = None
        self.t_last: int = 0

    def feed(self, records: Iterable[Record]) -> Iterator[tuple[str, Turn]]:
        """Process records in trace order, yielding ``("start", turn)`` when a create is
        seen and ``("end", turn)`` when its turn has ended."""
        frame_type = Frame
        on_frame = self._frame
        for record in records:
            kind = type(record)
            if kind is frame_type:
                # Plain calls, not generators: most frames start or end nothing.
                events = on_frame(record)  # type: ignore[arg-type]
                if events:
                    yield from events
            elif kind is Open:
                self._open(record)  # type: ignore[arg-type]
            elif kind is Close:
                yield from self._close(record)  # type: ignore[arg-type]

    def finish(self) -> Iterator[tuple[str, Turn]]:
        """Turns still in flight when the trace ended: status ``unfinished``."""
        pending = [t for c in self.connections.values() for q in c.lanes.values() for t in q]
        for c in self.connections.values():
            c.lanes.clear()
        for turn in sorted(pending, key=lambda t: t.index):
            yield "end", turn

    def _connection(self, conn: int, t_ns: int) -> Connection:
        c = self.connections.get(conn)
        if c is None:  # frames of a connection whose open record is missing
            self._check_connections(conn)
            c = self.connections[conn] = Connection(conn=conn, t_open=t_ns)
        return c

    def _check_connections(self, conn: int) -> None:
        cap = self.max_connections
        if cap is not None and len(self.connections) >= cap and conn not in self.connections:
            raise LimitExceeded(
                f"the trace holds more than {cap:,} connections (the connections cap; "
                "raise it with TRACER_MAX_CONNECTIONS=N)"
            )

    def _open(self, record: Open) -> None:
        self._check_connections(record.conn)
        self.connections[record.conn] = Connection(
            conn=record.conn,
            url=record.url,
            transport=record.transport,
            t_open=record.t_ns,
            handshake_ns=record.handshake_ns,
            status=record.status,
        )
        self._stamp(record.t_ns)

    def _close(self, record: Close) -> Iterator[tuple[str, Turn]]:
        c = self._connection(record.conn, record.t_ns)
        c.t_close = record.t_ns
        c.close_code, c.close_by, c.close_error = record.code, record.by, record.error
        self._stamp(record.t_ns)
        pending = sorted((t for q in c.lanes.values() for t in q), key=lambda t: t.index)
        c.lanes.clear()
        failure = _close_failure(record)
        for turn in pending:
            if failure is not None:  # the close cut the turn short
                turn.status, turn.error_code = "error", failure
                turn.error_message = record.error or record.reason or None
                turn.t_end = record.t_ns
                _finish_output(turn, None)
            yield "end", turn

    def _stamp(self, t: int) -> None:
        if self.t_first is None:
            self.t_first = t
        if t > self.t_last:
            self.t_last = t

    def _frame(self, frame: Frame) -> list[tuple[str, Turn]] | None:
        conn, t, direction, opcode, payload, fin = frame  # unpacked: the hottest path
        c = self.connections.get(conn) or self._connection(conn, t)
        self.frames += 1
        if self.frames > self._frame_cap:
            raise LimitExceeded(frames_exceeded(self.max_frames or 0))
        if t > self.t_last:
            self.t_last = t
        if self.t_first is None:
            self.t_first = t
        client = direction is _CLIENT
        if client:
            c.client_frames += 1
            c.client_bytes += len(payload)
        else:
            c.server_frames += 1
            c.server_bytes += len(payload)
        if opcode is not _TEXT or not fin:
            if opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                c.message_types[f"{direction.label}:<{opcode.label}>"] += 1
            return None
        if client:
            return self._client_message(c, frame)
        return self._server_message(c, frame)

    def _client_message(self, c: Connection, frame: Frame) -> list[tuple[str, Turn]] | None:
        body = loads(frame.payload) if _OBJECT.match(frame.payload) else None
        if not isinstance(body, dict):
            c.message_types["client:<non-json>"] += 1
            return None
        kind = body.get("type")
        if c.transport == "http" and kind is None:
            kind = "response.create"  # an HTTP request body is a create without its type
        c.message_types[f"client:{kind}"] += 1
        if kind == "response.create":
            if self.max_turns is not None and self._next_index >= self.max_turns:
                raise LimitExceeded(
                    f"the trace holds more than {self.max_turns:,} turns (the turns cap; "
                    "raise it with TRACER_MAX_TURNS=N)"
                )
            request = {k: v for k, v in body.items() if k != "type"}
            lane = request.get("stream_id") if isinstance(request.get("stream_id"), str) else None
            prev = request.get("previous_response_id")
            turn = Turn(
                index=self._next_index,
                conn=c.conn,
                stream_id=lane,
                t_create=frame.t_ns,
                request=request,
                request_bytes=len(frame.payload),
                transport=c.transport,
                previous_response_id=prev if isinstance(prev, str) else None,
            )
            if self._keep_frames:
                self._keep(turn, frame)
            self._next_index += 1
            c.turns += 1
            c.named_lanes = c.named_lanes or lane is not None
            c.lanes.setdefault(lane, deque()).append(turn)
            return [("start", turn)]
        elif kind == "response.steer":
            lane = body.get("stream_id") if isinstance(body.get("stream_id"), str) else None
            queue = c.lanes.get(lane)
            if queue:
                queue[0].steers += 1
                if self._keep_frames:
                    self._keep(queue[0], frame)
        return None

    def _server_message(self, c: Connection, frame: Frame) -> list[tuple[str, Turn]] | None:
        payload = frame.payload
        head = payload[:96]
        if _DELTA_MARK in head and (not c.named_lanes or b'"stream_id"' not in payload):
            self._delta(c, frame, head)  # the common case, with no JSON parsing
            return None
        event = loads(payload) if _OBJECT.match(payload) else None
        if not isinstance(event, dict):
            c.message_types["server:<non-json>"] += 1
            return None
        kind = str(event.get("type"))
        c.message_types[f"server:{kind}"] += 1
        lane = event.get("stream_id") if isinstance(event.get("stream_id"), str) else None
        queue = c.lanes.get(lane)
        if not queue:
            c.orphan_events += 1
            return None
        turn = queue[0]
        if c.transport == "http" and event.get("object") == "response" and "type" not in event:
            return self._http_body(c, frame, event, turn, queue)
        if kind == "error" or (
            c.transport == "http" and isinstance(event.get("error"), dict) and "type" not in event
        ):
            return self._error(frame, event, kind, turn, queue)
        self._attribute(turn, frame, kind)
        if turn.t_first_token is None and kind.encode() in _TOKEN_TYPES:
            turn.t_first_token = frame.t_ns
        delta = event.get("delta")
        if self._collect_text and kind == "response.output_text.delta" and isinstance(delta, str):
            turn.add_text(delta, self._text_limit)
        response = event.get("response")
        if (
            isinstance(response, dict)
            and turn.response_id is None
            and isinstance(response.get("id"), str)
        ):
            turn.response_id = response["id"]
        if turn.t_first_event is None:
            if kind.startswith("response."):  # response.created, or whichever comes first
                turn.t_first_event = frame.t_ns
            else:  # a vendor's event before the response started (codex.rate_limits)
                turn.vendor_events += 1
        if kind in _ITEM_EVENTS:
            _take_item(turn, kind, event.get("item"))
        status = TERMINAL.get(kind)
        if status is None:
            return None
        turn.status = status
        turn.t_end = frame.t_ns
        if isinstance(response, dict):
            self._take_response(turn, response)
        else:
            _finish_output(turn, None)
        queue.popleft()
        return [("end", turn)]

    def _keep(self, turn: Turn, frame: Frame) -> None:
        """Keep a frame for the turn's frame view, within the turn's budget."""
        if turn.frames_dropped:
            return
        turn.frames_bytes += len(frame.payload)
        if turn.frames_bytes > self._frame_budget:
            turn.frames, turn.frames_dropped = [], True  # read them again when asked
        else:
            turn.frames.append(frame)

    def _delta(self, c: Connection, frame: Frame, head: bytes) -> None:
        """A streaming delta on the default lane, recognised from its first bytes."""
        kind, key, is_token = _kind_of(head)
        c.message_types[key] += 1
        queue = c.lanes.get(None)
        if not queue:
            c.orphan_events += 1
            return
        turn = queue[0]
        turn.events += 1
        turn.event_bytes += len(frame.payload)
        turn.event_types[kind] += 1
        if self._keep_frames:
            self._keep(turn, frame)
        if is_token and turn.t_first_token is None:
            turn.t_first_token = frame.t_ns
        if self._collect_text and kind == "response.output_text.delta":
            event = loads(frame.payload)
            if isinstance(event, dict) and isinstance(event.get("delta"), str):
                turn.add_text(event["delta"], self._text_limit)

    def _error(
        self, frame: Frame, event: dict[str, Any], kind: str, turn: Turn, queue: deque[Turn]
    ) -> list[tuple[str, Turn]]:
        """An error event ends its turn. An error for a create that never started belongs to
        the newest such create (a gateway refusing a second create in flight), otherwise
        to the running one."""
        for candidate in queue:
            if candidate.response_id is None and candidate is not turn:
                turn = candidate
                break
        nested = event.get("error")
        error: dict[str, Any] = nested if isinstance(nested, dict) else event
        turn.status = "error"
        turn.error_code = _str(error.get("code"))
        turn.error_message = _str(error.get("message"))
        self._attribute(turn, frame, kind)
        turn.t_end = frame.t_ns
        queue.remove(turn)
        return [("end", turn)]

    def _http_body(
        self,
        c: Connection,
        frame: Frame,
        body: dict[str, Any],
        turn: Turn,
        queue: deque[Turn],
    ) -> list[tuple[str, Turn]]:
        """A non-streamed HTTP answer: one Response object, a whole turn in one frame."""
        self._attribute(turn, frame, "response")
        if isinstance(body.get("id"), str):
            turn.response_id = body["id"]
        turn.t_first_event = turn.t_end = frame.t_ns
        status = body.get("status")
        turn.status = status if status in _BODY_STATUS else "unfinished"
        self._take_response(turn, body)
        queue.remove(turn)
        return [("end", turn)]

    @staticmethod
    def _take_response(turn: Turn, response: dict[str, Any]) -> None:
        usage = response.get("usage")
        turn.usage = usage if isinstance(usage, dict) else None
        _finish_output(turn, response.get("output"))
        err = response.get("error")
        if isinstance(err, dict):
            turn.error_code = _str(err.get("code"))
            turn.error_message = _str(err.get("message"))

    def _attribute(self, turn: Turn, frame: Frame, kind: str) -> None:
        turn.events += 1
        turn.event_bytes += len(frame.payload)
        turn.event_types[kind] += 1
        if self._keep_frames:
            self._keep(turn, frame)


_ITEM_EVENTS = frozenset(["response.output_item.added", "response.output_item.done"])
_BODY_STATUS = frozenset(["completed", "failed", "incomplete", "cancelled"])


def _take_item(turn: Turn, kind: str, item: Any) -> None:
    """An output item event: ``.done`` items are the output when ``completed`` lists none;
    every copy of a reasoning item is kept (their ``encrypted_content`` differ)."""
    if isinstance(item, dict):
        if kind == "response.output_item.done":
            turn.done_items.append(item)
        if item.get("type") == "reasoning":
            turn.copies.append(item)


def _finish_output(turn: Turn, output: Any) -> None:
    """A turn's output items: the final response's when it lists them, else the items of
    its ``output_item.done`` events (the Codex backend sends ``output: []``)."""
    turn.output = dict_items(output) or turn.done_items
    turn.done_items = []
    if turn.copies:  # the other copies of reasoning items (added, done) than the output's
        kept = {id(o) for o in turn.output}
        turn.copies = [o for o in turn.copies if id(o) not in kept]


def _close_failure(record: Close) -> str | None:
    """The error code of turns a close cut short, or None for a normal close."""
    if record.code is None:
        return "connection_dropped" if record.error else None
    if record.code in (1000, 1005):
        return None
    return f"websocket_close_{record.code}"


_KINDS: dict[bytes, tuple[str, str, bool]] = {}


def _kind_of(head: bytes) -> tuple[str, str, bool]:
    """An event's type from the start of its JSON (with or without spaces), without parsing
    it: the type, its ``message_types`` key, and whether it is an output token."""
    start = head.find(b'"type"')
    q1 = head.find(b'"', start + 6) if start >= 0 else -1
    q2 = head.find(b'"', q1 + 1) if q1 >= 0 else -1
    raw = head[q1 + 1 : q2] if q2 > q1 >= 0 else b"<unknown>"
    info = _KINDS.get(raw)
    if info is None:
        kind = raw.decode("utf-8", "replace")
        info = (kind, f"server:{kind}", raw in _TOKEN_TYPES)
        if len(_KINDS) < 1024:  # hostile traces could invent endless types
            _KINDS[raw] = info
    return info


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
