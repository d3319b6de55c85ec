"""The session report: context accounting and latency per turn, and their totals (no I/O).

``analyse(records)`` streams a trace's records through the protocol model and returns an
``InspectReport``: the single source of every figure that ``tracer inspect``, ``cache``,
``latency``, ``turn`` and ``stats`` show, in the terminal and as JSON.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from tracer.responses.model import Connection, Turn, TurnSegmenter
from tracer.trace.records import Record

__all__ = [
    "CacheLoss",
    "ConnectionReport",
    "InspectReport",
    "Summary",
    "TurnReport",
    "analyse",
    "canonical_item",
]

SCHEMA_VERSION = 1
# Request fields that are not context: comparing them across creates means nothing.
_NOT_CONTEXT = frozenset(["type", "input", "previous_response_id", "stream_id", "generate"])
_SERVER_KEYS = frozenset(["id", "status"])  # assigned by the server: ignored when comparing
_EMPTY_NOISE = ("annotations", "logprobs")


def canonical_item(item: Any) -> bytes:
    """An item's canonical JSON: sorted keys, without server-assigned ids and status."""
    if isinstance(item, dict):
        item = {k: _strip(v) for k, v in item.items() if k not in _SERVER_KEYS}
    return orjson.dumps(item, option=orjson.OPT_SORT_KEYS)


def _strip(value: Any) -> Any:
    if isinstance(value, list):
        return [_strip(v) for v in value]
    if isinstance(value, dict):
        return {
            k: _strip(v) for k, v in value.items() if not (k in _EMPTY_NOISE and v in ([], None))
        }
    return value


def _ms(a: int | None, b: int | None) -> float | None:
    if a is None or b is None:
        return None
    return round((b - a) / 1e6, 3)


@dataclass(slots=True)
class TurnReport:
    """Every figure of one turn (``tracer inspect --json`` ``turns[i]``)."""

    index: int
    conn: int
    stream_id: str | None
    response_id: str | None
    previous_response_id: str | None
    status: str
    error_code: str | None
    warmup: bool
    transport: str
    model: str | None
    t_start_s: float  # seconds since the trace started
    request_bytes: int  # payload bytes of the create
    input_items: int
    input_bytes: int
    resent_items: int
    resent_bytes: int
    referenced_items: int
    referenced_bytes: int
    resent_field_bytes: int
    resent_fields: list[str]
    input_tokens: int | None
    cached_tokens: int | None
    output_tokens: int | None
    output_items: int
    handshake_ms: float | None  # the connection's, on its first turn only
    ttfe_ms: float | None
    ttft_ms: float | None
    generation_ms: float | None
    duration_ms: float | None
    client_ms: float | None
    cache_loss: str | None  # "reconnect", "evicted" or "not_found" for a lost cache
    steers: int
    events: int


@dataclass(slots=True)
class CacheLoss:
    """A turn whose ``previous_response_id`` the server no longer held, and its cost."""

    turn: int
    conn: int
    kind: str
    previous_response_id: str | None
    recovery_turn: int | None = None  # the next turn on that lane that succeeded
    recovery_input_bytes: int | None = None  # what the client resent to recover
    recovery_resent_bytes: int | None = None


@dataclass(slots=True)
class ConnectionReport:
    """One connection: its frames and bytes, its message types, how it ended."""

    conn: int
    url: str
    transport: str
    turns: int
    client_frames: int
    server_frames: int
    client_bytes: int
    server_bytes: int
    handshake_ms: float | None
    duration_ms: float | None
    close_code: int | None
    close_by: str | None
    close_error: str | None
    message_types: dict[str, int]


@dataclass(slots=True)
class Summary:
    """Session totals (``tracer inspect --json`` ``summary``)."""

    connections: int = 0
    turns: int = 0
    responses_api: bool = False  # False: no Responses turns were found (generic traffic)
    bytes_sent: int = 0  # client payload bytes
    bytes_received: int = 0
    input_bytes: int = 0
    resent_bytes: int = 0
    referenced_bytes: int = 0
    resent_field_bytes: int = 0
    incremental_bytes: int = 0  # what a fully incremental client would have sent
    referenced_share: float | None = None  # referenced / (referenced + resent)
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    cache_losses: int = 0
    errors: int = 0
    wall_ms: float = 0.0
    handshake_ms: float = 0.0
    ttfe_ms: float = 0.0  # sums over turns
    token_wait_ms: float = 0.0  # first event -> first token
    generation_ms: float = 0.0
    client_ms: float = 0.0
    ttft_p50_ms: float | None = None
    ttft_p90_ms: float | None = None
    ttft_p99_ms: float | None = None
    duration_p50_ms: float | None = None
    duration_p90_ms: float | None = None
    duration_p99_ms: float | None = None
    slowest_turns: list[int] = field(default_factory=list)
    t0_ns: int = 0  # trace time (ns after the header's anchor) that turns' t_start_s count from


@dataclass(slots=True)
class InspectReport:
    """Everything tracer knows about a session."""

    summary: Summary
    turns: list[TurnReport]
    connections: list[ConnectionReport]
    cache_losses: list[CacheLoss]
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _ConnContext:
    """Per connection: the items already sent or received, and the last create's fields."""

    __slots__ = ("last_fields", "seen")

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.last_fields: dict[str, bytes] = {}


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return round(ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo), 3)


class _Analyser:
    def __init__(self) -> None:
        self.contexts: dict[int, _ConnContext] = {}
        self.responses: dict[str, tuple[int, int, int]] = {}  # id -> (conn, items, bytes)
        self.ended: dict[str, int] = {}  # response id -> t_end
        self.last_by_lane: dict[tuple[int, str | None], Turn] = {}
        self.last_http: Turn | None = None
        self.first_turn_of: set[int] = set()
        self.reports: list[TurnReport] = []
        self.losses: list[CacheLoss] = []
        self.open_losses: dict[tuple[int, str | None], CacheLoss] = {}

    def start(self, t: Turn) -> None:
        """Context accounting of a create, in the order creates were sent."""
        ctx = self.contexts.setdefault(t.conn, _ConnContext())
        items = t.input_items
        input_bytes = resent_bytes = resent_items = 0
        for item in items:
            size = len(orjson.dumps(item))
            h = hash(canonical_item(item))
            input_bytes += size
            if h in ctx.seen:
                resent_items += 1
                resent_bytes += size
            ctx.seen.add(h)
        # Request fields repeated unchanged from the connection's previous create.
        fields = {
            k: orjson.dumps(v, option=orjson.OPT_SORT_KEYS)
            for k, v in t.request.items()
            if k not in _NOT_CONTEXT
        }
        resent_fields = sorted(k for k, v in fields.items() if ctx.last_fields.get(k) == v)
        ctx.last_fields = fields
        # What previous_response_id stood for: the chain's items not resent this turn.
        chain = self.responses.get(t.previous_response_id or "")
        model = t.request.get("model")
        t.accounting = _Start(
            input_items=len(items),
            input_bytes=input_bytes,
            resent_items=resent_items,
            resent_bytes=resent_bytes,
            resent_fields=resent_fields,
            resent_field_bytes=sum(len(fields[k]) for k in resent_fields),
            chain=chain,
            model=model if isinstance(model, str) else None,
        )
        # The request body can be large (a full resend): keep only what is still needed.
        t.request = {k: t.request[k] for k in ("generate",) if k in t.request}

    def turn(self, t: Turn, connections: dict[int, Connection], t0: int) -> None:
        """Accounting of an ended turn: its output, usage, latency and cache losses."""
        ctx = self.contexts.setdefault(t.conn, _ConnContext())
        acct: _Start = t.accounting or _Start()
        chain = acct.chain
        chain_items, chain_bytes = (chain[1], chain[2]) if chain else (0, 0)
        input_bytes, resent_bytes = acct.input_bytes, acct.resent_bytes
        referenced_items = max(0, chain_items - acct.resent_items)
        referenced_bytes = max(0, chain_bytes - resent_bytes)
        if t.error_code == "previous_response_not_found":
            referenced_items = referenced_bytes = 0  # the server held nothing to refer to
        out_items = out_bytes = 0
        for item in t.output:
            c = canonical_item(item)
            ctx.seen.add(hash(c))
            out_items += 1
            out_bytes += len(c)
        if t.response_id and t.status == "completed":
            self.responses[t.response_id] = (
                t.conn,
                chain_items + acct.input_items + out_items,
                chain_bytes + input_bytes + out_bytes,
            )
        # Client time: since the turn this one continues, or the lane's previous turn.
        lane_key = (t.conn, t.stream_id)
        before: int | None = None
        if t.previous_response_id and t.previous_response_id in self.ended:
            before = self.ended[t.previous_response_id]
        elif lane_key in self.last_by_lane:
            before = self.last_by_lane[lane_key].t_end
        elif t.transport == "http" and self.last_http is not None:
            before = self.last_http.t_end
        client_ms = _ms(before, t.t_create) if before is not None and before <= t.t_create else None
        if t.t_end is not None:
            if t.response_id:
                self.ended[t.response_id] = t.t_end
            self.last_by_lane[lane_key] = t
            if t.transport == "http":
                self.last_http = t
        conn = connections.get(t.conn)
        handshake = None
        if t.conn not in self.first_turn_of:
            self.first_turn_of.add(t.conn)
            if conn is not None and conn.handshake_ns is not None:
                handshake = round(conn.handshake_ns / 1e6, 3)
        usage = t.usage or {}
        details = usage.get("input_tokens_details")
        if not isinstance(details, dict):
            details = {}
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
            loss.recovery_input_bytes = input_bytes
            loss.recovery_resent_bytes = resent_bytes
        self.reports.append(
            TurnReport(
                index=t.index,
                conn=t.conn,
                stream_id=t.stream_id,
                response_id=t.response_id,
                previous_response_id=t.previous_response_id,
                status=t.status,
                error_code=t.error_code,
                warmup=t.warmup,
                transport=t.transport,
                model=acct.model,
                t_start_s=round((t.t_create - t0) / 1e9, 6),
                request_bytes=t.request_bytes,
                input_items=acct.input_items,
                input_bytes=input_bytes,
                resent_items=acct.resent_items,
                resent_bytes=resent_bytes,
                referenced_items=referenced_items,
                referenced_bytes=referenced_bytes,
                resent_field_bytes=acct.resent_field_bytes,
                resent_fields=acct.resent_fields,
                input_tokens=_int(usage.get("input_tokens")),
                cached_tokens=_int(details.get("cached_tokens")),
                output_tokens=_int(usage.get("output_tokens")),
                output_items=len(t.output),
                handshake_ms=handshake,
                ttfe_ms=_ms(t.t_create, t.t_first_event),
                ttft_ms=_ms(t.t_create, t.t_first_token),
                generation_ms=_ms(t.t_first_token, t.t_end),
                duration_ms=_ms(t.t_create, t.t_end),
                client_ms=client_ms,
                cache_loss=cache_loss,
                steers=t.steers,
                events=t.events,
            )
        )


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


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def analyse(records: Iterable[Record]) -> InspectReport:
    """Analyse a trace's records (streamed once) into the session report."""
    segmenter = TurnSegmenter()
    analyser = _Analyser()
    t0: int | None = None
    for kind, turn in segmenter.feed(records):
        if t0 is None:
            t0 = segmenter.t_first or 0
        if kind == "start":
            analyser.start(turn)
        else:
            analyser.turn(turn, segmenter.connections, t0)
    for _, turn in segmenter.finish():
        analyser.turn(turn, segmenter.connections, t0 or 0)
    analyser.reports.sort(key=lambda r: r.index)
    return _summarise(analyser, segmenter, t0 or segmenter.t_first or 0)


def _summarise(analyser: _Analyser, segmenter: TurnSegmenter, t0: int) -> InspectReport:
    turns = analyser.reports
    conns = segmenter.connections
    s = Summary(connections=len(conns), turns=len(turns), responses_api=bool(turns), t0_ns=t0)
    s.bytes_sent = sum(c.client_bytes for c in conns.values())
    s.bytes_received = sum(c.server_bytes for c in conns.values())
    for t in turns:
        s.input_bytes += t.input_bytes
        s.resent_bytes += t.resent_bytes
        s.referenced_bytes += t.referenced_bytes
        s.resent_field_bytes += t.resent_field_bytes
        s.input_tokens += t.input_tokens or 0
        s.cached_tokens += t.cached_tokens or 0
        s.output_tokens += t.output_tokens or 0
        s.errors += t.status in ("error", "failed")
        s.ttfe_ms += t.ttfe_ms or 0.0
        if t.ttft_ms is not None and t.ttfe_ms is not None:
            s.token_wait_ms += t.ttft_ms - t.ttfe_ms
        s.generation_ms += t.generation_ms or 0.0
        s.client_ms += t.client_ms or 0.0
    s.cache_losses = len(analyser.losses)
    s.incremental_bytes = s.bytes_sent - s.resent_bytes - s.resent_field_bytes
    total_context = s.referenced_bytes + s.resent_bytes
    s.referenced_share = round(s.referenced_bytes / total_context, 4) if total_context else None
    s.handshake_ms = round(sum((c.handshake_ns or 0) for c in conns.values()) / 1e6, 3)
    s.wall_ms = round((segmenter.t_last - t0) / 1e6, 3)
    for name in ("ttfe_ms", "token_wait_ms", "generation_ms", "client_ms"):
        setattr(s, name, round(getattr(s, name), 3))
    real = [t for t in turns if not t.warmup]
    ttft = [t.ttft_ms for t in real if t.ttft_ms is not None]
    dur = [t.duration_ms for t in real if t.duration_ms is not None]
    s.ttft_p50_ms, s.ttft_p90_ms, s.ttft_p99_ms = (percentile(ttft, p) for p in (50, 90, 99))
    s.duration_p50_ms, s.duration_p90_ms, s.duration_p99_ms = (
        percentile(dur, p) for p in (50, 90, 99)
    )
    slowest = sorted(
        (t for t in turns if t.duration_ms is not None), key=lambda t: -(t.duration_ms or 0)
    )
    s.slowest_turns = [t.index for t in slowest[:3]]
    connections = [
        ConnectionReport(
            conn=c.conn,
            url=c.url,
            transport=c.transport,
            turns=c.turns,
            client_frames=c.client_frames,
            server_frames=c.server_frames,
            client_bytes=c.client_bytes,
            server_bytes=c.server_bytes,
            handshake_ms=round(c.handshake_ns / 1e6, 3) if c.handshake_ns is not None else None,
            duration_ms=_ms(c.t_open, c.t_close),
            close_code=c.close_code,
            close_by=c.close_by,
            close_error=c.close_error,
            message_types=dict(Counter(c.message_types).most_common()),
        )
        for c in sorted(conns.values(), key=lambda c: c.conn)
    ]
    return InspectReport(
        summary=s, turns=turns, connections=connections, cache_losses=analyser.losses
    )
