"""The streaming analysis of a trace: records in, the session report out (no I/O)."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable

from tracer.analysis.analyser import DETAIL_ITEMS, Analyser
from tracer.analysis.contents import TurnContent
from tracer.analysis.model import (
    RESENT_REASONS,
    ConnectionReport,
    InspectReport,
    Summary,
    TurnDetail,
    TurnReport,
    percentile,
    span_ms,
)
from tracer.analysis.pricing import Pricing
from tracer.protocols.events import TurnEnded, TurnStarted
from tracer.protocols.segmenter import Segmenter
from tracer.protocols.turns import TEXT_LIMIT, Connection
from tracer.trace.caps import MAX_CONNECTIONS, MAX_TURNS, cap, frames_cap
from tracer.trace.reader import FrameRun
from tracer.trace.records import Frame, Record

__all__ = ["FRAME_BUDGET", "Session", "analyse", "select_frames"]

FRAME_BUDGET = 64 * 1024 * 1024
"""Payload bytes of frames a ``Session(details=True)`` keeps for its turns' frame views."""


class Session:
    """The analysis of a trace as its records arrive, for live views (no I/O).

    ``feed`` takes the next records and returns the turns that ended among them;
    ``report`` is the session so far (turns still in flight are left out and counted in
    ``in_flight``); ``finish`` ends them as ``unfinished`` and gives the final report.
    With ``details``, each turn's input items, output and frames are kept (``detail``); the
    frames only up to ``frame_budget`` payload bytes in all, so that memory stays bounded on
    a large trace (past it, ``TurnDetail.frames_kept`` is False: read them again with
    ``select_frames``). With ``contents``, what each turn asked and answered is kept for a
    diff (``contents()``).
    """

    def __init__(
        self,
        *,
        details: bool = False,
        frame_budget: int = FRAME_BUDGET,
        contents: bool = False,
        everything: bool = False,
        pricing: Pricing | None = None,
    ) -> None:
        # ``everything``: the details describe every input item and keep the whole output
        # text, not the first DETAIL_ITEMS items and TEXT_LIMIT characters.
        self._segmenter = Segmenter(
            collect_text=details,
            text_limit=sys.maxsize if everything else TEXT_LIMIT,
            keep_frames=details,
            frame_budget=frame_budget,
            max_turns=cap("TRACER_MAX_TURNS", MAX_TURNS),
            max_connections=cap("TRACER_MAX_CONNECTIONS", MAX_CONNECTIONS),
            max_frames=frames_cap(),
        )
        self._analyser = Analyser(
            details=details,
            frame_budget=frame_budget,
            contents=contents,
            detail_items=None if everything else DETAIL_ITEMS,
            text_limit=None if everything else TEXT_LIMIT,
            pricing=pricing,
        )
        self._t0: int | None = None
        self.records = 0

    def feed(self, records: Iterable[Record | FrameRun]) -> list[TurnReport]:
        """Analyse the next records (a reader's frame batches as ``FrameRun``, read a batch
        at a time); the turns that ended among them."""
        analyser, segmenter = self._analyser, self._segmenter
        done = len(analyser.reports)
        if isinstance(records, list):
            self.records += sum(r.n if type(r) is FrameRun else 1 for r in records)
        else:
            records = self._count(records)
        for event in segmenter.feed(records):
            if self._t0 is None:
                self._t0 = segmenter.t_first or 0
            kind = type(event)
            if kind is TurnStarted:
                analyser.start(event.turn)  # type: ignore[union-attr]
            elif kind is TurnEnded:
                analyser.end(event.turn, segmenter.connections, self._t0)  # type: ignore[union-attr]
            else:
                analyser.amend(event)  # type: ignore[arg-type]
        return analyser.reports[done:]

    def _count(self, records: Iterable[Record | FrameRun]) -> Iterable[Record | FrameRun]:
        for record in records:
            self.records += record.n if type(record) is FrameRun else 1
            yield record

    @property
    def in_flight(self) -> int:
        """Turns whose create was sent and whose end has not arrived yet."""
        return self._segmenter.in_flight()

    def report(self) -> InspectReport:
        """The session so far."""
        return _summarise(self._analyser, self._segmenter, self._t0_or_first())

    def finish(self) -> InspectReport:
        """End the turns still in flight (``unfinished``) and give the final report."""
        for event in self._segmenter.finish():
            self._analyser.end(event.turn, self._segmenter.connections, self._t0_or_first())
        return self.report()

    def detail(self, index: int) -> TurnDetail | None:
        """What turn ``index`` said (with ``details``)."""
        details = self._analyser.details
        return details.get(index) if details is not None else None

    def contents(self) -> list[TurnContent]:
        """What each turn asked and answered, in the order the turns started (with
        ``contents``)."""
        contents = self._analyser.contents or {}
        return [contents[i] for i in sorted(contents)]

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


def analyse(records: Iterable[Record | FrameRun]) -> InspectReport:
    """Analyse a trace's records (streamed once; frame batches as ``FrameRun``) into the
    session report."""
    session = Session()
    session.feed(records)
    return session.finish()


def _summarise(analyser: Analyser, segmenter: Segmenter, t0: int) -> InspectReport:
    turns = sorted(analyser.reports, key=lambda r: r.index)
    conns = segmenter.connections
    s = Summary(connections=len(conns), turns=len(turns), t0_ns=t0)
    s.responses_api = any(t.protocol == "responses" for t in turns)
    s.protocols = dict(Counter(c.protocol for c in conns.values() if c.protocol).most_common())
    s.unknown_connections = sum(c.protocol is None for c in conns.values())
    s.conversations = len({t.conversation for t in turns})
    s.bytes_sent = sum(c.client_bytes for c in conns.values())
    s.bytes_received = sum(c.server_bytes for c in conns.values())
    tokens: dict[str, list[int]] = {"input_tokens": [], "cached_tokens": [], "output_tokens": []}
    for t in turns:
        s.warmups += t.warmup
        s.compactions += t.kind == "compaction"
        s.input_bytes += t.input_bytes
        s.resent_bytes += t.resent_bytes
        if t.resent_reason is not None:
            name = f"resent_{t.resent_reason}_bytes"
            setattr(s, name, getattr(s, name) + t.resent_bytes)
        s.referenced_bytes += t.referenced_bytes
        s.resent_field_bytes += t.resent_field_bytes
        s.usage_turns += t.input_tokens is not None or t.output_tokens is not None
        for name, values in tokens.items():
            value = getattr(t, name)
            if value is not None:
                values.append(value)
        s.errors += t.failed
        s.ttfe_ms += t.ttfe_ms or 0.0
        if t.ttft_ms is not None and t.ttfe_ms is not None:
            s.token_wait_ms += t.ttft_ms - t.ttfe_ms
        s.generation_ms += t.generation_ms or 0.0
        s.client_ms += t.client_ms or 0.0
    s.input_tokens, s.cached_tokens, s.output_tokens = (
        sum(v) if v else None for v in tokens.values()
    )
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
    _voice_summary(s, turns)
    _money_summary(s, turns)
    timed = [t for t in turns if t.server_timing is not None]
    s.timed_turns = len(timed)
    for part in ("outside", "service", "engine"):
        parts: list[float] = [v for t in timed if (v := getattr(t, f"ttft_{part}_ms")) is not None]
        setattr(s, f"ttft_{part}_p50_ms", percentile(parts, 50))
    connections = _connection_reports(conns)
    return InspectReport(
        summary=s, turns=turns, connections=connections, cache_losses=analyser.losses
    )


def _money_summary(s: Summary, turns: list[TurnReport]) -> None:
    """What the session cost: its turns (warm-ups apart), what caching saved and what
    writing the cache cost, resent context by reason; which models had no price."""
    priced = [t for t in turns if t.cost_usd is not None]
    s.priced_turns = len(priced)
    s.unpriced_models = sorted(
        {
            t.model or "(no model)"
            for t in turns
            if t.cost_usd is None and t.input_tokens is not None
        }
    )
    writes = [t.cache_write_tokens for t in turns if t.cache_write_tokens is not None]
    s.cache_write_tokens = sum(writes) if writes else None
    if not priced:
        return

    def total(values: Iterable[float | None]) -> float:
        return round(sum((v or 0.0 for v in values), 0.0), 6)

    s.cost_usd = total(t.cost_usd for t in priced if t.kind == "response")
    s.warmup_cost_usd = total(t.cost_usd for t in priced if t.kind == "warmup")
    s.compaction_cost_usd = total(t.cost_usd for t in priced if t.kind == "compaction")
    s.saved_by_cache_usd = total(t.saved_by_cache_usd for t in priced)
    s.cache_write_usd = total(t.cache_write_usd for t in priced) if writes else None
    for reason in RESENT_REASONS:
        value = total(t.resent_usd for t in priced if t.resent_reason == reason)
        setattr(s, f"resent_{reason}_usd", value)


def _voice_summary(s: Summary, turns: list[TurnReport]) -> None:
    """Audio each way, interruptions and voice latency percentiles of the voice turns."""
    voiced = [t.voice for t in turns if t.voice is not None]
    if not voiced:
        return
    ins = [v.input_audio_s for v in voiced if v.input_audio_s is not None]
    outs = [v.output_audio_s for v in voiced if v.output_audio_s is not None]
    s.input_audio_s = round(sum(ins), 3) if ins else None
    s.output_audio_s = round(sum(outs), 3) if outs else None
    s.voice_turns = len(voiced)
    s.interruptions = sum(v.interrupted for v in voiced)
    latency = [v.voice_latency_ms for v in voiced if v.voice_latency_ms is not None]
    s.voice_latency_p50_ms, s.voice_latency_p90_ms, s.voice_latency_p99_ms = (
        percentile(latency, p) for p in (50, 90, 99)
    )
    perceived = [v.perceived_latency_ms for v in voiced if v.perceived_latency_ms is not None]
    s.perceived_latency_p50_ms = percentile(perceived, 50)
    s.perceived_latency_p90_ms = percentile(perceived, 90)


def _connection_reports(conns: dict[int, Connection]) -> list[ConnectionReport]:
    return [
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
            duration_ms=span_ms(c.t_open, c.t_close),
            close_code=c.close_code,
            close_by=c.close_by,
            close_error=c.close_error,
            message_types=dict(Counter(c.message_types).most_common()),
            protocol=c.protocol,
        )
        for c in sorted(conns.values(), key=lambda c: c.conn)
    ]
