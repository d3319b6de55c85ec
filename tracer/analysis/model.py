"""The report model: every figure of a session, and every figure derived from them (no I/O).

The analysis fills these dataclasses; the terminal views, the TUI, the HTML report, the
exports and ``--json`` only format them. A figure that is derived from others (new bytes,
a turn's phases, a total over many traces) is a method or property here, never recomputed
by a view. Summary fields that add up across traces say so in their field metadata.
"""

# Over 400 lines: the one place that lists every figure of a session and derives the rest.
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from tracer.trace.records import Frame

__all__ = [
    "CUT_SHORT_STATUSES",
    "FAILED_STATUSES",
    "RESENT_REASONS",
    "SCHEMA_VERSION",
    "CacheLoss",
    "ConnectionReport",
    "FullTurn",
    "InspectReport",
    "Summary",
    "TraceStats",
    "TurnDetail",
    "TurnReport",
    "VoiceReport",
    "percentile",
]

SCHEMA_VERSION = 2
FAILED_STATUSES = frozenset(["error", "failed"])
CUT_SHORT_STATUSES = frozenset(["incomplete", "cancelled", "unfinished"])
RESENT_REASONS = ("chain", "cache_loss", "transport")
"""Why a turn resent items: waste on a live chain (``chain``), the price of a lost cache
(``cache_loss``), the price of HTTP without ``previous_response_id`` (``transport``)."""

_SUM = {"sum": True}  # field metadata: the field adds up across traces
_NULLABLE_SUM = {"sum": True, "nullable": True}  # adds up; null when no trace knows it


def span_ms(a: int | None, b: int | None) -> float | None:
    if a is None or b is None:
        return None
    return round((b - a) / 1e6, 3)


@dataclass(slots=True)
class VoiceReport:
    """The voice part of a turn (Realtime, Gemini Live): audio each way and voice latency."""

    input_audio_s: float | None  # seconds of audio appended for the turn
    output_audio_s: float | None  # seconds of audio streamed in the turn
    ttfa_ms: float | None  # turn start -> first output audio
    voice_latency_ms: float | None  # the server's speech_stopped -> first output audio
    perceived_latency_ms: float | None  # voice latency + the detection's silence duration
    transcription_delay_ms: float | None  # speech_stopped -> input transcript completed
    interrupted: bool  # talked over, cancelled, or its audio truncated by the client
    output_audio_cut_s: float | None  # seconds of streamed audio the client did not play
    silence_ms: int | None = None  # the turn detection's silence_duration_ms
    # Where the speech's end (voice latency's start) comes from: "server" (the service's
    # speech_stopped), "client" (its end-of-audio message), "transcript" (the input
    # transcript's end_ms: an estimate), "estimate" (the last audible input audio); None
    # without one.
    speech_end: str | None = None
    billed_s: float | None = None  # seconds the service billed for the turn (OpenAI Live)
    context_ratio: float | None = None  # the context window's use after it (OpenAI Live)


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
    input_tokens: int | None  # None: the server reported no usage (unknown, not 0)
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
    conversation: int = 0  # which conversation of the trace the turn belongs to
    resent_reason: str | None = None  # one of RESENT_REASONS when resent_items > 0
    vendor_events: int = 0  # events before response.created that are not the protocol's
    start_ns: int = 0  # when the create was sent: ns after the trace header's anchor
    end_ns: int | None = None  # when the turn ended (None: it never did)
    protocol: str = "responses"  # the protocol whose turn this is (``tracer.protocols``)
    trigger: str = "client"  # "client" (a create), "vad" (speech end), "server"
    input_audio_tokens: int | None = None
    output_audio_tokens: int | None = None
    voice: VoiceReport | None = None  # Realtime turns: audio and voice latency
    cache_write_tokens: int | None = None  # input tokens written to the cache
    cost_usd: float | None = None  # None: no price for the model, or no usage
    saved_by_cache_usd: float | None = None  # cached tokens at the input price, less their cost
    cache_write_usd: float | None = None
    resent_usd: float | None = None  # the resent items' share of the input cost (an estimate)
    server_timing: dict[str, Any] | None = None  # the service's timing_metrics, as sent
    ttft_outside_ms: float | None = None  # ttft less what the service reports: network, proxies
    ttft_service_ms: float | None = None  # the service's pre-inference and queue time
    ttft_engine_ms: float | None = None  # the engine's time to first token
    kind: str = "response"  # "response", "warmup" or "compaction" (a compact call)
    compacted_items: int = 0  # input items a compaction returned: neither new nor resent
    compacted_bytes: int = 0
    injected_items: int = 0  # of the input items, injected into the running response
    rejected_injections: list[str] = field(default_factory=list)  # the refusals' codes
    agents: list[str] = field(default_factory=list)  # agent names in a multi-agent output
    # The first request field (or "input[i]") that differs from the conversation's previous
    # create, in the order a cached prefix is built: where the cache hit ends.
    prefix_change: str | None = None
    retry_of: int | None = None  # the failed turn this create repeats (a retry)

    COMPARED = (
        "request_bytes",
        "resent_bytes",
        "referenced_bytes",
        "resent_field_bytes",
        "cached_tokens",
        "input_tokens",
        "output_tokens",
        "ttfe_ms",
        "ttft_ms",
        "generation_ms",
        "duration_ms",
        "client_ms",
        "voice_latency_ms",
        "cost_usd",
    )
    """The figures ``tracer diff`` compares per aligned pair of turns (B - A)."""

    @property
    def voice_latency_ms(self) -> float | None:
        """A voice turn's speech end to first audio (None for other turns)."""
        return self.voice.voice_latency_ms if self.voice is not None else None

    @property
    def new_bytes(self) -> int:
        """Input item bytes sent for the first time in the conversation (not resent, and
        not what a compaction returned)."""
        return self.input_bytes - self.resent_bytes - self.compacted_bytes

    @property
    def other_request_bytes(self) -> int:
        """Bytes of the create that are neither input items nor repeated request fields
        (its framing, ``model``, the first copy of ``tools`` and ``instructions``)."""
        return max(0, self.request_bytes - self.input_bytes - self.resent_field_bytes)

    @property
    def failed(self) -> bool:
        """The server said the turn failed (``error`` or ``failed``)."""
        return self.status in FAILED_STATUSES

    @property
    def cut_short(self) -> bool:
        """The turn did not run to its end: incomplete, cancelled, or unfinished when the
        trace ended."""
        return self.status in CUT_SHORT_STATUSES

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def times_ms(self, t0_ns: int) -> tuple[float, float, float]:
        """Where the turn lies on the session's time axis, in ms after ``t0_ns``: where its
        client time (and a first turn's handshake) began, where the create was sent, and
        where it ended (where it started, if it never ended)."""
        start = (self.start_ns - t0_ns) / 1e6
        end = ((self.end_ns if self.end_ns is not None else self.start_ns) - t0_ns) / 1e6
        return start - (self.client_ms or 0.0) - (self.handshake_ms or 0.0), start, end

    def phases(self) -> list[tuple[str, float]]:
        """The turn's own timeline in ms, in order: the client's time before it, the
        handshake (a connection's first turn), to first event, to first token, generation.
        A turn with no token (a warm-up, an error) has no token phases: after its first
        event comes ``finish``, the rest of the turn."""
        ttfe = self.ttfe_ms or 0.0
        dur = self.duration_ms or 0.0
        head = [("client", self.client_ms or 0.0), ("handshake", self.handshake_ms or 0.0),
                ("ttfe", ttfe)]  # fmt: skip
        if self.ttft_ms is None:
            return [*head, ("finish", max(0.0, dur - ttfe))]
        ttft = self.ttft_ms
        return [*head, ("token_wait", max(0.0, ttft - ttfe)), ("generation", max(0.0, dur - ttft))]


@dataclass(slots=True)
class TurnDetail:
    """What a turn said, beside its figures: collected by ``Session(details=True)``."""

    index: int
    input: list[dict[str, Any]]  # per input item: summary, type, resent, reason, bytes
    request_fields: dict[str, Any]  # the create's fields other than input and tools
    text: str = ""  # the output text, reassembled from the deltas (a prefix: see text_chars)
    text_chars: int = 0  # the output text's whole length in characters
    input_total: int = 0  # input items of the create; ``input`` describes the first ones
    calls: list[dict[str, Any]] = field(default_factory=list)
    output: list[dict[str, Any]] = field(default_factory=list)
    event_types: dict[str, int] = field(default_factory=dict)
    error_message: str | None = None
    frames: list[Frame] = field(default_factory=list)  # its create, steers and events
    frames_kept: bool = True  # False: over the session's frame budget (read them again)
    t_create_ns: int = 0
    t_end_ns: int | None = None

    @property
    def input_omitted(self) -> int:
        """Input items of the create that ``input`` does not describe."""
        return max(0, self.input_total - len(self.input))

    @property
    def text_omitted(self) -> int:
        """Characters of the output text that ``text`` does not hold."""
        return max(0, self.text_chars - len(self.text))

    def to_json(self) -> dict[str, Any]:
        """The ``tracer turn --json`` fields (frames are left out)."""
        return {
            "input": self.input,
            "input_total": self.input_total,
            "input_truncated": len(self.input) < self.input_total,
            "request_fields": self.request_fields,
            "text": self.text,
            "text_chars": self.text_chars,
            "text_truncated": len(self.text) < self.text_chars,
            "calls": self.calls,
            "output": self.output,
            "event_types": self.event_types,
            "error_message": self.error_message,
        }


@dataclass(slots=True)
class FullTurn:
    """One turn in full (``tracer turn``): its figures and what it said."""

    turn: TurnReport
    detail: TurnDetail

    def to_json(self) -> dict[str, Any]:
        return {"turn": asdict(self.turn), **self.detail.to_json()}


@dataclass(slots=True)
class CacheLoss:
    """A turn whose ``previous_response_id`` the server no longer held, and its cost."""

    turn: int
    conn: int
    kind: str
    previous_response_id: str | None
    recovery_turn: int | None = None  # the conversation's next turn that succeeded
    recovery_input_bytes: int | None = None  # what the client sent to recover
    recovery_resent_bytes: int | None = None  # of which resent: the price of the loss


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
    protocol: str | None = None  # the protocol that claimed it; None: not understood


@dataclass(slots=True)
class Summary:
    """Session totals (``tracer inspect --json`` ``summary``)."""

    connections: int = field(default=0, metadata=_SUM)
    turns: int = field(default=0, metadata=_SUM)
    warmups: int = field(default=0, metadata=_SUM)  # of the turns, warm-ups (generate: false)
    compactions: int = field(default=0, metadata=_SUM)  # of the turns, compact calls
    conversations: int = field(default=0, metadata=_SUM)
    responses_api: bool = False  # False: no Responses turns were found (generic traffic)
    protocols: dict[str, int] = field(default_factory=dict)  # connections per protocol
    unknown_connections: int = field(default=0, metadata=_SUM)  # claimed by no protocol
    bytes_sent: int = field(default=0, metadata=_SUM)  # client payload bytes
    bytes_received: int = field(default=0, metadata=_SUM)
    input_bytes: int = field(default=0, metadata=_SUM)
    resent_bytes: int = field(default=0, metadata=_SUM)
    resent_chain_bytes: int = field(default=0, metadata=_SUM)  # by reason (RESENT_REASONS)
    resent_cache_loss_bytes: int = field(default=0, metadata=_SUM)
    resent_transport_bytes: int = field(default=0, metadata=_SUM)
    referenced_bytes: int = field(default=0, metadata=_SUM)
    resent_field_bytes: int = field(default=0, metadata=_SUM)
    incremental_bytes: int = field(default=0, metadata=_SUM)  # a fully incremental client's
    referenced_share: float | None = None  # referenced / (referenced + resent)
    # Token totals over the turns that reported usage (usage_turns); null when none did.
    input_tokens: int | None = field(default=None, metadata=_NULLABLE_SUM)
    cached_tokens: int | None = field(default=None, metadata=_NULLABLE_SUM)
    output_tokens: int | None = field(default=None, metadata=_NULLABLE_SUM)
    usage_turns: int = field(default=0, metadata=_SUM)
    cache_losses: int = field(default=0, metadata=_SUM)
    errors: int = field(default=0, metadata=_SUM)
    wall_ms: float = 0.0
    handshake_ms: float = field(default=0.0, metadata=_SUM)
    ttfe_ms: float = field(default=0.0, metadata=_SUM)  # sums over turns
    token_wait_ms: float = field(default=0.0, metadata=_SUM)  # first event -> first token
    generation_ms: float = field(default=0.0, metadata=_SUM)
    client_ms: float = field(default=0.0, metadata=_SUM)
    ttft_p50_ms: float | None = None
    ttft_p90_ms: float | None = None
    ttft_p99_ms: float | None = None
    duration_p50_ms: float | None = None
    duration_p90_ms: float | None = None
    duration_p99_ms: float | None = None
    slowest_turns: list[int] = field(default_factory=list)
    # Voice sessions (Realtime): audio each way, interruptions, voice latency percentiles.
    input_audio_s: float | None = field(default=None, metadata=_NULLABLE_SUM)
    output_audio_s: float | None = field(default=None, metadata=_NULLABLE_SUM)
    voice_turns: int = field(default=0, metadata=_SUM)  # turns of a voice protocol
    interruptions: int = field(default=0, metadata=_SUM)
    voice_latency_p50_ms: float | None = None
    voice_latency_p90_ms: float | None = None
    voice_latency_p99_ms: float | None = None
    perceived_latency_p50_ms: float | None = None  # voice latency + the detection's silence
    perceived_latency_p90_ms: float | None = None
    # Server timing (the turns whose service sent its timing): the ttft split, p50.
    timed_turns: int = field(default=0, metadata=_SUM)
    ttft_outside_p50_ms: float | None = None
    ttft_service_p50_ms: float | None = None
    ttft_engine_p50_ms: float | None = None
    # Money (``tracer.analysis.pricing``): null when no turn could be priced.
    cost_usd: float | None = field(default=None, metadata=_NULLABLE_SUM)  # turns, warm-ups apart
    warmup_cost_usd: float | None = field(default=None, metadata=_NULLABLE_SUM)
    compaction_cost_usd: float | None = field(default=None, metadata=_NULLABLE_SUM)
    saved_by_cache_usd: float | None = field(default=None, metadata=_NULLABLE_SUM)
    cache_write_usd: float | None = field(default=None, metadata=_NULLABLE_SUM)
    cache_write_tokens: int | None = field(default=None, metadata=_NULLABLE_SUM)
    resent_chain_usd: float | None = field(default=None, metadata=_NULLABLE_SUM)  # estimates
    resent_cache_loss_usd: float | None = field(default=None, metadata=_NULLABLE_SUM)
    resent_transport_usd: float | None = field(default=None, metadata=_NULLABLE_SUM)
    priced_turns: int = field(default=0, metadata=_SUM)
    unpriced_models: list[str] = field(default_factory=list)  # models with usage, no price
    t0_ns: int = 0  # trace time (ns after the header's anchor) that turns' t_start_s count from

    COMPARED = (
        "turns",
        "connections",
        "bytes_sent",
        "input_bytes",
        "resent_bytes",
        "referenced_bytes",
        "resent_field_bytes",
        "incremental_bytes",
        "input_tokens",
        "cached_tokens",
        "output_tokens",
        "cache_losses",
        "errors",
        "handshake_ms",
        "client_ms",
        "generation_ms",
        "ttft_p50_ms",
        "ttft_p90_ms",
        "duration_p50_ms",
        "duration_p90_ms",
        "wall_ms",
        "input_audio_s",
        "output_audio_s",
        "interruptions",
        "voice_latency_p50_ms",
        "voice_latency_p90_ms",
        "cost_usd",
    )
    """The totals ``tracer diff`` compares (B - A)."""

    PROGRESS_FIELDS = (
        "turns", "bytes_sent", "resent_bytes", "referenced_bytes", "cached_tokens",
        "cache_losses",
    )  # fmt: skip

    TIME_BUCKETS = ("handshake", "ttfe", "token_wait", "generation", "client")
    """The phases ``tracer latency`` sums over the session (``TurnReport.phases`` names)."""

    def resent_usd(self) -> dict[str, float | None]:
        """What resent context cost, by reason (``RESENT_REASONS``): estimates."""
        return {r: getattr(self, f"resent_{r}_usd") for r in RESENT_REASONS}

    @property
    def saved_bytes(self) -> int:
        """What a fully incremental client would not have sent: resent items plus repeated
        request fields (``bytes_sent - incremental_bytes``)."""
        return self.bytes_sent - self.incremental_bytes

    def time_buckets(self) -> list[tuple[str, float, float | None]]:
        """Where the time went: per phase of ``TIME_BUCKETS``, its total over the turns in
        ms and its share of the wall time (None when the trace spans no time: a share of
        nothing is not a figure). Side-by-side lanes can add up to more than the wall."""
        values = {"handshake": self.handshake_ms, "ttfe": self.ttfe_ms,
                  "token_wait": self.token_wait_ms, "generation": self.generation_ms,
                  "client": self.client_ms}  # fmt: skip
        wall = self.wall_ms
        return [(k, values[k], values[k] / wall if wall > 0 else None) for k in self.TIME_BUCKETS]

    def progress(self) -> dict[str, Any]:
        """The running totals ``tracer watch --json`` prints while a trace grows."""
        return {k: getattr(self, k) for k in self.PROGRESS_FIELDS}

    @staticmethod
    def summed_fields() -> list[str]:
        """The fields that add up across traces, in declaration order."""
        return [f.name for f in fields(Summary) if f.metadata.get("sum")]

    @staticmethod
    def total(summaries: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """The total of many ``summary`` JSON objects: summed fields only. A token total
        that no summary knows is null."""
        rows = list(summaries)
        out: dict[str, Any] = {}
        for f in fields(Summary):
            if not f.metadata.get("sum"):
                continue
            values = [r.get(f.name) for r in rows]
            known = [v for v in values if v is not None]
            if f.metadata.get("nullable"):
                out[f.name] = sum(known) if known else None
            else:
                out[f.name] = round(sum(known), 3) if known else 0
        return out


_COST_SUMS = ("input_tokens", "cached_tokens", "cache_write_tokens", "output_tokens",
              "cost_usd", "saved_by_cache_usd", "cache_write_usd", "resent_usd")  # fmt: skip


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

    def turn_columns(self) -> dict[str, list[Any]]:
        """The turns as columns: each ``TurnReport`` field's values in turn order, a
        nested part's fields as ``part_field`` columns (None where a turn has no such
        part). The values are the report's own (lists and dicts are shared, not copied):
        tables read them without a dict per turn."""
        columns: dict[str, list[Any]] = {}
        for f in fields(TurnReport):
            values = [getattr(t, f.name) for t in self.turns]
            part = _PARTS.get(f.name)
            if part is None:
                columns[f.name] = values
                continue
            for sub in fields(part):
                columns[f"{f.name}_{sub.name}"] = [
                    None if v is None else getattr(v, sub.name) for v in values
                ]
        return columns

    CACHE_FIELDS = (
        "index", "conn", "conversation", "stream_id", "response_id", "previous_response_id",
        "status", "input_items", "input_bytes", "resent_items", "resent_bytes",
        "resent_reason", "referenced_items", "referenced_bytes", "resent_field_bytes",
        "resent_fields", "input_tokens", "cached_tokens", "cache_loss",
    )  # fmt: skip
    LATENCY_FIELDS = (
        "index", "conn", "conversation", "stream_id", "status", "warmup", "t_start_s",
        "handshake_ms", "ttfe_ms", "ttft_ms", "generation_ms", "duration_ms", "client_ms",
    )  # fmt: skip

    def _projection(self, keys: tuple[str, ...], *extra: str) -> dict[str, Any]:
        """The summary, each turn's ``keys``, and the ``extra`` top-level parts."""
        data = self.to_json()
        out = {
            "summary": data["summary"],
            "turns": [{k: t[k] for k in keys} for t in data["turns"]],
        }
        out.update((name, data[name]) for name in extra)
        return out

    def connection_starts(self) -> dict[int, str]:
        """How each connection after the first begins, by its first turn: ``reconnect``
        when that turn continues a conversation begun on an earlier connection, ``new``
        when it starts a conversation of its own (an independent session). HTTP
        connections are left out: one request a connection is how that transport works."""
        begun: dict[int, int] = {}  # conversation -> the connection it began on
        out: dict[int, str] = {}
        seen: set[int] = set()
        for t in self.turns:
            if t.conn not in seen:
                seen.add(t.conn)
                if len(seen) > 1 and t.transport != "http":
                    earlier = begun.get(t.conversation, t.conn)
                    out[t.conn] = "reconnect" if earlier != t.conn else "new"
            begun.setdefault(t.conversation, t.conn)
        return out

    def cache_json(self) -> dict[str, Any]:
        """The ``tracer cache --json`` projection."""
        return self._projection(self.CACHE_FIELDS, "cache_losses")

    def latency_json(self) -> dict[str, Any]:
        """The ``tracer latency --json`` projection."""
        return self._projection(self.LATENCY_FIELDS)

    COST_FIELDS = (
        "cost_usd", "warmup_cost_usd", "compaction_cost_usd", "saved_by_cache_usd",
        "cache_write_usd", "cache_write_tokens", "resent_chain_usd", "resent_cache_loss_usd",
        "resent_transport_usd", "priced_turns", "turns", "warmups", "compactions", "input_tokens",
        "cached_tokens", "output_tokens", "unpriced_models",
    )  # fmt: skip

    def cost_json(self) -> dict[str, Any]:
        """The ``tracer cost --json`` part of one trace: the money of its summary, and its
        costs by model and by conversation."""
        summary = asdict(self.summary)
        return {
            "summary": {k: summary[k] for k in self.COST_FIELDS},
            "models": self.costs_by("model"),
            "conversations": self.costs_by("conversation"),
        }

    def costs_by(self, key: str) -> list[dict[str, Any]]:
        """Tokens and money per ``model`` or per ``conversation``, in order of cost: turns,
        warm-ups, token totals (null when no turn reported them) and ``cost_usd`` (null when
        none was priced)."""
        rows: dict[Any, dict[str, Any]] = {}
        for t in self.turns:
            name = getattr(t, key)
            row = rows.setdefault(name, {key: name, "turns": 0, "warmups": 0, "priced_turns": 0,
                                         **dict.fromkeys(_COST_SUMS)})  # fmt: skip
            row["turns"] += 1
            row["warmups"] += t.warmup
            row["priced_turns"] += t.cost_usd is not None
            for figure in _COST_SUMS:
                value = getattr(t, figure)
                if value is not None:
                    row[figure] = (row[figure] or 0) + value
        for row in rows.values():
            for figure in _COST_SUMS:
                if isinstance(row[figure], float):
                    row[figure] = round(row[figure], 6)
        return sorted(rows.values(), key=lambda r: (-(r["cost_usd"] or 0.0), str(r[key])))


@dataclass(slots=True)
class TraceStats:
    """One row of ``tracer stats``: a trace's summary, or why it could not be read. The
    total row (``totals``) holds only the summary fields that add up across traces."""

    trace: str
    error: str | None
    truncated: bool
    summary: Summary | None
    total: bool = False

    def to_json(self) -> dict[str, Any]:
        summary: dict[str, Any] | None = None
        if self.summary is not None:
            summary = asdict(self.summary)
            if self.total:
                summary = {k: summary[k] for k in Summary.summed_fields()}
        return {"trace": self.trace, "error": self.error, "truncated": self.truncated,
                "summary": summary}  # fmt: skip

    @staticmethod
    def totals(rows: list[TraceStats]) -> TraceStats:
        failed = sum(1 for r in rows if r.error)
        summed = Summary.total(asdict(r.summary) for r in rows if r.summary is not None)
        return TraceStats(
            trace="total",
            error=f"{failed} of {len(rows)} failed" if failed else None,
            truncated=any(r.truncated for r in rows),
            summary=Summary(**summed),
            total=True,
        )


def percentile(values: list[float], p: float) -> float | None:
    """The ``p``-th percentile of ``values`` (linear interpolation), or None."""
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return round(ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo), 3)


_PARTS: dict[str, Any] = {"voice": VoiceReport}
"""The fields of ``TurnReport`` that are report dataclasses of their own, and their class."""
