"""The scripted Responses engine: requests in, planned server events out (no I/O).

An ``Engine`` holds the script and the server-wide state (an HTTP response store); each
WebSocket connection gets a ``Connection`` with its own connection-scoped cache, one entry
per lane, as the real service keeps it. ``Connection.start`` validates a ``response.create``
and returns a ``Plan``: the events to send, each with the delay before it, and what to do at
the end. The asyncio server only sleeps and sends.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
from collections import deque
from dataclasses import dataclass
from typing import Any

from tracer.upstream.script import Call, Fault, Profile, Script, Timing, TurnScript

__all__ = [
    "DEFAULT_MAX_PENDING",
    "MAX_IN_FLIGHT",
    "MAX_LANES",
    "Admission",
    "Connection",
    "Engine",
    "Plan",
    "Step",
    "error_event",
]

MAX_LANES = 32  # named lanes (stream_ids) per connection
MAX_IN_FLIGHT = 16  # responses generated at once per connection; more wait their turn
DEFAULT_MAX_PENDING = 64  # creates accepted and not finished per connection; more are refused
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
class Admission:
    """What a connection does with one client event: queue a create on ``lane`` (when
    ``queue``), and/or send ``reply`` at once (a refusal, a steer's answer)."""

    queue: bool = False
    lane: str | None = None
    reply: dict[str, Any] | None = None


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


@dataclass(slots=True)
class _Request:
    """A create's fields as the engine uses them, and the script's answer to it."""

    lane: str | None
    prev: str | None
    new_items: list[dict[str, Any]]
    instructions: str | None
    tools: list[Any]
    tools_json: str
    chain: _Cached | None
    context: list[dict[str, Any]]  # the chain's items, then the new ones
    generate: bool
    encrypted: bool  # the client asked for encrypted reasoning
    depth: int
    turn: TurnScript
    timing: Timing
    model: str
    profile: Profile

    @classmethod
    def of(
        cls,
        body: dict[str, Any],
        lane: str | None,
        prev: str | None,
        chain: _Cached | None,
        script: Script,
    ) -> _Request:
        new_items = _normalise_input(body.get("input"))
        instructions = body.get("instructions")
        raw_tools = body.get("tools")
        tools: list[Any] = raw_tools if isinstance(raw_tools, list) else []
        context = (chain.items if chain else []) + new_items
        generate = body.get("generate", True) is not False
        depth = conversation_depth(context)
        turn = script.turn(depth) if generate else TurnScript()
        include = body.get("include")
        model = body.get("model")
        return cls(
            lane=lane,
            prev=prev,
            new_items=new_items,
            instructions=instructions if isinstance(instructions, str) else None,
            tools=tools,
            tools_json=canonical(tools) if tools else "",
            chain=chain,
            context=context,
            generate=generate,
            encrypted=isinstance(include, list) and "reasoning.encrypted_content" in include,
            depth=depth,
            turn=turn,
            timing=turn.timing or script.timing,
            model=model if isinstance(model, str) else script.model,
            profile=script.profile,
        )

    def usage(self, out_tokens: int, reasoning_tokens: int) -> dict[str, Any]:
        """Usage at 4 bytes a token: the whole context in, the cached part (the chain, and
        instructions and tools identical to the chain's), the deltas out."""
        instructions, tools_json, chain = self.instructions, self.tools_json, self.chain
        context_bytes = len(tools_json) + len((instructions or "").encode())
        context_bytes += sum(len(canonical(i).encode()) for i in self.context)
        cached_bytes = 0
        if chain is not None:
            cached_bytes = sum(len(canonical(i).encode()) for i in chain.items)
            if chain.instructions == instructions and instructions:
                cached_bytes += len(instructions.encode())
            if chain.tools_json == tools_json:
                cached_bytes += len(tools_json)
        return {
            "input_tokens": context_bytes // 4,
            "input_tokens_details": {"cached_tokens": cached_bytes // 4},
            "output_tokens": out_tokens,
            "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
            "total_tokens": context_bytes // 4 + out_tokens,
        }


def _response_object(
    response_id: str, created_at: int, body: dict[str, Any], req: _Request
) -> dict[str, Any]:
    """The Response object as response.created carries it (in progress, no output)."""
    metadata = body.get("metadata")
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": req.instructions,
        "max_output_tokens": body.get("max_output_tokens"),
        "model": req.model,
        "output": [],
        "parallel_tool_calls": True,
        "previous_response_id": req.prev,
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True) is not False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": req.tools,
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": None,
        "user": None,
        "metadata": metadata if isinstance(metadata, dict) else {},
    }


class Engine:
    """Server-wide state of the scripted upstream: the script and the HTTP store."""

    def __init__(
        self,
        script: Script,
        *,
        single_flight: bool = False,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self.script = script
        self.single_flight = single_flight  # refuse a second create in flight
        self.max_pending = max_pending
        self._connections = 0
        # store=true responses: made over HTTP, or over WebSocket with the "stored" profile.
        self.store: dict[str, _Cached] = {}
        self.fired: set[int] = set()  # script turns whose one-shot fault has fired
        # One entry per create, as the server saw it (the tests' ground truth); bounded.
        self.log: deque[dict[str, Any]] = deque(maxlen=100_000)

    def connection(self) -> Connection:
        """State for a new WebSocket connection (connection-scoped cache, lanes)."""
        self._connections += 1
        return Connection(self, f"ws{self._connections}")

    def http_connection(self) -> Connection:
        """State for one HTTP request: previous ids resolve against the server's store."""
        self._connections += 1
        return Connection(self, f"http{self._connections}", http=True)


class Connection:
    """One connection's cache and counters; ``start`` plans the answer to a create."""

    def __init__(self, engine: Engine, name: str, *, http: bool = False):
        self.engine = engine
        self.name = name
        self.http = http
        self.lanes: dict[str | None, _Cached] = {}  # each lane's latest completed response
        self.named_lanes: set[str] = set()  # stream_ids admitted on this connection
        self.pending = 0  # creates admitted and not finished, across lanes
        self.running: set[str] = set()  # response ids being generated (steer targets)
        # Where previous ids resolve besides this connection's own cache.
        self._store = engine.store if http or engine.script.profile.stored else None
        self._count = 0

    def _id(self, prefix: str) -> str:
        self._count += 1
        seed = f"{self.engine.script.seed}/{self.name}/{self._count}".encode()
        return f"{prefix}_{hashlib.sha256(seed).hexdigest()[:40]}"

    def _rng(self, response_id: str) -> random.Random:
        return random.Random(f"{self.engine.script.seed}/{response_id}")

    def receive(self, event: dict[str, Any]) -> Admission:
        """Decide what to do with one client event of a WebSocket connection."""
        kind = event.get("type")
        if kind == "response.create":
            problem = self.check_create(event)
            if problem is not None:
                return Admission(reply=problem)
            lane = event.get("stream_id")
            self.pending += 1
            if lane is not None:
                self.named_lanes.add(lane)
            return Admission(queue=True, lane=lane)
        if kind == "response.steer":
            target = event.get("previous_response_id")
            accepted = isinstance(target, str) and target in self.running
            reply: dict[str, Any] = {
                "type": "response.steer.accepted" if accepted else "response.steer.failed",
                "previous_response_id": target,
            }
            if not accepted:
                reply["error"] = {"code": "no_response_in_progress", "message": "Nothing to steer."}
            return Admission(reply=reply)
        return Admission(
            reply=error_event("unknown_event_type", f"Unsupported client event type {kind!r}.")
        )

    def check_create(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """An error event if a create cannot be admitted: an invalid ``stream_id``, one
        lane too many, a second create in flight (single flight) or too many pending."""
        sid = body.get("stream_id")
        if sid is not None:
            if not isinstance(sid, str) or not STREAM_ID.match(sid):
                return error_event(
                    "invalid_stream_id",
                    "stream_id must be 1-256 characters of A-Z, a-z, 0-9, '_', '.', '-'.",
                    param="stream_id",
                )
            if sid not in self.named_lanes and len(self.named_lanes) >= MAX_LANES:
                return error_event(
                    "websocket_stream_limit_reached",
                    f"At most {MAX_LANES} named streams per connection.",
                    stream_id=sid,
                )
        if self.engine.single_flight and self.pending:
            return error_event(
                "response_already_in_flight",
                "A response is already in progress on this connection.",
                status=409,
                stream_id=sid,
            )
        if self.pending >= self.engine.max_pending:
            return error_event(
                "too_many_pending_responses",
                f"More than {self.engine.max_pending} responses are queued on this connection.",
                status=429,
                stream_id=sid,
            )
        return None

    def running_plan(self, plan: Plan) -> None:
        """A plan's events start going out: its response can be steered."""
        if plan.response_id:
            self.running.add(plan.response_id)

    def ended_plan(self, plan: Plan) -> None:
        """A plan was carried out (or abandoned): the create no longer counts as pending."""
        self.pending -= 1
        if plan.response_id:
            self.running.discard(plan.response_id)

    def _resolve(self, lane: str | None, prev: str) -> _Cached | None:
        cached = self.lanes.get(lane)
        if cached is not None and cached.id == prev:
            return cached
        if cached is None:
            for other in self.lanes.values():  # a new lane may fork another lane's response
                if other.id == prev:
                    return other
        return self._store.get(prev) if self._store is not None else None

    def start(self, body: dict[str, Any]) -> Plan:
        """Plan the answer to one ``response.create`` (its body, the ``type`` key aside)."""
        lane = body.get("stream_id") if isinstance(body.get("stream_id"), str) else None
        prev = body.get("previous_response_id")
        if prev is not None and not isinstance(prev, str):
            return self._error_plan(
                lane, error_event("invalid_type", "previous_response_id must be a string")
            )
        chain = self._resolve(lane, prev) if prev else None
        if prev and chain is None:
            return self._error_plan(
                lane,
                error_event(
                    "previous_response_not_found",
                    f"Previous response with id '{prev}' not found.",
                    param="previous_response_id",
                    stream_id=lane,
                ),
            )
        req = _Request.of(body, lane, prev, chain, self.engine.script)
        response_id = self._id("resp")
        entry: dict[str, Any] = {
            "conn": self.name,
            "transport": "http" if self.http else "websocket",
            "response_id": response_id,
            "previous_response_id": prev,
            "stream_id": lane,
            "input_items": len(req.new_items),
            "chain_items": len(chain.items) if chain else 0,  # what prev stood for
            "status": "in_progress",
            "output_items": 0,
        }
        self.engine.log.append(entry)
        response = _response_object(response_id, CREATED_AT + self._count, body, req)
        builder = _EventBuilder(lane, req.timing, self._rng(response_id), req.profile)
        output = self._answer(builder, req, response)
        entry["output_items"] = len(output)
        steps = builder.steps
        plan = Plan(steps=steps, response_id=response_id, lane=lane)
        fault = self._fault_for(req)
        if fault is not None:
            entry["fault"] = fault.kind
            cut = min(max(fault.after_events, 0), len(steps))
            if fault.kind == "error":
                err = error_event(
                    fault.error_code, fault.message, status=fault.status, kind="server_error",
                    stream_id=lane,
                )  # fmt: skip
                plan.steps = [*steps[:cut], Step(0.0, err)]

                def failed() -> None:
                    entry.update(status="error", error_code=fault.error_code)
                    self._evict(lane, prev)

                plan._commit = failed
                return plan
            if fault.kind == "stall":
                if cut < len(steps):
                    steps[cut].delay += fault.stall_ms / 1000.0
            else:  # close or drop: the connection ends, the response never completes
                plan.steps = steps[:cut]
                plan.fault = fault
                return plan
        status = response["status"]

        def commit() -> None:
            entry["status"] = status
            cached = _Cached(response_id, req.context + output, req.instructions, req.tools_json)
            if status == "completed":
                self.lanes[lane] = cached
                if self._store is not None and response["store"]:
                    self._store[response_id] = cached
            else:
                self._evict(lane, prev)

        plan._commit = commit
        return plan

    def _answer(
        self, builder: _EventBuilder, req: _Request, response: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """The response's events into ``builder``; returns the output items."""
        profile, timing, turn = req.profile, req.timing, req.turn
        ttfe = timing.ttfe_ms
        if profile.vendor_events:  # half the wait before the vendor's event, half after
            ttfe /= 2
            builder.vendor(builder.delay(ttfe))
        builder.add(builder.delay(ttfe), "response.created", response=_copy(response))
        builder.add(0.0, "response.in_progress", response=_copy(response))
        output: list[dict[str, Any]] = []
        first_token = max(0.0, timing.ttft_ms - timing.ttfe_ms)
        if req.generate and profile.reasoning:
            item = builder.reasoning(self._id("rs"), len(output), req.encrypted, first_token)
            output.append(item)
            first_token = 0.0
        if req.generate and turn.text:
            phase = ("commentary" if turn.calls else "final_answer") if profile.phase else None
            output.append(
                builder.message(self._id("msg"), len(output), turn.text, first_token, phase)
            )
            first_token = 0.0
        for call in self._calls_for(turn.calls, req.tools):
            item = builder.function_call(
                self._id("fc"), self._id("call"), len(output), call, first_token
            )
            output.append(item)
            first_token = 0.0
        status = turn.status if req.generate else "completed"
        response.update(
            status=status,
            output=[]
            if profile.empty_completed_output
            else [builder.final_copy(o) for o in output],
            usage=req.usage(builder.tokens, builder.reasoning_tokens) if profile.usage else None,
        )
        if status == "incomplete":
            response["incomplete_details"] = {"reason": "max_output_tokens"}
        final_type = {"completed": "response.completed"}.get(status, f"response.{status}")
        builder.add(builder.delay(1000.0 / timing.tokens_per_s), final_type, response=response)
        return output

    def _fault_for(self, req: _Request) -> Fault | None:
        """The script's fault for this turn; a one-shot fault fires once per depth."""
        fault = req.turn.fault
        if fault is not None and not fault.repeat:
            if req.depth in self.engine.fired:
                return None
            self.engine.fired.add(req.depth)
        return fault

    def _error_plan(self, lane: str | None, event: dict[str, Any]) -> Plan:
        # A rejected create changes nothing: what it referenced was not cached anyway.
        code = event.get("error", {}).get("code")
        self.engine.log.append(
            {"conn": self.name, "transport": "http" if self.http else "websocket",
             "response_id": None, "stream_id": lane, "status": "error", "error_code": code}
        )  # fmt: skip
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

    def __init__(
        self, lane: str | None, timing: Timing, rng: random.Random, profile: Profile
    ) -> None:
        self.lane = lane
        self.timing = timing
        self.rng = rng
        self.profile = profile
        self.steps: list[Step] = []
        self.tokens = 0
        self.reasoning_tokens = 0
        self._final: dict[str, dict[str, Any]] = {}  # item id -> its copy in completed

    def delay(self, ms: float) -> float:
        j = self.timing.jitter
        return max(0.0, ms * (1.0 + self.rng.uniform(-j, j)) / 1000.0)

    def add(self, delay: float, kind: str, **fields: Any) -> None:
        event: dict[str, Any] = {"type": kind, "sequence_number": len(self.steps), **fields}
        if self.lane is not None:
            event["stream_id"] = self.lane
        if self.profile.obfuscation and kind.endswith(".delta"):
            event["obfuscation"] = self._blob(4, 12)[: self.rng.randint(1, 16)]
        self.steps.append(Step(delay, event))

    def vendor(self, delay: float) -> None:
        """A vendor's event before the response starts (the Codex backend's rate limits)."""
        event: dict[str, Any] = {
            "type": "codex.rate_limits",
            "plan_type": "plus",
            "rate_limits": {"primary": {"used_percent": 12.0, "window_minutes": 300}},
        }
        self.steps.append(Step(delay, event))

    def _blob(self, lo: int, hi: int) -> str:
        """URL-safe base64 of random bytes, like the service's encrypted_content."""
        raw = bytes(self.rng.getrandbits(8) for _ in range(self.rng.randint(lo, hi)))
        return "gAAAAAB" + base64.urlsafe_b64encode(raw).decode()

    def final_copy(self, item: dict[str, Any]) -> dict[str, Any]:
        """An output item as response.completed lists it."""
        return self._final.get(str(item.get("id")), item)

    def reasoning(
        self, item_id: str, index: int, encrypted: bool, first_ms: float
    ) -> dict[str, Any]:
        """A reasoning item: encrypted_content differs in added, done and completed (as the
        service's does), so a client resends one of three copies."""
        summary = "Thinking about which command to run next."
        item: dict[str, Any] = {"id": item_id, "type": "reasoning", "summary": []}
        copies = [dict(item) for _ in range(3)]
        if encrypted:
            for c in copies:
                c["encrypted_content"] = self._blob(1024, 6144)
        self.add(0.0, "response.output_item.added", output_index=index, item=copies[0])
        ids = {"item_id": item_id, "output_index": index, "summary_index": 0}
        for i, piece in enumerate(re.findall(r"\s*\S+", summary)):
            delay = self._token_delay(first_ms if i == 0 else 0.0)
            self.add(delay, "response.reasoning_summary_text.delta", **ids, delta=piece)
            self.reasoning_tokens += 1
        self.add(0.0, "response.reasoning_summary_text.done", **ids, text=summary)
        parts = [{"type": "summary_text", "text": summary}]
        done, final = copies[1], copies[2]
        done["summary"] = final["summary"] = parts
        self.add(0.0, "response.output_item.done", output_index=index, item=done)
        self._final[item_id] = final
        return done

    def _token_delay(self, first_ms: float) -> float:
        """The first output token waits ``first_ms``; later ones come at tokens_per_s."""
        return self.delay(first_ms if first_ms else 1000.0 / self.timing.tokens_per_s)

    def message(
        self, item_id: str, index: int, text: str, first_ms: float, phase: str | None = None
    ) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": item_id,
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        if phase is not None:
            item["phase"] = phase
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
