"""The Responses protocol model: a connection's frames -> turn events (no I/O).

``RESPONSES`` claims ``/responses`` connections and HTTP requests, and any connection whose
client sends ``response.create`` first. Its ``ResponsesReader`` keeps per connection the
turns in flight, one queue per lane (``stream_id``), so events of lanes that interleave on
the wire go to the right turn. Streaming output deltas, the bulk of any session, are
recognised by a byte search and never JSON-decoded; a batch's runs of them are counted
at once (``bulk``, ``count_bulk``).
"""

# Over 400 lines: one protocol's whole reading: creates, lanes, injects, errors, HTTP bodies.
from __future__ import annotations

import re
from collections import Counter, deque
from typing import Any

from tracer.protocols.base import Book, Protocol, Reader, Tokens, json_type_is, token_count
from tracer.protocols.events import Event, TurnAmended, TurnEnded, TurnStarted
from tracer.protocols.turns import Connection, Turn, dict_items, loads
from tracer.responses.timing import TIMING_EVENT
from tracer.trace.records import Close, Frame

__all__ = ["RESPONSES", "ResponsesProtocol", "ResponsesReader", "dict_items", "loads",
           "output_text"]  # fmt: skip

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
# A delta's start as the byte test of ``_server_message`` sees it: its type first, within
# the first 96 bytes, without a quote, escape or separator in it.
_BULK_DELTA = re.compile(
    rb'\{[ \t\r\n]{0,4}"type"[ \t\r\n]{0,4}:[ \t\r\n]{0,4}"([^"\\\xff]{0,64}\.delta)"'
)
_ENDED_KEPT = 8  # ended turns a late timing event may still name
_OBJECT = re.compile(rb"[ \t\r\n]*\{")  # how a JSON object starts: cheaper than a parse


def output_text(output: Any) -> str:
    """The text of a response's output: its messages' text parts, joined."""
    return "".join(
        str(part.get("text", ""))
        for item in dict_items(output)
        if item.get("type", "message") == "message"
        for part in dict_items(item.get("content"))
    )


class ResponsesProtocol(Protocol):
    """The Responses API, over WebSocket (``/v1/responses``) and HTTP."""

    name = "responses"

    def claims_open(self, path: str, transport: str, subprotocol: str | None) -> bool:
        # Every recorded HTTP request body is read as a create (a gateway's own paths too).
        return transport == "http" or path.rstrip("/").endswith("/responses")

    def claims_message(self, client: bool, kind: str) -> bool:
        return client and kind == "response.create"

    def reader(self, book: Book, connection: Connection) -> ResponsesReader:
        return ResponsesReader(book, connection)

    def starts_turn(self, client: bool, payload: bytes, http: bool) -> bool:
        # Over HTTP every recorded request body is a create; over WebSocket its type says.
        if not client:
            return False
        return http or (b"response.create" in payload and json_type_is(payload, "response.create"))

    def tokens(self, usage: Any) -> Tokens:
        return Tokens(
            input=token_count(usage, "input_tokens"),
            cached=token_count(usage, "input_tokens_details", "cached_tokens"),
            output=token_count(usage, "output_tokens"),
            cache_write=token_count(usage, "input_tokens_details", "cache_write_tokens"),
        )


RESPONSES = ResponsesProtocol()


class ResponsesReader(Reader):
    """One connection's Responses frames -> turn events."""

    def __init__(self, book: Book, connection: Connection) -> None:
        self.seg = book
        self.c = connection
        self.named_lanes = False  # a create with a stream_id was seen
        self.lanes: dict[str | None, deque[Turn]] = {}
        # Injections sent and not answered yet: the turn they went to, its id, the items.
        self.injects: deque[tuple[Turn | None, str | None, list[Any]]] = deque(maxlen=64)
        # The last turns that ended (response id, index): a timing event may come after.
        self.ended: deque[tuple[str | None, int]] = deque(maxlen=_ENDED_KEPT)

    def client(self, frame: Frame) -> list[Event] | None:
        return self._client_message(self.c, frame)

    def server(self, frame: Frame) -> list[Event] | None:
        return self._server_message(self.c, frame)

    def bulk(self) -> re.Pattern[bytes] | None:
        # With named lanes a delta may name its lane: each one is read.
        return None if self.named_lanes else _BULK_DELTA

    def count_bulk(self, kinds: list[bytes], times: list[int], first: int) -> None:
        c = self.c
        queue = self.lanes.get(None)
        turn = queue[0] if queue else None
        for raw, count in Counter(kinds).items():
            kind, key, _ = _kind_info(raw)
            c.message_types[key] += count
            if turn is not None:
                turn.event_types[kind] += count
        if turn is None:
            c.orphan_events += len(kinds)
            return
        turn.events += len(kinds)
        if turn.t_first_token is None:
            for i, raw in enumerate(kinds):
                if raw in _TOKEN_TYPES:
                    turn.t_first_token = times[first + i]
                    break

    def pending(self) -> list[Turn]:
        return sorted((t for q in self.lanes.values() for t in q), key=lambda t: t.index)

    def finish(self) -> list[Turn]:
        pending = self.pending()
        self.lanes.clear()
        return pending

    def close(self, record: Close, failure: str | None) -> list[Event]:
        pending = self.finish()
        for turn in pending:
            if failure is not None:  # the close cut the turn short
                turn.status, turn.error_code = "error", failure
                turn.error_message = record.error or record.reason or None
                turn.t_end = record.t_ns
                _finish_output(turn, None)
        return [TurnEnded(turn) for turn in pending]

    def _client_message(self, c: Connection, frame: Frame) -> list[Event] | None:
        body = loads(frame.payload) if _OBJECT.match(frame.payload) else None
        if not isinstance(body, dict):
            c.message_types["client:<non-json>"] += 1
            return None
        kind = body.get("type")
        if c.transport == "http" and kind is None:
            kind = "response.create"  # an HTTP request body is a create without its type
        c.message_types[f"client:{kind}"] += 1
        if kind == "response.create":
            request = {k: v for k, v in body.items() if k != "type"}
            lane = request.get("stream_id") if isinstance(request.get("stream_id"), str) else None
            prev = request.get("previous_response_id")
            turn = Turn(
                index=self.seg.next_index(c),
                conn=c.conn,
                stream_id=lane,
                t_create=frame.t_ns,
                request=request,
                request_bytes=len(frame.payload),
                transport=c.transport,
                previous_response_id=prev if isinstance(prev, str) else None,
            )
            path = c.url.split("?", 1)[0].rstrip("/")
            if c.transport == "http" and path.endswith("/responses/compact"):
                turn.kind = "compaction"
            self.seg.keep(turn, frame)
            self.named_lanes = self.named_lanes or lane is not None
            self.lanes.setdefault(lane, deque()).append(turn)
            return [TurnStarted(turn)]
        elif kind == "response.inject":
            rid = body.get("response_id")
            given = body.get("input")
            items = given if isinstance(given, list) else []
            target = self._running(rid if isinstance(rid, str) else None)
            self.injects.append((target, rid if isinstance(rid, str) else None, items))
        elif kind == "response.steer":
            lane = body.get("stream_id") if isinstance(body.get("stream_id"), str) else None
            queue = self.lanes.get(lane)
            if queue:
                queue[0].steers += 1
                self.seg.keep(queue[0], frame)
        return None

    def _server_message(self, c: Connection, frame: Frame) -> list[Event] | None:
        payload = frame.payload
        head = payload[:96]
        if _DELTA_MARK in head and (not self.named_lanes or b'"stream_id"' not in payload):
            self._delta(c, frame, head)  # the common case, with no JSON parsing
            return None
        event = loads(payload) if _OBJECT.match(payload) else None
        if not isinstance(event, dict):
            c.message_types["server:<non-json>"] += 1
            return None
        kind = str(event.get("type"))
        c.message_types[f"server:{kind}"] += 1
        if kind == TIMING_EVENT:
            return self._timing(event)
        if kind in _INJECT_ANSWERS:
            return self._inject_answer(event, kind)
        lane = event.get("stream_id") if isinstance(event.get("stream_id"), str) else None
        queue = self.lanes.get(lane)
        if not queue:
            c.orphan_events += 1
            return None
        turn = queue[0]
        if c.transport == "http" and event.get("object") in _BODIES and "type" not in event:
            return self._http_body(c, frame, event, turn, queue)
        if kind == "error" or (
            c.transport == "http" and isinstance(event.get("error"), dict) and "type" not in event
        ):
            return self._error(frame, event, kind, turn, queue)
        self._attribute(turn, frame, kind)
        if turn.t_first_token is None and kind.encode() in _TOKEN_TYPES:
            turn.t_first_token = frame.t_ns
        delta = event.get("delta")
        if (
            self.seg.collect_text
            and kind == "response.output_text.delta"
            and isinstance(delta, str)
        ):
            turn.add_text(delta, self.seg.text_limit)
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
        self.ended.append((turn.response_id, turn.index))
        return [TurnEnded(turn)]

    def _delta(self, c: Connection, frame: Frame, head: bytes) -> None:
        """A streaming delta on the default lane, recognised from its first bytes."""
        kind, key, is_token = _kind_of(head)
        c.message_types[key] += 1
        queue = self.lanes.get(None)
        if not queue:
            c.orphan_events += 1
            return
        turn = queue[0]
        turn.events += 1
        turn.event_types[kind] += 1
        self.seg.keep(turn, frame)
        if is_token and turn.t_first_token is None:
            turn.t_first_token = frame.t_ns
        if self.seg.collect_text and kind == "response.output_text.delta":
            event = loads(frame.payload)
            if isinstance(event, dict) and isinstance(event.get("delta"), str):
                turn.add_text(event["delta"], self.seg.text_limit)

    def _error(
        self, frame: Frame, event: dict[str, Any], kind: str, turn: Turn, queue: deque[Turn]
    ) -> list[Event]:
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
        self.ended.append((turn.response_id, turn.index))
        return [TurnEnded(turn)]

    def _http_body(
        self,
        c: Connection,
        frame: Frame,
        body: dict[str, Any],
        turn: Turn,
        queue: deque[Turn],
    ) -> list[Event]:
        """A non-streamed HTTP answer: one Response object, a whole turn in one frame."""
        self._attribute(turn, frame, "response")
        if isinstance(body.get("id"), str):
            turn.response_id = body["id"]
        turn.t_first_event = turn.t_end = frame.t_ns
        status = body.get("status")
        if body.get("object") == "response.compaction" and status is None:
            status = "completed"  # a compaction has no status: it came back whole
        turn.status = status if status in _BODY_STATUS else "unfinished"
        self._take_response(turn, body)
        queue.remove(turn)
        self.ended.append((turn.response_id, turn.index))
        return [TurnEnded(turn)]

    def _running(self, rid: str | None) -> Turn | None:
        """The running turn with response id ``rid`` (any lane), else the default lane's."""
        for queue in self.lanes.values():
            for t in queue:
                if rid is not None and t.response_id == rid:
                    return t
        default = self.lanes.get(None)
        return default[0] if default and rid is None else None

    def _inject_answer(self, event: dict[str, Any], kind: str) -> list[Event] | None:
        """The server took an injection into the running response (its items are input of
        that turn) or refused it (its code is kept; the items count nowhere)."""
        rid = event.get("response_id")
        found = next((x for x in self.injects if rid is None or x[1] == rid), None)
        if found is None:
            self.c.orphan_events += 1
            return None
        self.injects.remove(found)
        turn, target, items = found
        error = event.get("error")
        code = (_str(error.get("code")) if isinstance(error, dict) else None) or "failed"
        if turn is None:  # sent to a response that had ended: a refusal to note on it
            index = next((i for r, i in reversed(self.ended) if r == target), None)
            if index is None or kind == "response.inject.created":
                return None
            return [TurnAmended(index, rejected=code)]
        if kind == "response.inject.created":
            turn.injected.extend(items)
            return None
        if turn.t_end is None:
            turn.rejected.append(code)
            return None
        return [TurnAmended(turn.index, rejected=code)]

    def _timing(self, event: dict[str, Any]) -> list[Event] | None:
        """The service's timing of a response: the turn it names (``response_id``), else
        the running turn of its lane, else the one that ended last. Timing for a turn that
        has ended amends its report."""
        metrics = event.get("timing_metrics")
        if not isinstance(metrics, dict):
            return None
        rid = event.get("response_id")
        rid = rid if isinstance(rid, str) else None
        lane = event.get("stream_id") if isinstance(event.get("stream_id"), str) else None
        running = self.lanes.get(lane) or ()
        turn = next((t for t in running if rid is None or t.response_id == rid), None)
        if turn is not None:  # it has not ended: its report will carry it
            turn.timing = metrics
            return None
        index = next((i for r, i in reversed(self.ended) if rid is None or r == rid), None)
        if index is None:
            self.c.orphan_events += 1
            return None
        return [TurnAmended(index, timing=metrics)]

    @staticmethod
    def _take_response(turn: Turn, response: dict[str, Any]) -> None:
        usage = response.get("usage")
        turn.usage = usage if isinstance(usage, dict) else None
        _finish_output(turn, response.get("output"))
        err = response.get("error")
        if isinstance(err, dict):
            turn.error_code = _str(err.get("code"))
            turn.error_message = _str(err.get("message"))
        details = response.get("incomplete_details")
        if turn.status == "incomplete" and isinstance(details, dict) and turn.error_code is None:
            turn.error_code = _str(details.get("reason"))  # max_output_tokens, content_filter

    def _attribute(self, turn: Turn, frame: Frame, kind: str) -> None:
        turn.events += 1
        turn.event_types[kind] += 1
        self.seg.keep(turn, frame)


_ITEM_EVENTS = frozenset(["response.output_item.added", "response.output_item.done"])
_INJECT_ANSWERS = frozenset(["response.inject.created", "response.inject.failed"])
_BODIES = frozenset(["response", "response.compaction"])  # a whole HTTP answer's objects
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


_KINDS: dict[bytes, tuple[str, str, bool]] = {}


def _kind_of(head: bytes) -> tuple[str, str, bool]:
    """An event's type from the start of its JSON (with or without spaces), without parsing
    it: the type, its ``message_types`` key, and whether it is an output token."""
    start = head.find(b'"type"')
    q1 = head.find(b'"', start + 6) if start >= 0 else -1
    q2 = head.find(b'"', q1 + 1) if q1 >= 0 else -1
    return _kind_info(head[q1 + 1 : q2] if q2 > q1 >= 0 else b"<unknown>")


def _kind_info(raw: bytes) -> tuple[str, str, bool]:
    info = _KINDS.get(raw)
    if info is None:
        kind = raw.decode("utf-8", "replace")
        info = (kind, f"server:{kind}", raw in _TOKEN_TYPES)
        if len(_KINDS) < 1024:  # hostile traces could invent endless types
            _KINDS[raw] = info
    return info


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
