"""A finding: one thing that went wrong in a session, what it cost, and what to change;
the codes, and how a severity is derived from a cost (no I/O)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tracer.analysis.model import InspectReport, TurnReport

__all__ = ["FINDING_CODES", "SEVERITY_ORDER", "Finding", "severity_of", "usd_of"]

FINDING_CODES = {
    "cut_short": "turns cut short by a connection's close or drop",
    "reconnect_storm": "the same create sent on connection after connection",
    "transport_fallback": "WebSocket attempts failed, then the session went on over HTTP",
    "retried_create": "creates sent again after they failed",
    "cache_loss_loop": "the cache was lost again and again",
    "cache_loss": "a lost cache, and its price",
    "cache_hit_collapse": "the cache hit rate collapsed: a changed prefix or connection",
    "chain_resend": "history resent on a live chain",
    "transport_resend": "history resent over HTTP without previous_response_id",
    "warmup_cost": "warm-ups that cost more than they saved",
    "repeated_fields": "large request fields repeated every turn",
    "long_connection": "a connection near the 60-minute limit",
    "service_queue": "time to first token spent in the service's queue",
    "client_time": "the agent's own time dominates the session",
}
"""Every finding code, in the order of their usual weight."""

SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}


@dataclass(slots=True)
class Finding:
    """One thing that went wrong (or cost more than it needed), and what to change."""

    code: str
    severity: str  # high, medium, low
    what: str  # what happened, in words
    change: str  # what to change
    turns: list[int] = field(default_factory=list)
    connections: list[int] = field(default_factory=list)
    bytes: int | None = None  # bytes it cost (resent, repeated)
    cost_usd: float | None = None  # money it cost (an estimate where the figure is one)
    time_ms: float | None = None  # time it cost
    figures: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def severity_of(report: InspectReport, cost: float | None, size: int | None) -> str:
    """High when it is a tenth of what the session cost (or sent), medium from 1%."""
    s = report.summary
    if cost is not None and s.cost_usd:
        share = cost / s.cost_usd
    elif size is not None and s.bytes_sent:
        share = size / s.bytes_sent
    else:
        return "low"
    return "high" if share >= 0.10 else "medium" if share >= 0.01 else "low"


def usd_of(turns: list[TurnReport], name: str = "resent_usd") -> float | None:
    values = [getattr(t, name) for t in turns if getattr(t, name) is not None]
    return round(sum(values), 6) if values else None
