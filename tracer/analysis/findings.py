"""Findings: what went wrong in a session, what it cost, and what to change (no I/O).

Each finding has a stable ``code`` (``docs/findings.md`` lists them), a ``severity``
derived from its cost, where it happened (turns, connections), the figures it rests on,
and the change that would avoid it. They are read off the session report: a finding never
measures anything the report does not hold.
"""

from __future__ import annotations

from collections import Counter
from itertools import pairwise
from typing import Any

from tracer.analysis.finding import (
    FINDING_CODES,
    SEVERITY_ORDER,
    Finding,
    severity_of,
    usd_of,
)
from tracer.analysis.model import InspectReport
from tracer.analysis.retries import cache_collapse, retries
from tracer.vocab import plural

__all__ = ["FINDING_CODES", "Finding", "find", "findings_failures", "group"]

LONG_CONNECTION_MS = 55 * 60 * 1000.0
"""A WebSocket connection this long is near the service's 60-minute limit."""


def find(report: InspectReport) -> list[Finding]:
    """The session's findings, the weightiest first."""
    found = [
        *_cut_short(report),
        *retries(report),
        *_cache_losses(report),
        *cache_collapse(report),
        *_resends(report, "chain", "chain_resend"),
        *_resends(report, "transport", "transport_resend"),
        *_warmups(report),
        *_repeated_fields(report),
        *_long_connections(report),
        *_service_queue(report),
        *_client_time(report),
    ]
    order = list(FINDING_CODES)
    return sorted(
        found, key=lambda f: (SEVERITY_ORDER[f.severity], -(f.cost_usd or 0.0), order.index(f.code))
    )


def _cut_short(report: InspectReport) -> list[Finding]:
    cut = [
        t
        for t in report.turns
        if t.error_code == "connection_dropped"
        or (t.error_code or "").startswith("websocket_close_")
    ]
    if not cut:
        return []
    codes = Counter(t.error_code for t in cut)
    return [
        Finding(
            "cut_short",
            "high",
            f"{plural(len(cut), 'turn')} cut short by their connection: "
            + ", ".join(f"{c} x{n}" for c, n in codes.items()),
            "retry the turn on a new connection (with store=true, or resending its context); "
            "a 1011 is the service failing mid-response",
            turns=[t.index for t in cut],
            connections=sorted({t.conn for t in cut}),
            figures={"codes": dict(codes)},
        )
    ]


_LOSS_CHANGE = {
    "reconnect": "keep one connection for the conversation: its cache is the connection's; "
    "after a reconnect, store responses (store=true) or resend once and chain again",
    "evicted": "continue from the connection's latest response: it holds only that one",
    "not_found": "name only responses this connection (or the store) still holds",
}


def _cache_losses(report: InspectReport) -> list[Finding]:
    losses = report.cache_losses
    if not losses:
        return []
    by_index = {t.index: t for t in report.turns}
    recovery = [by_index[x.recovery_turn] for x in losses if x.recovery_turn in by_index]
    resent = sum(x.recovery_resent_bytes or 0 for x in losses)
    cost = usd_of(recovery)
    kinds = Counter(x.kind for x in losses)
    loop = len(losses) >= 3
    kind = kinds.most_common(1)[0][0]
    return [
        Finding(
            "cache_loss_loop" if loop else "cache_loss",
            "high" if loop else severity_of(report, cost, resent),
            f"the cache was lost {plural(len(losses), 'time')} ("
            + ", ".join(f"{k} x{n}" for k, n in kinds.items())
            + f"); recovering resent {resent:,} bytes",
            _LOSS_CHANGE.get(kind, _LOSS_CHANGE["reconnect"]),
            turns=[x.turn for x in losses],
            connections=sorted({x.conn for x in losses}),
            bytes=resent,
            cost_usd=cost,
            figures={"kinds": dict(kinds)},
        )
    ]


def _resends(report: InspectReport, reason: str, code: str) -> list[Finding]:
    turns = [t for t in report.turns if t.resent_reason == reason and t.resent_bytes]
    if not turns:
        return []
    size = sum(t.resent_bytes for t in turns)
    cost = usd_of(turns)
    change = (
        "send only the new items with previous_response_id: the server holds the rest"
        if reason == "chain"
        else "chain requests with previous_response_id (store=true), or use WebSocket mode"
    )
    return [
        Finding(
            code,
            severity_of(report, cost, size),
            f"{plural(len(turns), 'turn')} resent {size:,} bytes of items the conversation had",
            change,
            turns=[t.index for t in turns],
            connections=sorted({t.conn for t in turns}),
            bytes=size,
            cost_usd=cost,
            figures={"resent_items": sum(t.resent_items for t in turns)},
        )
    ]


def _warmups(report: InspectReport) -> list[Finding]:
    """Warm-ups whose cost is more than the cache savings of the turn each preceded."""
    turns = report.turns
    pairs = [
        (w, nxt) for w, nxt in pairwise(turns) if w.warmup and not nxt.warmup and nxt.conn == w.conn
    ]
    cost = usd_of([w for w, _ in pairs], "cost_usd")
    saved = usd_of([n for _, n in pairs], "saved_by_cache_usd")
    if not pairs or cost is None or cost <= (saved or 0.0):
        return []
    return [
        Finding(
            "warmup_cost",
            severity_of(report, cost - (saved or 0.0), None),
            f"{plural(len(pairs), 'warm-up')} cost ${cost:,.6f} and the turns after saved "
            f"${saved or 0.0:,.6f} by caching",
            "drop the warm-up (generate: false), or make its prefix the one the next turn sends",
            turns=[w.index for w, _ in pairs],
            connections=sorted({w.conn for w, _ in pairs}),
            cost_usd=round(cost - (saved or 0.0), 6),
            figures={"warmup_cost_usd": cost, "saved_usd": saved},
        )
    ]


def _repeated_fields(report: InspectReport) -> list[Finding]:
    s = report.summary
    if not s.bytes_sent or s.resent_field_bytes < 0.5 * s.bytes_sent:
        return []
    names = Counter(name for t in report.turns for name in t.resent_fields)
    return [
        Finding(
            "repeated_fields",
            "medium",
            f"request fields repeated unchanged every turn are {s.resent_field_bytes:,} of the "
            f"{s.bytes_sent:,} bytes sent (" + ", ".join(n for n, _ in names.most_common(3)) + ")",
            "keep them short and byte-identical, so the service caches them as a prefix",
            turns=[t.index for t in report.turns if t.resent_fields],
            bytes=s.resent_field_bytes,
            figures={"fields": dict(names.most_common())},
        )
    ]


def _long_connections(report: InspectReport) -> list[Finding]:
    long = [
        c
        for c in report.connections
        if c.transport == "websocket" and (c.duration_ms or 0.0) >= LONG_CONNECTION_MS
    ]
    return [
        Finding(
            "long_connection",
            "medium",
            f"connection {c.conn} lasted {(c.duration_ms or 0.0) / 60_000:,.1f} minutes",
            "the service closes a connection at 60 minutes: reconnect between turns, and store "
            "responses (store=true) so the chain survives",
            connections=[c.conn],
            time_ms=c.duration_ms,
        )
        for c in long
    ]


def _service_queue(report: InspectReport) -> list[Finding]:
    s = report.summary
    service, engine = s.ttft_service_p50_ms, s.ttft_engine_p50_ms
    if not s.timed_turns or service is None or engine is None or service <= engine:
        return []
    timed = [t.index for t in report.turns if t.server_timing is not None]
    return [
        Finding(
            "service_queue",
            "medium",
            f"of the time to first token, the service's pre-inference and queue (p50 "
            f"{service:,.0f} ms) outweigh the engine's (p50 {engine:,.0f} ms)",
            "the wait is the service's: a less loaded tier or region, or fewer concurrent creates",
            turns=timed,
            time_ms=service,
        )
    ]


def _client_time(report: InspectReport) -> list[Finding]:
    s = report.summary
    if s.wall_ms <= 0 or s.client_ms < 0.5 * s.wall_ms:
        return []
    return [
        Finding(
            "client_time",
            "low",
            f"the agent's own time between turns is {s.client_ms / s.wall_ms:.0%} of the "
            f"session's wall time",
            "the tools or the agent's own work are the slow part: look there before the model",
            time_ms=s.client_ms,
        )
    ]


def group(found: list[tuple[str, list[Finding]]]) -> dict[str, dict[str, Any]]:
    """Findings of many traces by code, the costliest first: in how many traces, how many
    findings, and their bytes and money in all (money null when none was priced)."""
    rows: dict[str, dict[str, Any]] = {}
    for _, findings in found:
        for code in {f.code for f in findings}:
            rows.setdefault(code, {"traces": 0, "findings": 0, "bytes": 0, "cost_usd": None})
            rows[code]["traces"] += 1
        for f in findings:
            row = rows[f.code]
            row["findings"] += 1
            row["bytes"] += f.bytes or 0
            if f.cost_usd is not None:
                row["cost_usd"] = round((row["cost_usd"] or 0.0) + f.cost_usd, 6)
    return dict(
        sorted(rows.items(), key=lambda kv: (-(kv[1]["cost_usd"] or 0.0), -kv[1]["bytes"], kv[0]))
    )


def findings_failures(found: list[tuple[str, list[Finding]]], conditions: list[str]) -> list[str]:
    """What ``--fail-on`` finds: a finding CODE the traces have, or ``waste_usd>X`` (the
    money of every finding, in all, above X). ``ValueError`` for a condition it cannot read."""
    out: list[str] = []
    for text in conditions:
        if text.startswith("waste_usd>"):
            try:
                limit = float(text.removeprefix("waste_usd>"))
            except ValueError:
                raise ValueError(f"--fail-on: not a number of dollars: {text!r}") from None
            waste = sum(f.cost_usd or 0.0 for _, fs in found for f in fs)
            if waste > limit:
                out.append(f"waste_usd is {waste:,.6f}, above {limit:g}")
        elif text in FINDING_CODES:
            hits = [name for name, fs in found if any(f.code == text for f in fs)]
            if hits:
                out.append(f"{text} in {', '.join(hits)}")
        else:
            raise ValueError(
                f"--fail-on takes a finding code ({', '.join(FINDING_CODES)}) or waste_usd>X; "
                f"not {text!r}"
            )
    return out
