"""The scripted Responses engine: requests in, planned server events out (no I/O).

An ``Engine`` holds the script and the server-wide state (an HTTP response store); each
WebSocket connection gets a ``Connection`` with its own connection-scoped cache, one entry
per lane, as the real service keeps it. ``Connection.start`` validates a ``response.create``
and returns a ``Plan``: the events to send, each with the delay before it, and what to do at
the end. The asyncio server only sleeps and sends.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from typing import Any

from tracer.upstream.script import Call, Fault, Script, Timing, TurnScript

__all__ = ["Connection", "Engine", "Plan", "Step", "error_event"]

MAX_LANES = 32
STREAM_ID = re.compile(r"^[A-Za-z0-9_.-]{1,256}$")
CREATED_AT = 1_764_000_000  # a fixed clock: events must not depend on when they were made


@dataclass(slots=True)
class Step:
    """Wait ``delay`` seconds, then send ``event``."""

    delay: float
    event: dict[str, Any]


@dataclass(slots=True)
class Plan:
    """What the server does for one create: steps, then an optional fault at the end."""

    steps: list[Step]
    response_id: str | None = None
    lane: str | None = None
    fault: Fault | None = None  # "close" or "drop" after the steps
    _commit: Any = None  # called when the plan has been carried out

    def finish(self) -> None:
        """Mark the plan carried out: the response enters the connection's cache."""
        if self._commit is not None:
            self._commit()
            self._commit = None


@dataclass(slots=True)
class _Cached:
    """A completed response as the connection's cache holds it."""

    id: str
    items: list[dict[str, Any]]  # the whole context: chain, input and output items
    instructions: str | None
    tools_json: str


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def error_event(
    code: str,
    message: str,
    *,
    status: int = 400,
    param: str | None = None,
    kind: str = "invalid_request_error",
    stream_id: str | None = None,
) -> dict[str, Any]:
    """An ``error`` server event in the WebSocket mode's shape."""
    ev: dict[str, Any] = {
        "type": "error",
        "status": status,
        "error": {"type": kind, "code": code, "message": message, "param": param},
    }
    if stream_id is not None:
        ev["stream_id"] = stream_id
    return ev


def _normalise_input(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, list):
        return [v if isinstance(v, dict) else {"value": v} for v in value]
    return [{"value": value}]


def _is_output(item: dict[str, Any]) -> bool:
    kind = item.get("type", "message")
    if kind == "message":
        return item.get("role") == "assistant"
    return kind in ("function_call", "reasoning", "custom_tool_call")


def conversation_depth(items: list[dict[str, Any]]) -> int:
    """How many model responses a context holds: runs of consecutive output items."""
    depth = 0
    previous = False
    for item in items:
        out = _is_output(item)
        if out and not previous:
            depth += 1
        previous = out
    return depth


class Engine:
    """Server-wide state of the scripted upstream: the script and the HTTP store."""

    def __init__(self, script: Script, *, single_flight: bool = False) -> None:
        self.script = script
        self.single_flight = single_flight
        self._connections = 0
        self.http_store: dict[str, _Cached] = {}  # store=true responses made over HTTP
        self.fired: set[int] = set()  # script turns whose one-shot fault has fired

    def connection(self) -> Connection:
        """State for a new WebSocket connection (connection-scoped cache, lanes)."""
        self._connections += 1
        return Connection(self, f"ws{self._connections}")

    def http_connection(self) -> Connection:
        """State for one HTTP request: previous ids resolve against the server's store."""
        self._connections += 1
        return Connection(self, f"http{self._connections}", store=self.http_store)


class Connection:
    """One connection's cache and counters; ``start`` plans the answer to a create."""

    def __init__(self, engine: Engine, name: str, store: dict[str, _Cached] | None = None):
        self.engine = engine
        self.name = name
        self.lanes: dict[str | None, _Cached] = {}
        self.in_flight = 0
        self._store = store
        self._count = 0

    def _id(self, prefix: str) -> str:
        self._count += 1
        seed = f"{self.engine.script.seed}/{self.name}/{self._count}".encode()
        return f"{prefix}_{hashlib.sha256(seed).hexdigest()[:40]}"

    def _rng(self, response_id: str) -> random.Random:
        return random.Random(f"{self.engine.script.seed}/{response_id}")

    def check_stream_id(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """An error event if the create's ``stream_id`` is invalid or one lane too many."""
        sid = body.get("stream_id")
        if sid is None:
            return None
        if not isinstance(sid, str) or not STREAM_ID.match(sid):
            return error_event(
                "invalid_stream_id",
                "stream_id must be 1-256 characters of A-Z, a-z, 0-9, '_', '.', '-'.",
                param="stream_id",
            )
        named = [lane for lane in self.lanes if lane is not None]
        if sid not in self.lanes and len(named) >= MAX_LANES:
            return error_event(
                "websocket_stream_limit_reached",
                f"At most {MAX_LANES} named streams per connection.",
                stream_id=sid,
            )
        return None

    def _resolve(self, lane: str | None, prev: str) -> _Cached | None:
        if self._store is not None:
            return self._store.get(prev)
        cached = self.lanes.get(lane)
        if cached is not None:
            return cached if cached.id == prev else None
        for other in self.lanes.values():  # a new lane may fork another lane's response
            if other.id == prev:
                return other
        return None

    def start(self, body: dict[str, Any]) -> Plan:
        """Plan the answer to one ``response.create`` (its body, the ``type`` key aside)."""
        lane = body.get("stream_id") if isinstance(body.get("stream_id"), str) else None
        prev = body.get("previous_response_id")
        script = self.engine.script
        if prev is not None and not isinstance(prev, str):
            return self._error_plan(
                lane, error_event("invalid_type", "previous_response_id must be a string")
            )
        chain: _Cached | None = None
        if prev:
            chain = self._resolve(lane, prev)
            if chain is None:
                return self._error_plan(
                    lane,
                    error_event(
                        "previous_response_not_found",
                        f"Previous response with id '{prev}' not found.",
                        param="previous_response_id",
                        stream_id=lane,
                    ),
                )
        new_items = _normalise_input(body.get("input"))
        instructions = body.get("instructions")
        instructions = instructions if isinstance(instructions, str) else None
        raw_tools = body.get("tools")
        tools: list[Any] = raw_tools if isinstance(raw_tools, list) else []
        tools_json = canonical(tools) if tools else ""
        context = (chain.items if chain else []) + new_items

        context_bytes = len(tools_json) + len((instructions or "").encode())
        context_bytes += sum(len(canonical(i).encode()) for i in context)
        cached_bytes = 0
        if chain is not None:
            cached_bytes = sum(len(canonical(i).encode()) for i in chain.items)
            if chain.instructions == instructions and instructions:
                cached_bytes += len(instructions.encode())
            if chain.tools_json == tools_json:
                cached_bytes += len(tools_json)

        response_id = self._id("resp")
        rng = self._rng(response_id)
        generate = body.get("generate", True) is not False
        depth = conversation_depth(context)
        turn = script.turn(depth) if generate else TurnScript()
        timing = turn.timing or script.timing
        model = body.get("model") if isinstance(body.get("model"), str) else script.model

        response: dict[str, Any] = {
            "id": response_id,
            "object": "response",
            "created_at": CREATED_AT + self._count,
            "status": "in_progress",
            "background": False,
            "error": None,
            "incomplete_details": None,
            "instructions": instructions,
            "max_output_tokens": body.get("max_output_tokens"),
            "model": model,
            "output": [],
            "parallel_tool_calls": True,
            "previous_response_id": prev,
            "reasoning": {"effort": None, "summary": None},
            "store": body.get("store", True) is not False,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": tools,
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": None,
            "user": None,
            "metadata": body.get("metadata") if isinstance(body.get("metadata"), dict) else {},
        }
        builder = _EventBuilder(lane, timing, rng)
        builder.add(builder.delay(timing.ttfe_ms), "response.created", response=_copy(response))
        builder.add(0.0, "response.in_progress", response=_copy(response))
        output: list[dict[str, Any]] = []
        first_token = max(0.0, timing.ttft_ms - timing.ttfe_ms)
        if generate and turn.text:
            output.append(builder.message(self._id("msg"), len(output), turn.text, first_token))
            first_token = 0.0
        for call in self._calls_for(turn.calls, tools):
            item = builder.function_call(
                self._id("fc"), self._id("call"), len(output), call, first_token
            )
            output.append(item)
            first_token = 0.0

        out_tokens = builder.tokens
        status = turn.status if generate else "completed"
        response.update(
            status=status,
            output=output,
            usage={
                "input_tokens": context_bytes // 4,
                "input_tokens_details": {"cached_tokens": cached_bytes // 4},
                "output_tokens": out_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": context_bytes // 4 + out_tokens,
            },
        )
        if status == "incomplete":
            response["incomplete_details"] = {"reason": "max_output_tokens"}
        final_type = {"completed": "response.completed"}.get(status, f"response.{status}")
        builder.add(builder.delay(1000.0 / timing.tokens_per_s), final_type, response=response)

        steps = builder.steps
        fault = turn.fault
        if fault is not None and not fault.repeat:
            if depth in self.engine.fired:
                fault = None
            else:
                self.engine.fired.add(depth)
        plan = Plan(steps=steps, response_id=response_id, lane=lane)
        if fault is not None:
            cut = min(max(fault.after_events, 0), len(steps))
            if fault.kind == "error":
                err = error_event(
                    fault.error_code,
                    fault.message,
                    status=fault.status,
                    kind="server_error",
                    stream_id=lane,
                )
                plan.steps = [*steps[:cut], Step(0.0, err)]
                plan._commit = lambda: self._evict(lane, prev)
                return plan
            if fault.kind == "stall":
                if cut < len(steps):
                    steps[cut].delay += fault.stall_ms / 1000.0
            else:  # close or drop: the connection ends, the response never completes
                plan.steps = steps[:cut]
                plan.fault = fault
                return plan

        def commit() -> None:
            cached = _Cached(response_id, context + output, instructions, tools_json)
            if status == "completed":
                self.lanes[lane] = cached
                if self._store is not None and response["store"]:
                    self._store[response_id] = cached
            else:
                self._evict(lane, prev)

        plan._commit = commit
        return plan

    def _error_plan(self, lane: str | None, event: dict[str, Any]) -> Plan:
        # A rejected create changes nothing: what it referenced was not cached anyway.
        return Plan(steps=[Step(0.0, event)], lane=lane)

    def _evict(self, lane: str | None, prev: str | None) -> None:
        cached = self.lanes.get(lane)
        if cached is not None and (prev is None or cached.id == prev):
            del self.lanes[lane]

    @staticmethod
    def _calls_for(calls: tuple[Call, ...], tools: list[Any]) -> list[Call]:
        """The script's calls, mapped onto the function tools the client declared."""
        declared: list[str] = [
            t["name"]
            for t in tools
            if isinstance(t, dict)
            and t.get("type", "function") == "function"
            and isinstance(t.get("name"), str)
        ]
        out = []
        for call in calls:
            if call.name in declared:
                out.append(call)
            elif declared:  # "*" or a tool this client does not have: use its first tool
                out.append(Call(name=declared[0], arguments=call.arguments))
        return out


def _copy(response: dict[str, Any]) -> dict[str, Any]:
    return dict(response, output=list(response["output"]))


class _EventBuilder:
    """Collects a response's events with sequence numbers, lane ids and seeded delays."""

    def __init__(self, lane: str | None, timing: Timing, rng: random.Random) -> None:
        self.lane = lane
        self.timing = timing
        self.rng = rng
        self.steps: list[Step] = []
        self.tokens = 0

    def delay(self, ms: float) -> float:
        j = self.timing.jitter
        return max(0.0, ms * (1.0 + self.rng.uniform(-j, j)) / 1000.0)

    def add(self, delay: float, kind: str, **fields: Any) -> None:
        event: dict[str, Any] = {"type": kind, "sequence_number": len(self.steps), **fields}
        if self.lane is not None:
            event["stream_id"] = self.lane
        self.steps.append(Step(delay, event))

    def _token_delay(self, first_ms: float) -> float:
        """The first output token waits ``first_ms``; later ones come at tokens_per_s."""
        return self.delay(first_ms if first_ms else 1000.0 / self.timing.tokens_per_s)

    def message(self, item_id: str, index: int, text: str, first_ms: float) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": item_id,
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        self.add(0.0, "response.output_item.added", output_index=index, item=dict(item))
        part = {"type": "output_text", "text": "", "annotations": []}
        ids = {"item_id": item_id, "output_index": index, "content_index": 0}
        self.add(0.0, "response.content_part.added", **ids, part=part)
        pieces = re.findall(r"\s*\S+", text) or [text]
        for i, piece in enumerate(pieces):
            delay = self._token_delay(first_ms if i == 0 else 0.0)
            self.add(delay, "response.output_text.delta", **ids, delta=piece, logprobs=[])
            self.tokens += 1
        self.add(0.0, "response.output_text.done", **ids, text=text, logprobs=[])
        done_part = {"type": "output_text", "text": text, "annotations": []}
        self.add(0.0, "response.content_part.done", **ids, part=done_part)
        item.update(status="completed", content=[done_part])
        self.add(0.0, "response.output_item.done", output_index=index, item=item)
        return item

    def function_call(
        self, item_id: str, call_id: str, index: int, call: Call, first_ms: float
    ) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": item_id,
            "type": "function_call",
            "status": "in_progress",
            "call_id": call_id,
            "name": call.name,
            "arguments": "",
        }
        self.add(0.0, "response.output_item.added", output_index=index, item=dict(item))
        args = call.arguments
        pieces = [args[i : i + 8] for i in range(0, len(args), 8)] or [""]
        for i, piece in enumerate(pieces):
            delay = self._token_delay(first_ms if i == 0 else 0.0)
            self.add(
                delay,
                "response.function_call_arguments.delta",
                item_id=item_id,
                output_index=index,
                delta=piece,
            )
            self.tokens += 1
        self.add(
            0.0,
            "response.function_call_arguments.done",
            item_id=item_id,
            output_index=index,
            name=call.name,
            arguments=args,
        )
        item.update(status="completed", arguments=args)
        self.add(0.0, "response.output_item.done", output_index=index, item=item)
        return item
