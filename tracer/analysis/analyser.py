"""The turn analyser: from the protocol model's turns to the report's figures (no I/O).

``Analyser.start`` takes a create as it is sent (context accounting needs creates in the
order they were sent) and ``Analyser.end`` the turn once it has ended. What it learned at
the start is kept by turn index until the end, never on the protocol model's ``Turn``.
Which items were new, resent or referenced is the context model's decision
(``tracer.analysis.context``).
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tracer.analysis.contents import TurnContent, content_of
from tracer.analysis.context import Account, ContextModel
from tracer.analysis.items import json_bytes, summarise_item
from tracer.analysis.model import (
    FAILED_STATUSES,
    CacheLoss,
    TurnDetail,
    TurnReport,
    VoiceReport,
    span_ms,
)
from tracer.analysis.pricing import DEFAULT_PRICING, Cost, Pricing
from tracer.protocols.base import Tokens
from tracer.protocols.events import TurnAmended
from tracer.protocols.registry import protocol_named
from tracer.protocols.turns import TEXT_LIMIT, Connection, Turn
from tracer.responses.model import output_text
from tracer.responses.timing import split_ttft

__all__ = ["DETAIL_ITEMS", "Analyser"]

DETAIL_ITEMS = 1000
"""Input items described per turn for its detail view (``tracer turn --all``: all); a
create may carry a million."""

# Request fields that are not context: comparing them across creates means nothing.
_NOT_CONTEXT = frozenset(["type", "input", "previous_response_id", "stream_id", "generate"])

# Request fields a cached prefix depends on, in the order the service builds the prefix
# (a model or cache key of its own routes elsewhere); the input items follow them.
_PREFIX_FIELDS = ("model", "prompt_cache_key", "tools", "instructions")

RETRY_WINDOW = 16
"""Failed turns kept as candidates for a later create that repeats one (a retry)."""


@dataclass(slots=True)
class _Start:
    """What the analysis learned of a turn when its create was sent."""

    account: Account
    resent_fields: list[str] = field(default_factory=list)
    resent_field_bytes: int = 0
    model: str | None = None
    warmup: bool = False
    prefix_change: str | None = None
    retry_of: int | None = None


class Analyser:
    """Turns in, ``TurnReport`` (and optionally details and diff contents) out."""

    def __init__(
        self,
        *,
        details: bool = False,
        frame_budget: int = 0,
        contents: bool = False,
        detail_items: int | None = DETAIL_ITEMS,
        text_limit: int | None = TEXT_LIMIT,
        pricing: Pricing | None = None,
    ) -> None:
        self.details: dict[int, TurnDetail] | None = {} if details else None
        self.detail_items = detail_items  # input items described per turn (None: all)
        self.text_limit = text_limit  # output text characters kept per turn (None: all)
        self.contents: dict[int, TurnContent] | None = {} if contents else None
        self.pricing = pricing if pricing is not None else DEFAULT_PRICING
        self.frame_budget = frame_budget  # payload bytes of frames kept for the details
        self.frames_kept_bytes = 0
        self.summaries: dict[int, str] = {}  # item hash -> its one-line summary
        self.context = ContextModel()
        self.first_turn_of: set[int] = set()
        self.reports: list[TurnReport] = []
        self.losses: list[CacheLoss] = []
        self._started: dict[int, _Start] = {}  # turn index -> what its start learned
        self._seen_items: dict[int, tuple[str, str]] = {}  # for content_of: one copy each
        self._by_index: dict[int, TurnReport] = {}  # a late timing event amends its turn
        # Failed turns (index, input item hashes) a later create may repeat, newest last.
        self._failed: deque[tuple[int, tuple[int, ...]]] = deque(maxlen=RETRY_WINDOW)

    def start(self, t: Turn) -> None:
        """Context accounting of a create, in the order creates were sent."""
        account = self.context.start(t)
        if self.details is not None:
            rows = zip(t.input_items, account.hashes, account.resent, account.sizes, strict=True)
            shown = itertools.islice(rows, self.detail_items)
            self.details[t.index] = TurnDetail(
                index=t.index,
                input=[self._describe(i, h, r, n, account.reason) for i, h, r, n in shown],
                input_total=len(account.hashes),
                request_fields={k: v for k, v in t.request.items() if k not in ("input", "tools")},
            )
        if self.contents is not None:
            self.contents[t.index] = content_of(t, self._seen_items, account.keys)
        # Request fields repeated unchanged from the conversation's previous create.
        conv = account.conversation
        fields = {
            k: json_bytes(v, sort=True) for k, v in t.request.items() if k not in _NOT_CONTEXT
        }
        resent_fields = sorted(k for k, v in fields.items() if conv.last_fields.get(k) == v)
        prefix_change = account.prefix_change
        if conv.last_fields:
            changed = (k for k in _PREFIX_FIELDS if fields.get(k) != conv.last_fields.get(k))
            prefix_change = next(changed, prefix_change)
        conv.last_fields = fields
        model = t.request.get("model", t.model)
        self._started[t.index] = _Start(
            account=account,
            resent_fields=resent_fields,
            resent_field_bytes=sum(len(fields[k]) for k in resent_fields),
            model=model if isinstance(model, str) else None,
            warmup=t.warmup,
            prefix_change=prefix_change,
            retry_of=self._retry_of(account.hashes),
        )
        # The request body can be large (a full resend): it is not needed any more.
        t.request = {}

    def _retry_of(self, hashes: list[int]) -> int | None:
        """The failed turn whose input this create repeats at its end (a retry: the same
        new items, alone or after the history they continued), newest first."""
        for k in range(len(self._failed) - 1, -1, -1):
            index, before = self._failed[k]
            if before and len(hashes) >= len(before) and tuple(hashes[-len(before) :]) == before:
                del self._failed[k]
                return index
        return None

    def _describe(
        self, item: Any, h: int, resent: bool, size: int, reason: str | None
    ) -> dict[str, Any]:
        summary = self.summaries.get(h)
        if summary is None:  # a resent item is summarised once
            summary = self.summaries[h] = summarise_item(item)
        kind = item.get("type", "message") if isinstance(item, dict) else "?"
        return {"summary": summary, "type": kind, "resent": resent,
                "reason": reason if resent else None, "bytes": size}  # fmt: skip

    # Over 60 lines: the report's constructor names every figure of a turn once.
    def end(self, t: Turn, connections: dict[int, Connection], t0: int) -> None:
        """Accounting of an ended turn: its output, usage, latency and cache losses."""
        started = self._started.pop(t.index)
        acct = started.account
        before = self.context.client_since(t, acct)
        referenced_items, referenced_bytes = _referenced(t, acct)
        if t.injected:  # accepted into the running response: input of this turn
            self.context.inject(acct, t.injected)
        cache_loss = self._cache_loss(t, acct)  # before context.end learns this response
        out_items = self.context.end(t, acct, t.output, t.copies)
        if self.details is not None:
            self._detail(t)
        if self.contents is not None and t.index in self.contents:
            self.contents[t.index].answered(t.output)
        tokens = _tokens(t)
        cost = self.pricing.cost(started.model, tokens)
        if t.status in FAILED_STATUSES and cache_loss is None:
            self._failed.append((t.index, tuple(acct.hashes)))
        self._keep(
            t,
            TurnReport(
                index=t.index,
                conn=t.conn,
                stream_id=t.stream_id,
                response_id=t.response_id,
                previous_response_id=t.previous_response_id,
                status=t.status,
                error_code=t.error_code,
                warmup=started.warmup,
                transport=t.transport,
                model=started.model,
                t_start_s=round((t.t_create - t0) / 1e9, 6),
                request_bytes=t.request_bytes,
                input_items=len(acct.hashes),
                input_bytes=acct.input_bytes,
                resent_items=acct.resent_items,
                resent_bytes=acct.resent_bytes,
                referenced_items=referenced_items,
                referenced_bytes=referenced_bytes,
                resent_field_bytes=started.resent_field_bytes,
                resent_fields=started.resent_fields,
                input_tokens=tokens.input,
                cached_tokens=tokens.cached,
                output_tokens=tokens.output,
                output_items=out_items,
                handshake_ms=self._handshake_ms(t, connections),
                ttfe_ms=span_ms(t.t_create, t.t_first_event),
                ttft_ms=span_ms(t.t_create, t.t_first_token),
                generation_ms=span_ms(t.t_first_token, t.t_end),
                duration_ms=span_ms(t.t_create, t.t_end),
                client_ms=span_ms(before, t.t_create),
                cache_loss=cache_loss,
                steers=t.steers,
                events=t.events,
                conversation=acct.conversation.id,
                resent_reason=acct.reason,
                vendor_events=t.vendor_events,
                start_ns=t.t_create,
                end_ns=t.t_end,
                protocol=t.protocol,
                trigger=t.trigger,
                input_audio_tokens=tokens.input_audio,
                output_audio_tokens=tokens.output_audio,
                voice=_voice(t),
                cache_write_tokens=tokens.cache_write,
                kind="warmup" if started.warmup else t.kind,
                compacted_items=acct.compacted_items,
                compacted_bytes=acct.compacted_bytes,
                injected_items=len(t.injected),
                rejected_injections=list(t.rejected),
                agents=_agents(t.output),
                prefix_change=started.prefix_change,
                retry_of=started.retry_of,
                **_money(cost, acct),
            ),
        )

    def _keep(self, t: Turn, report: TurnReport) -> None:
        self.reports.append(report)
        self._by_index[t.index] = report  # a late timing event amends it
        if t.timing is not None:
            _timed(report, t.timing)

    def amend(self, event: TurnAmended) -> None:
        """What arrived after a turn's end: the service's timing of it (its report takes the
        split), or an injection it refused (its code)."""
        report = self._by_index.get(event.index)
        if report is None:
            return
        if event.timing is not None:
            _timed(report, event.timing)
        if event.rejected is not None:
            report.rejected_injections.append(event.rejected)

    def _handshake_ms(self, t: Turn, connections: dict[int, Connection]) -> float | None:
        """The connection's handshake, on its first turn only."""
        if t.conn in self.first_turn_of:
            return None
        self.first_turn_of.add(t.conn)
        conn = connections.get(t.conn)
        if conn is None or conn.handshake_ns is None:
            return None
        return round(conn.handshake_ns / 1e6, 3)

    def _cache_loss(self, t: Turn, acct: Account) -> str | None:
        """The turn's cache loss, if it met one; a loss's recovery turn settles its cost."""
        conv = acct.conversation
        kind: str | None = None
        if t.error_code == "previous_response_not_found" and t.previous_response_id:
            kind = self.context.loss_kind(t)
        elif acct.reconnect and t.previous_response_id is None and acct.resent_items:
            kind = "reconnect"  # resent on a new socket with no chain: the cache was gone
        if kind is not None:
            loss = CacheLoss(t.index, t.conn, kind, t.previous_response_id)
            self.losses.append(loss)
            conv.loss = loss
        if t.status == "completed" and conv.loss is not None:
            conv.loss.recovery_turn = t.index
            conv.loss.recovery_input_bytes = acct.input_bytes
            conv.loss.recovery_resent_bytes = acct.resent_bytes
            conv.loss = None
        return kind

    def _detail(self, t: Turn) -> None:
        assert self.details is not None
        d = self.details.setdefault(t.index, TurnDetail(index=t.index, input=[], request_fields={}))
        if t.text_chars:
            d.text, d.text_chars = "".join(t.text), t.text_chars
        else:
            whole = output_text(t.output)
            d.text, d.text_chars = whole[: self.text_limit], len(whole)
        d.calls = [
            {
                "name": o.get("name"),
                "call_id": o.get("call_id"),
                "arguments": _cut(o.get("arguments"), self.text_limit),
            }
            for o in t.output
            if o.get("type") == "function_call"
        ]
        d.output = _cut(t.output, self.text_limit) if self.text_limit is not None else t.output
        d.event_types = dict(t.event_types)
        d.error_message = t.error_message
        d.t_create_ns, d.t_end_ns = t.t_create, t.t_end
        size = sum(len(f.payload) for f in t.frames)
        if not t.frames_dropped and self.frames_kept_bytes + size <= self.frame_budget:
            self.frames_kept_bytes += size
            d.frames = t.frames
        else:
            d.frames_kept = False
        t.frames = []


def _agents(output: list[dict[str, Any]]) -> list[str]:
    """The agents that spoke in a multi-agent turn's output (``agent.agent_name``)."""
    names = {o["agent"].get("agent_name") for o in output if isinstance(o.get("agent"), dict)}
    return sorted(n for n in names if isinstance(n, str))


def _timed(report: TurnReport, timing: dict[str, Any]) -> None:
    """Split the turn's time to first token by the service's timing of it."""
    report.server_timing = timing
    split = split_ttft(report.ttft_ms, timing)
    report.ttft_outside_ms, report.ttft_service_ms, report.ttft_engine_ms = split


def _money(cost: Cost | None, acct: Account) -> dict[str, Any]:
    """A turn's cost figures; the resent items' share of its input cost is estimated from
    their share of the input items' bytes (the service counts tokens per request, not per
    item)."""
    if cost is None:
        return {}
    share = acct.resent_bytes / acct.input_bytes if acct.input_bytes else 0.0
    return {
        "cost_usd": round(cost.total, 9),
        "saved_by_cache_usd": round(cost.saved_by_cache, 9),
        "cache_write_usd": round(cost.cache_write, 9),
        "resent_usd": round(cost.input * share, 9),
    }


def _referenced(t: Turn, acct: Account) -> tuple[int, int]:
    """Items and bytes the turn referred to and did not resend (what its chain, or the
    connection's conversation, stood for)."""
    if t.error_code == "previous_response_not_found" or (
        t.continues and t.t_first_event is None  # refused before the server started it
    ):
        return 0, 0  # the server held nothing to refer to
    chain_items, chain_bytes = acct.chain or (0, 0)
    return max(0, chain_items - acct.resent_items), max(0, chain_bytes - acct.resent_bytes)


def _tokens(t: Turn) -> Tokens:
    """The turn's token counts, read from its usage the way its protocol names them."""
    protocol = protocol_named(t.protocol)
    return protocol.tokens(t.usage) if protocol is not None else Tokens()


def _voice(t: Turn) -> VoiceReport | None:
    """The voice figures of a Realtime turn, from the moments and byte counts it kept."""
    v = t.voice
    if v is None:
        return None
    latency = span_ms(v.t_speech_stopped, v.t_first_audio)
    return VoiceReport(
        input_audio_s=v.seconds(v.input_audio_bytes, v.input_rate),
        output_audio_s=v.seconds(v.output_audio_bytes, v.output_rate),
        ttfa_ms=span_ms(t.t_create, v.t_first_audio),
        voice_latency_ms=latency,
        perceived_latency_ms=(
            round(latency + v.silence_ms, 3)
            if latency is not None and v.silence_ms is not None
            else None
        ),
        transcription_delay_ms=span_ms(v.t_speech_stopped, v.t_transcribed),
        interrupted=v.interrupted,
        output_audio_cut_s=v.seconds(v.cut_bytes, v.output_rate) if v.interrupted else None,
        silence_ms=v.silence_ms,
        speech_end=v.speech_end if v.t_speech_stopped is not None else None,
        billed_s=v.billed_s,
        context_ratio=v.context_ratio,
    )


def _cut(value: Any, limit: int | None) -> Any:
    """A copy of a JSON value with every string over ``limit`` characters cut (``…`` marks
    the cut); the value itself when nothing is that long."""
    if limit is None:
        return value
    if isinstance(value, str):
        return value[:limit] + "…" if len(value) > limit else value
    if isinstance(value, list):
        return [_cut(v, limit) for v in value]
    if isinstance(value, dict):
        return {k: _cut(v, limit) for k, v in value.items()}
    return value
