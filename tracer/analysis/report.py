"""The session report: context accounting and latency per turn, and their totals (no I/O).

``analyse(records)`` streams a trace's records through the protocol model and returns an
``InspectReport``: the single source of every figure that ``tracer inspect``, ``cache``,
``latency``, ``turn`` and ``stats`` show, in the terminal and as JSON.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from tracer.responses.model import Connection, Turn, TurnSegmenter, dict_items, output_text
from tracer.trace.records import Frame, Record

__all__ = [
    "CacheLoss",
    "ConnectionReport",
    "InspectReport",
    "Session",
    "Summary",
    "TurnDetail",
    "TurnReport",
    "analyse",
    "canonical_item",
    "json_bytes",
    "select_frames",
    "summarise_item",
]

SCHEMA_VERSION = 1
FRAME_BUDGET = 64 * 1024 * 1024
"""Payload bytes of frames a ``Session(details=True)`` keeps for its turns' frame views."""
# Request fields that are not context: comparing them across creates means nothing.
_NOT_CONTEXT = frozenset(["type", "input", "previous_response_id", "stream_id", "generate"])
_SERVER_KEYS = frozenset(["id", "status"])  # assigned by the server: ignored when comparing
_EMPTY_NOISE = ("annotations", "logprobs")


def json_bytes(value: Any, *, sort: bool = False) -> bytes:
    """``value`` as JSON, for sizes and hashes. Parsed JSON can nest deeper than orjson
    writes (1024 levels in, 254 out): such a value gets its ``repr``, which is as stable."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort else None)
    except TypeError:  # orjson.JSONEncodeError: recursion limit (or a non-JSON value)
        try:
            return repr(value).encode()
        except RecursionError:
            return b'"<nested too deep>"'


def canonical_item(item: Any) -> bytes:
    """An item's canonical JSON: sorted keys, without server-assigned ids and status."""
    if isinstance(item, dict):
        with contextlib.suppress(RecursionError):  # nested past Python's limit: keep it whole
            item = {k: _strip(v) for k, v in item.items() if k not in _SERVER_KEYS}
    return json_bytes(item, sort=True)


def _strip(value: Any) -> Any:
    if isinstance(value, list):
        return [_strip(v) for v in value]
    if isinstance(value, dict):
        return {
            k: _strip(v) for k, v in value.items() if not (k in _EMPTY_NOISE and v in ([], None))
        }
    return value


def summarise_item(item: Any, width: int = 160) -> str:
    """A one-line description of an input or output item."""
    if not isinstance(item, dict):
        text = str(item)
    else:
        kind = item.get("type") or "message"
        if kind == "message":
            content = item.get("content")
            if isinstance(content, list):
                content = " ".join(str(p.get("text", "")) for p in dict_items(content))
            text = f"{item.get('role', '?')}: {content}"
        elif kind == "function_call":
            text = f"function_call {item.get('name')}({item.get('arguments')})"
        elif kind == "function_call_output":
            text = f"function_call_output [{item.get('call_id')}]: {item.get('output')}"
        else:
            text = f"{kind}: {json_bytes(item).decode(errors='replace')}"
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


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

    def phases(self) -> list[tuple[str, float]]:
        """The turn's own timeline in ms, in order: the client's time before it, the
        handshake (a connection's first turn), to first event, to first token, generation."""
        ttfe = self.ttfe_ms or 0.0
        ttft = self.ttft_ms if self.ttft_ms is not None else (self.duration_ms or 0.0)
        dur = self.duration_ms or 0.0
        return [
            ("client", self.client_ms or 0.0),
            ("handshake", self.handshake_ms or 0.0),
            ("ttfe", ttfe),
            ("token_wait", max(0.0, ttft - ttfe)),
            ("generation", max(0.0, dur - ttft)),
        ]


@dataclass(slots=True)
class TurnDetail:
    """What a turn said, beside its figures: collected by ``Session(details=True)``."""

    index: int
    input: list[dict[str, Any]]  # per input item: summary, type, resent (already on the conn)
    request_fields: dict[str, Any]  # the create's fields other than input and tools
    text: str = ""  # the output text, reassembled from the deltas
    calls: list[dict[str, Any]] = field(default_factory=list)
    output: list[dict[str, Any]] = field(default_factory=list)
    event_types: dict[str, int] = field(default_factory=dict)
    error_message: str | None = None
    frames: list[Frame] = field(default_factory=list)  # its create, steers and events
    frames_kept: bool = True  # False: over the session's frame budget (read them again)
    t_create_ns: int = 0
    t_end_ns: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``tracer turn --json`` fields (frames are left out)."""
        return {
            "input": self.input,
            "request_fields": self.request_fields,
            "text": self.text,
            "calls": self.calls,
            "output": self.output,
            "event_types": self.event_types,
            "error_message": self.error_message,
        }


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
    def __init__(self, details: bool = False, frame_budget: int = 0) -> None:
        self.details: dict[int, TurnDetail] | None = {} if details else None
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

    def start(self, t: Turn) -> None:
        """Context accounting of a create, in the order creates were sent."""
        ctx = self.contexts.setdefault(t.conn, _ConnContext())
        items = t.input_items
        input_bytes = resent_bytes = resent_items = 0
        described: list[dict[str, Any]] | None = [] if self.details is not None else None
        for item in items:
            size = len(json_bytes(item))
            h = hash(canonical_item(item))
            input_bytes += size
            resent = h in ctx.seen
            if resent:
                resent_items += 1
                resent_bytes += size
            ctx.seen.add(h)
            if described is not None:
                summary = self.summaries.get(h)
                if summary is None:  # a resent item is summarised once
                    summary = self.summaries[h] = summarise_item(item)
                kind = item.get("type", "message") if isinstance(item, dict) else "?"
                described.append(
                    {"summary": summary, "type": kind, "resent": resent, "bytes": size}
                )
        if self.details is not None and described is not None:
            self.details[t.index] = TurnDetail(
                index=t.index,
                input=described,
                request_fields={k: v for k, v in t.request.items() if k not in ("input", "tools")},
            )
        # Request fields repeated unchanged from the connection's previous create.
        fields = {
            k: json_bytes(v, sort=True) for k, v in t.request.items() if k not in _NOT_CONTEXT
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
        if self.details is not None:
            self._detail(t)
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


class Session:
    """The analysis of a trace as its records arrive, for live views (no I/O).

    ``feed`` takes the next records and returns the turns that ended among them;
    ``report`` is the session so far (turns still in flight are left out and counted in
    ``in_flight``); ``finish`` ends them as ``unfinished`` and gives the final report.
    With ``details``, each turn's input items, output and frames are kept (``detail``); the
    frames only up to ``frame_budget`` payload bytes in all, so that memory stays bounded on
    a large trace (past it, ``TurnDetail.frames_kept`` is False: read them again with
    ``select_frames``).
    """

    def __init__(self, *, details: bool = False, frame_budget: int = FRAME_BUDGET) -> None:
        self._segmenter = TurnSegmenter(collect_text=details, keep_frames=details)
        self._analyser = _Analyser(details, frame_budget)
        self._t0: int | None = None
        self.records = 0

    def feed(self, records: Iterable[Record]) -> list[TurnReport]:
        analyser, segmenter = self._analyser, self._segmenter
        done = len(analyser.reports)
        for kind, turn in segmenter.feed(self._count(records)):
            if self._t0 is None:
                self._t0 = segmenter.t_first or 0
            if kind == "start":
                analyser.start(turn)
            else:
                analyser.turn(turn, segmenter.connections, self._t0)
        return analyser.reports[done:]

    def _count(self, records: Iterable[Record]) -> Iterable[Record]:
        for record in records:
            self.records += 1
            yield record

    @property
    def in_flight(self) -> int:
        """Turns whose create was sent and whose end has not arrived yet."""
        lanes = (q for c in self._segmenter.connections.values() for q in c.lanes.values())
        return sum(len(q) for q in lanes)

    def report(self) -> InspectReport:
        return _summarise(self._analyser, self._segmenter, self._t0_or_first())

    def finish(self) -> InspectReport:
        for _, turn in self._segmenter.finish():
            self._analyser.turn(turn, self._segmenter.connections, self._t0_or_first())
        return self.report()

    def detail(self, index: int) -> TurnDetail | None:
        details = self._analyser.details
        return details.get(index) if details is not None else None

    def _t0_or_first(self) -> int:
        if self._t0 is None:
            return self._segmenter.t_first or 0
        return self._t0


def select_frames(
    records: Iterable[Record], conn: int, t_from: int, t_to: int | None
) -> list[Frame]:
    """The frames of connection ``conn`` sent from ``t_from`` to ``t_to`` (ns, inclusive)."""
    out = []
    for r in records:
        if type(r) is Frame and r.conn == conn and r.t_ns >= t_from:
            if t_to is not None and r.t_ns > t_to:
                break
            out.append(r)
    return out


def analyse(records: Iterable[Record]) -> InspectReport:
    """Analyse a trace's records (streamed once) into the session report."""
    session = Session()
    session.feed(records)
    return session.finish()


def _summarise(analyser: _Analyser, segmenter: TurnSegmenter, t0: int) -> InspectReport:
    turns = sorted(analyser.reports, key=lambda r: r.index)
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
