"""Findings of retries and of a collapsed cache hit rate (no I/O): reconnect storms,
transport fallbacks and retried creates, read off the turns' ``retry_of``; cache-hit
collapse, off their cached tokens and ``prefix_change``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from tracer.analysis.finding import Finding, severity_of, usd_of
from tracer.analysis.model import InspectReport, TurnReport
from tracer.vocab import plural

__all__ = ["cache_collapse", "retries"]

STORM_CONNECTIONS = 3
"""Connections one create was tried on that make a reconnect storm."""


def _attempts(report: InspectReport) -> list[list[TurnReport]]:
    """Each retried create's attempts, in order: the failed ones, then the last."""
    by_index = {t.index: t for t in report.turns}
    chains: dict[int, list[TurnReport]] = {}  # the last attempt's index -> the attempts
    for t in report.turns:
        if t.retry_of is not None and t.retry_of in by_index:
            chain = chains.pop(t.retry_of, None) or [by_index[t.retry_of]]
            chains[t.index] = [*chain, t]
    return sorted(chains.values(), key=lambda c: c[0].index)


def _span_ms(first: TurnReport, last: TurnReport) -> float:
    return round((last.start_ns - first.start_ns) / 1e6, 3)


def retries(report: InspectReport) -> list[Finding]:
    """Reconnect storms, transport fallbacks, and the other retried creates."""
    found: list[Finding] = []
    plain: list[list[TurnReport]] = []
    for chain in _attempts(report):
        failed, last = chain[:-1], chain[-1]
        sockets = {t.conn for t in chain if t.transport == "websocket"}
        errors = Counter(t.error_code or t.status for t in failed)
        turns, conns = [t.index for t in chain], sorted({t.conn for t in chain})
        wasted = sum(t.request_bytes for t in failed)
        said = ", ".join(f"{c} x{n}" for c, n in errors.items())
        if len(sockets) >= STORM_CONNECTIONS:
            found.append(Finding(
                "reconnect_storm", "high",
                f"turn {chain[0].index}'s create was sent on {len(sockets)} connections in "
                f"{_span_ms(chain[0], last) / 1000:,.1f} s; {plural(len(failed), 'attempt')} "
                f"failed ({said})",
                "find what ends the connections (a proxy's idle timeout, the service's 1011) "
                "and back off between reconnects",
                turns=turns, connections=conns, bytes=wasted, time_ms=_span_ms(chain[0], last),
                figures={"attempts": len(chain), "errors": dict(errors)},
            ))  # fmt: skip
        else:
            plain.append(chain)
        if last.transport == "http" and any(t.transport == "websocket" for t in failed):
            after = [t for t in report.turns if t.index >= last.index and t.transport == "http"]
            found.append(Finding(
                "transport_fallback", "high",
                f"after {plural(len(failed), 'failed WebSocket attempt')}, turn {last.index} "
                + (f"and the {plural(len(after) - 1, 'turn')} after it " if len(after) > 1 else "")
                + "went over HTTP",
                "fix the WebSocket failures (see cut_short): over HTTP each turn resends its "
                "history unless it chains with previous_response_id and store=true",
                turns=turns, connections=conns, time_ms=_span_ms(chain[0], last),
                figures={"websocket_attempts": len(failed), "http_turns": len(after),
                         "http_resent_bytes": sum(t.resent_bytes for t in after),
                         "http_resent_usd": usd_of(after)},
            ))  # fmt: skip
    if plain:
        failed = [t for chain in plain for t in chain[:-1]]
        found.append(Finding(
            "retried_create", severity_of(report, None, sum(t.request_bytes for t in failed)),
            f"{plural(len(plain), 'create')} sent again after failing: "
            f"{plural(len(failed), 'failed attempt')} in all",
            "retry after a pause, and find why the first attempt failed (see its error code)",
            turns=[t.index for chain in plain for t in chain],
            connections=sorted({t.conn for chain in plain for t in chain}),
            bytes=sum(t.request_bytes for t in failed),
            time_ms=sum(_span_ms(chain[0], chain[-1]) for chain in plain),
            figures={"errors": dict(Counter(t.error_code or t.status for t in failed))},
        ))  # fmt: skip
    return found


COLLAPSE_FROM = 0.5
"""A conversation's hit rate (cached of input tokens) from which a fall counts."""


@dataclass(slots=True)
class _Fall:
    turn: TurnReport
    best: TurnReport  # the conversation's best hit before it
    cause: str  # the prefix field that changed, "new_connection" or "unknown"
    lost: int  # tokens the previous prompt covered that this one did not get cached


def _rate(t: TurnReport) -> float:
    return (t.cached_tokens or 0) / (t.input_tokens or 1)


def _falls(report: InspectReport) -> list[_Fall]:
    """Turns whose hit rate fell below half the conversation's best (itself at least
    COLLAPSE_FROM), and why: the first prefix field that changed, or a new connection."""
    best: dict[int, TurnReport] = {}  # conversation -> its best hit turn
    last: dict[int, TurnReport] = {}
    fell: list[_Fall] = []
    # A lost cache's recovery is the cache_loss finding's: its cause is known.
    recovered = {x.recovery_turn for x in report.cache_losses}
    for t in report.turns:
        if t.warmup or not t.input_tokens or t.cached_tokens is None:
            continue
        if t.index in recovered or t.resent_reason == "cache_loss":
            last[t.conversation] = t
            continue
        top, before = best.get(t.conversation), last.get(t.conversation)
        last[t.conversation] = t
        fall = top is not None and _rate(top) >= COLLAPSE_FROM and _rate(t) < _rate(top) / 2
        if fall and top is not None and before is not None:
            cause = t.prefix_change or ("new_connection" if t.conn != before.conn else "unknown")
            lost = max(0, min(before.input_tokens or 0, t.input_tokens) - t.cached_tokens)
            fell.append(_Fall(t, top, cause, lost))
            continue
        if top is None or _rate(t) >= _rate(top):
            best[t.conversation] = t
    return fell


_COLLAPSE_CHANGE = {
    "new_connection": "keep one connection (a new one may land on another backend), or send "
    "a stable prompt_cache_key",
    "unknown": "send a stable prompt_cache_key so requests reach the same cache",
}


def cache_collapse(report: InspectReport) -> list[Finding]:
    """The turns whose cache hit rate collapsed, their causes and the caching they lost."""
    fell = _falls(report)
    if not fell:
        return []
    causes = Counter(f.cause for f in fell)
    cause = causes.most_common(1)[0][0]
    costs = [
        f.lost * f.best.saved_by_cache_usd / f.best.cached_tokens
        for f in fell
        if f.best.saved_by_cache_usd is not None and f.best.cached_tokens
    ]
    cost = round(sum(costs), 6) if costs else None
    top_rate = max(_rate(f.best) for f in fell)
    low_rate = min(_rate(f.turn) for f in fell)
    said = {"new_connection": "a new connection", "unknown": "no change tracer sees"}
    change = _COLLAPSE_CHANGE.get(
        cause,
        f"keep {cause} byte-identical from turn to turn (no times or ids in it); "
        "put what changes at the end of the input",
    )
    return [
        Finding(
            "cache_hit_collapse",
            severity_of(report, cost, None) if cost is not None else "medium",
            f"the cache hit rate fell from {top_rate:.0%} to {low_rate:.0%} on "
            f"{plural(len(fell), 'turn')}: "
            + ", ".join(f"{said.get(c, c + ' changed')} x{n}" for c, n in causes.items()),
            change,
            turns=[f.turn.index for f in fell],
            connections=sorted({f.turn.conn for f in fell}),
            cost_usd=cost,
            figures={"causes": dict(causes), "lost_cached_tokens": sum(f.lost for f in fell),
                     "best_hit_rate": round(top_rate, 4), "lowest_hit_rate": round(low_rate, 4)},
        )
    ]  # fmt: skip
