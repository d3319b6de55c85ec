"""The scripted Responses engine: requests in, planned server events out (no I/O).

An ``Engine`` holds the script and the server-wide state (an HTTP response store); each
WebSocket connection gets a ``Connection`` with its own connection-scoped cache, one entry
per lane, as the real service keeps it. ``Connection.start`` validates a ``response.create``
and returns a ``Plan``: the events to send, each with the delay before it, and what to do at
the end. The asyncio server only sleeps and sends.
"""

# Over 400 lines: one connection's whole play: creates, lanes, steers, injects, compaction.
from __future__ import annotations

import hashlib
import random
import re
from collections import deque
from dataclasses import dataclass
from typing import Any

from tracer.responses.errors import error_event
from tracer.responses.timing import TIMING_EVENT
from tracer.upstream.events import EventBuilder, Step, copy_response
from tracer.upstream.request import Cached, Request, canonical, response_object
from tracer.upstream.script import Call, Fault, Script

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
        self.store: dict[str, Cached] = {}
        self.fired: set[int] = set()  # script turns whose one-shot fault has fired
        # The "prefix-cache" profile: the prefixes of recent contexts (any connection).
        self.prefixes: deque[list[tuple[str, int]]] = deque(maxlen=64)
        # One entry per create, as the server saw it (the tests' ground truth); bounded.
        self.log: deque[dict[str, Any]] = deque(maxlen=100_000)

    def cached_prefix(self, pieces: list[tuple[str, int]]) -> int:
        """Bytes of the longest prefix of ``pieces`` a recent context began with."""
        best = 0
        for seen in self.prefixes:
            size = 0
            for (digest, n), (other, _) in zip(pieces, seen, strict=False):
                if digest != other:
                    break
                size += n
            best = max(best, size)
        return best

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
        self.timed = False  # the client asked for the service's timing metrics
        self.lanes: dict[str | None, Cached] = {}  # each lane's latest completed response
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
        if kind == "response.inject":
            return Admission(reply=self._inject(event))
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

    def _inject(self, event: dict[str, Any]) -> dict[str, Any]:
        """``response.inject`` (multi-agent beta): accepted into a running response, failed
        with ``response_already_completed`` once it has ended (the items are echoed)."""
        target = event.get("response_id")
        given = event.get("input")
        items = given if isinstance(given, list) else []
        accepted = isinstance(target, str) and target in self.running
        reply: dict[str, Any] = {
            "type": "response.inject.created" if accepted else "response.inject.failed",
            "response_id": target,
            "input": items,
        }
        if not accepted:
            reply["error"] = {"code": "response_already_completed",
                              "message": "The response is no longer running."}  # fmt: skip
        self.engine.log.append({"conn": self.name, "kind": "inject", "response_id": target,
                                "accepted": accepted, "items": len(items)})  # fmt: skip
        return reply

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

    def _resolve(self, lane: str | None, prev: str) -> Cached | None:
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
        req = Request.of(body, lane, prev, chain, self.engine.script)
        if req.profile.prefix_cache:
            req.prefix_cached_bytes = self.engine.cached_prefix(req.prefix())
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
        response = response_object(response_id, CREATED_AT + self._count, body, req)
        builder = EventBuilder(lane, req.timing, self._rng(response_id), req.profile)
        output = self._answer(builder, req, response)
        entry["output_items"] = len(output)
        entry["usage"] = response.get("usage")  # what the response will report
        steps = builder.steps
        if self.timed:  # after the response: the shell fills in what it measured
            steps.append(self._timing_step(entry, response_id))
        plan = Plan(steps=steps, response_id=response_id, lane=lane)
        fault = self._fault_for(req)
        if fault is not None:
            entry["fault"] = fault.kind
            if self._apply_fault(plan, fault, entry, prev):
                return plan
        status = response["status"]

        def commit() -> None:
            entry["status"] = status
            cached = Cached(response_id, req.context + output, req.instructions, req.tools_json)
            if status == "completed":
                self.lanes[lane] = cached
                if req.profile.prefix_cache:  # the prompt, as the next one may begin
                    self.engine.prefixes.append(req.prefix())
                if self._store is not None and response["store"]:
                    self._store[response_id] = cached
            else:
                self._evict(lane, prev)

        plan._commit = commit
        return plan

    def _answer(
        self, builder: EventBuilder, req: Request, response: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """The response's events into ``builder``; returns the output items."""
        profile, timing, turn = req.profile, req.timing, req.turn
        ttfe = timing.ttfe_ms
        if profile.vendor_events:  # half the wait before the vendor's event, half after
            ttfe /= 2
            builder.vendor(builder.delay(ttfe))
        builder.add(builder.delay(ttfe), "response.created", response=copy_response(response))
        builder.add(0.0, "response.in_progress", response=copy_response(response))
        output: list[dict[str, Any]] = []
        first_token = max(0.0, timing.ttft_ms - timing.ttfe_ms)
        threshold = req.compact_threshold
        if req.generate and threshold is not None and req.context_tokens() > threshold:
            output.append(self._compaction_item(builder, req, len(output)))
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
        if profile.multi_agent:  # the root agent speaks; a worker makes the calls
            for item in output:
                worker = item.get("type") == "function_call"
                item["agent"] = {"agent_name": "/root/worker" if worker else "/root"}
        status = turn.status if req.generate else "completed"
        response.update(
            status=status,
            output=[]
            if profile.empty_completed_output
            else [builder.final_copy(o) for o in output],
            usage=req.usage(builder.tokens, builder.reasoning_tokens, writes=profile.cache_writes)
            if profile.usage
            else None,
        )
        if status == "incomplete":
            response["incomplete_details"] = {"reason": "max_output_tokens"}
        final_type = {"completed": "response.completed"}.get(status, f"response.{status}")
        builder.add(builder.delay(1000.0 / timing.tokens_per_s), final_type, response=response)
        return output

    def _compaction_item(self, builder: EventBuilder, req: Request, index: int) -> dict[str, Any]:
        """``context_management``: the context passed its threshold, so the response first
        compacts it into one ``compaction`` item (its output, as the service streams it)."""
        sealed = hashlib.sha256(canonical(req.context).encode()).hexdigest()
        item = {"id": self._id("cmpi"), "type": "compaction",
                "encrypted_content": f"gAAAAAB{sealed}"}  # fmt: skip
        builder.add(0.0, "response.output_item.added", output_index=index, item=item)
        builder.add(0.0, "response.output_item.done", output_index=index, item=item)
        return item

    def _timing_step(self, entry: dict[str, Any], response_id: str) -> Step:
        """The service's timing of a response, asked for with the timing header: the
        scripted pre-inference and queue time; the shell adds what it measured."""
        st = self.engine.script.server_timing
        metrics: dict[str, Any] = {"pre_inference_ms": st.pre_inference_ms,
                                   "engine_queue_max_ms": st.engine_queue_max_ms}  # fmt: skip
        entry["timing_metrics"] = metrics  # the log shows what was sent
        event = {"type": TIMING_EVENT, "response_id": response_id, "timing_metrics": metrics}
        return Step(0.0, event)

    def _apply_fault(
        self, plan: Plan, fault: Fault, entry: dict[str, Any], prev: str | None
    ) -> bool:
        """Change ``plan`` as the script's fault says; True when the plan is final (an
        error, a close or a drop: the response never completes), False for a stall."""
        steps, lane = plan.steps, plan.lane
        cut = min(max(fault.after_events, 0), len(steps))
        if fault.kind == "stall":
            if cut < len(steps):
                steps[cut].delay += fault.stall_ms / 1000.0
            return False
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
            return True
        plan.steps = steps[:cut]  # close or drop: the connection ends mid-response
        plan.fault = fault
        return True

    def _fault_for(self, req: Request) -> Fault | None:
        """The script's fault for this turn; a one-shot fault fires once per depth (over
        the fault's transport, when it names one)."""
        fault = req.turn.fault
        here = "http" if self.http else "websocket"
        if fault is not None and fault.transport and fault.transport != here:
            return None
        if fault is not None and not fault.repeat:
            if req.depth in self.engine.fired:
                return None
            self.engine.fired.add(req.depth)
        return fault

    def compact(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /responses/compact``: the ``response.compaction`` object (the context's
        user messages, then one ``compaction`` item), or an ``error`` event to refuse it."""
        prev = body.get("previous_response_id")
        chain = self._resolve(None, prev) if isinstance(prev, str) else None
        if isinstance(prev, str) and chain is None:
            return error_event("previous_response_not_found",
                               f"Previous response with id '{prev}' not found.",
                               param="previous_response_id")  # fmt: skip
        given = body.get("input")
        items = [*(chain.items if chain else []), *(given if isinstance(given, list) else [])]
        context = sum(len(canonical(i).encode()) for i in items)
        users = [i for i in items if isinstance(i, dict) and i.get("role") == "user"]
        cmp_id = self._id("cmp")
        sealed = hashlib.sha256(canonical(items).encode()).hexdigest()
        output = [*users, {"id": self._id("cmpi"), "type": "compaction",
                           "encrypted_content": f"gAAAAAB{sealed}"}]  # fmt: skip
        usage = {"input_tokens": context // 4, "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": 64, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": context // 4 + 64}  # fmt: skip
        self.engine.log.append(
            {"conn": self.name, "transport": "http", "kind": "compaction",
             "response_id": cmp_id, "previous_response_id": prev, "status": "completed",
             "input_items": len(items), "output_items": len(output), "usage": usage}
        )  # fmt: skip
        return {"id": cmp_id, "object": "response.compaction", "created_at": CREATED_AT,
                "output": output, "usage": usage}  # fmt: skip

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
