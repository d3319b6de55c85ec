"""The turn analyser: from the protocol model's turns to the report's figures (no I/O).

``Analyser.start`` takes a create as it is sent (context accounting needs creates in the
order they were sent) and ``Analyser.end`` the turn once it has ended. What it learned at
the start is kept by turn index until the end, never on the protocol model's ``Turn``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tracer.analysis.contents import TurnContent, content_of
from tracer.analysis.items import identity, json_bytes, summarise_item
from tracer.analysis.model import CacheLoss, TurnDetail, TurnReport, span_ms
from tracer.responses.model import Connection, Turn, output_text

__all__ = ["Analyser"]

# Request fields that are not context: comparing them across creates means nothing.
_NOT_CONTEXT = frozenset(["type", "input", "previous_response_id", "stream_id", "generate"])


class _ConnContext:
    """Per connection: the items already sent or received, and the last create's fields."""

    __slots__ = ("last_fields", "seen")

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.last_fields: dict[str, bytes] = {}


@dataclass(slots=True)
class _Start:
    """What the analysis learned of a turn when its create was sent."""

    input_items: int = 0
    input_bytes: int = 0
    resent_items: int = 0
    resent_bytes: int = 0
    resent_fields: list[str] = field(default_factory=list)
    resent_field_bytes: int = 0
    chain: tuple[int, int, int] | None = None
    model: str | None = None
    warmup: bool = False


class Analyser:
    """Turns in, ``TurnReport`` (and optionally details and diff contents) out."""

    def __init__(
        self, *, details: bool = False, frame_budget: int = 0, contents: bool = False
    ) -> None:
        self.details: dict[int, TurnDetail] | None = {} if details else None
        self.contents: dict[int, TurnContent] | None = {} if contents else None
        self.frame_budget = frame_budget  # payload bytes of frames kept for the details
        self.frames_kept_bytes = 0
        self.summaries: dict[int, str] = {}  # item hash -> its one-line summary
        self.contexts: dict[int, _ConnContext] = {}
        self.responses: dict[str, tuple[int, int, int]] = {}  # id -> (conn, items, bytes)
        self.ended: dict[str, int] = {}  # response id -> t_end
        self.last_by_lane: dict[tuple[int, str | None], Turn] = {}
        self.last_http: Turn | None = None
        self.first_turn_of: set[int] = set()
        self.reports: list[TurnReport] = []
        self.losses: list[CacheLoss] = []
        self.open_losses: dict[tuple[int, str | None], CacheLoss] = {}
        self._started: dict[int, _Start] = {}  # turn index -> what its start learned

    def start(self, t: Turn) -> None:
        """Context accounting of a create, in the order creates were sent."""
        ctx = self.contexts.setdefault(t.conn, _ConnContext())
        items = t.input_items
        input_bytes = resent_bytes = resent_items = 0
        described: list[dict[str, Any]] | None = [] if self.details is not None else None
        for item in items:
            size = len(json_bytes(item))
            h = hash(identity(item))
            input_bytes += size
            resent = h in ctx.seen
            if resent:
                resent_items += 1
                resent_bytes += size
            ctx.seen.add(h)
            if described is not None:
                described.append(self._describe(item, h, resent, size))
        if self.details is not None and described is not None:
            self.details[t.index] = TurnDetail(
                index=t.index,
                input=described,
                request_fields={k: v for k, v in t.request.items() if k not in ("input", "tools")},
            )
        if self.contents is not None:
            self.contents[t.index] = content_of(t)
        # Request fields repeated unchanged from the connection's previous create.
        fields = {
            k: json_bytes(v, sort=True) for k, v in t.request.items() if k not in _NOT_CONTEXT
        }
        resent_fields = sorted(k for k, v in fields.items() if ctx.last_fields.get(k) == v)
        ctx.last_fields = fields
        model = t.request.get("model")
        self._started[t.index] = _Start(
            input_items=len(items),
            input_bytes=input_bytes,
            resent_items=resent_items,
            resent_bytes=resent_bytes,
            resent_fields=resent_fields,
            resent_field_bytes=sum(len(fields[k]) for k in resent_fields),
            # What previous_response_id stood for: the chain's items not resent this turn.
            chain=self.responses.get(t.previous_response_id or ""),
            model=model if isinstance(model, str) else None,
            warmup=t.warmup,
        )
        # The request body can be large (a full resend): it is not needed any more.
        t.request = {}

    def _describe(self, item: Any, h: int, resent: bool, size: int) -> dict[str, Any]:
        summary = self.summaries.get(h)
        if summary is None:  # a resent item is summarised once
            summary = self.summaries[h] = summarise_item(item)
        kind = item.get("type", "message") if isinstance(item, dict) else "?"
        return {"summary": summary, "type": kind, "resent": resent, "bytes": size}

    def end(self, t: Turn, connections: dict[int, Connection], t0: int) -> None:
        """Accounting of an ended turn: its output, usage, latency and cache losses."""
        ctx = self.contexts.setdefault(t.conn, _ConnContext())
        acct = self._started.pop(t.index, None) or _Start()
        chain = acct.chain
        chain_items, chain_bytes = (chain[1], chain[2]) if chain else (0, 0)
        referenced_items = max(0, chain_items - acct.resent_items)
        referenced_bytes = max(0, chain_bytes - acct.resent_bytes)
        if t.error_code == "previous_response_not_found":
            referenced_items = referenced_bytes = 0  # the server held nothing to refer to
        out_items = out_bytes = 0
        for item in t.output:
            c = identity(item)
            ctx.seen.add(hash(c))
            out_items += 1
            out_bytes += len(c)
        if t.response_id and t.status == "completed":
            self.responses[t.response_id] = (
                t.conn,
                chain_items + acct.input_items + out_items,
                chain_bytes + acct.input_bytes + out_bytes,
            )
        client_ms = self._client_ms(t)
        if self.details is not None:
            self._detail(t)
        if self.contents is not None and t.index in self.contents:
            self.contents[t.index].answered(t.output)
        usage = t.usage or {}
        details = usage.get("input_tokens_details")
        if not isinstance(details, dict):
            details = {}
        self.reports.append(
            TurnReport(
                index=t.index,
                conn=t.conn,
                stream_id=t.stream_id,
                response_id=t.response_id,
                previous_response_id=t.previous_response_id,
                status=t.status,
                error_code=t.error_code,
                warmup=acct.warmup,
                transport=t.transport,
                model=acct.model,
                t_start_s=round((t.t_create - t0) / 1e9, 6),
                request_bytes=t.request_bytes,
                input_items=acct.input_items,
                input_bytes=acct.input_bytes,
                resent_items=acct.resent_items,
                resent_bytes=acct.resent_bytes,
                referenced_items=referenced_items,
                referenced_bytes=referenced_bytes,
                resent_field_bytes=acct.resent_field_bytes,
                resent_fields=acct.resent_fields,
                input_tokens=_int(usage.get("input_tokens")),
                cached_tokens=_int(details.get("cached_tokens")),
                output_tokens=_int(usage.get("output_tokens")),
                output_items=len(t.output),
                handshake_ms=self._handshake_ms(t, connections),
                ttfe_ms=span_ms(t.t_create, t.t_first_event),
                ttft_ms=span_ms(t.t_create, t.t_first_token),
                generation_ms=span_ms(t.t_first_token, t.t_end),
                duration_ms=span_ms(t.t_create, t.t_end),
                client_ms=client_ms,
                cache_loss=self._cache_loss(t, acct),
                steers=t.steers,
                events=t.events,
            )
        )

    def _client_ms(self, t: Turn) -> float | None:
        """Since the turn this one continues, or the lane's previous turn."""
        lane_key = (t.conn, t.stream_id)
        before: int | None = None
        if t.previous_response_id and t.previous_response_id in self.ended:
            before = self.ended[t.previous_response_id]
        elif lane_key in self.last_by_lane:
            before = self.last_by_lane[lane_key].t_end
        elif t.transport == "http" and self.last_http is not None:
            before = self.last_http.t_end
        client_ms = (
            span_ms(before, t.t_create) if before is not None and before <= t.t_create else None
        )
        if t.t_end is not None:
            if t.response_id:
                self.ended[t.response_id] = t.t_end
            self.last_by_lane[lane_key] = t
            if t.transport == "http":
                self.last_http = t
        return client_ms

    def _handshake_ms(self, t: Turn, connections: dict[int, Connection]) -> float | None:
        """The connection's handshake, on its first turn only."""
        if t.conn in self.first_turn_of:
            return None
        self.first_turn_of.add(t.conn)
        conn = connections.get(t.conn)
        if conn is None or conn.handshake_ns is None:
            return None
        return round(conn.handshake_ns / 1e6, 3)

    def _cache_loss(self, t: Turn, acct: _Start) -> str | None:
        lane_key = (t.conn, t.stream_id)
        chain = acct.chain
        cache_loss = None
        if t.status == "error" and t.error_code == "previous_response_not_found":
            if chain is not None:
                cache_loss = "evicted" if chain[0] == t.conn else "reconnect"
            else:
                known_elsewhere = t.previous_response_id in self.ended
                cache_loss = "reconnect" if known_elsewhere else "not_found"
            loss = CacheLoss(t.index, t.conn, cache_loss, t.previous_response_id)
            self.losses.append(loss)
            self.open_losses[lane_key] = loss
        elif t.status == "completed" and lane_key in self.open_losses:
            loss = self.open_losses.pop(lane_key)
            loss.recovery_turn = t.index
            loss.recovery_input_bytes = acct.input_bytes
            loss.recovery_resent_bytes = acct.resent_bytes
        return cache_loss

    def _detail(self, t: Turn) -> None:
        assert self.details is not None
        d = self.details.setdefault(t.index, TurnDetail(index=t.index, input=[], request_fields={}))
        d.text = "".join(t.text) or output_text(t.output)
        d.calls = [
            {"name": o.get("name"), "call_id": o.get("call_id"), "arguments": o.get("arguments")}
            for o in t.output
            if o.get("type") == "function_call"
        ]
        d.output = t.output
        d.event_types = dict(t.event_types)
        d.error_message = t.error_message
        d.t_create_ns, d.t_end_ns = t.t_create, t.t_end
        size = sum(len(f.payload) for f in t.frames)
        if self.frames_kept_bytes + size <= self.frame_budget:
            self.frames_kept_bytes += size
            d.frames = t.frames
        else:
            d.frames_kept = False
        t.frames = []


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None
