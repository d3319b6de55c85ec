"""What-if projections (no I/O): what the same conversation would have sent, cost and
waited over another transport or chaining, side by side with what was recorded.

Two modes:

- ``websocket-incremental``: every turn continues its conversation with
  ``previous_response_id`` on one WebSocket, sending only the items the conversation did
  not hold (what a full resend or an unchained HTTP request resent is referenced instead);
- ``http-resend``: the reverse, every turn an HTTP request of its own that sends its whole
  context (what it referenced is sent again).

Every projected figure is derived from the recorded turns; the ones that are exact (item
counts and bytes, input and output tokens: the same conversation) are listed in
``WhatIf.exact``, the others are estimates resting on ``WhatIf.assumptions``. The way to
measure instead of project is ``tracer rerun --incremental --transport websocket``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from tracer.analysis.model import InspectReport, TurnReport
from tracer.analysis.pricing import Pricing
from tracer.protocols.base import Tokens

__all__ = ["MODES", "Figures", "WhatIf", "project"]

MODES = {
    "websocket-incremental": "chained over one WebSocket, only new items sent",
    "http-resend": "an HTTP request per turn, each sending its whole context",
}
"""The projections ``tracer whatif --mode`` makes."""

EXACT = ("items_sent", "item_bytes_sent", "input_tokens", "output_tokens")
"""Projected figures that follow from the recorded items and usage exactly."""


@dataclass(slots=True)
class Figures:
    """One turn's (or the session's) figures a projection changes."""

    items_sent: int = 0  # input items the create carried
    item_bytes_sent: int = 0  # their bytes (each item's compact JSON)
    request_bytes: int = 0  # the creates' payload bytes
    input_tokens: int | None = None
    cached_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    duration_ms: float | None = None  # create sent to the turn's end
    connections: int = 0  # connections opened for it

    def add(self, other: Figures) -> None:
        for name in self.__slots__:
            mine, theirs = getattr(self, name), getattr(other, name)
            if isinstance(theirs, int | float) and not isinstance(theirs, bool):
                setattr(self, name, (mine or 0) + theirs)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("cost_usd", "duration_ms"):
            if out[name] is not None:
                out[name] = round(out[name], 9 if name == "cost_usd" else 3)
        return out


@dataclass(slots=True)
class TurnWhatIf:
    index: int
    recorded: Figures
    projected: Figures


@dataclass(slots=True)
class WhatIf:
    """A projection of a whole session, turn by turn and in all."""

    mode: str
    assumptions: list[str]
    turns: list[TurnWhatIf] = field(default_factory=list)
    recorded: Figures = field(default_factory=Figures)
    projected: Figures = field(default_factory=Figures)
    exact: tuple[str, ...] = EXACT

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "description": MODES[self.mode],
            "exact": list(self.exact),
            "estimates": [f for f in Figures.__slots__ if f not in self.exact],
            "assumptions": self.assumptions,
            "recorded": self.recorded.to_json(),
            "projected": self.projected.to_json(),
            "turns": [
                {"index": t.index, "recorded": t.recorded.to_json(),
                 "projected": t.projected.to_json()}
                for t in self.turns
            ],
        }  # fmt: skip


def _recorded(t: TurnReport, new_connection: bool) -> Figures:
    return Figures(
        items_sent=t.input_items,
        item_bytes_sent=t.input_bytes,
        request_bytes=t.request_bytes,
        input_tokens=t.input_tokens,
        cached_tokens=t.cached_tokens,
        output_tokens=t.output_tokens,
        cost_usd=t.cost_usd,
        duration_ms=t.duration_ms,
        connections=int(new_connection),
    )


def _setup_ms(report: InspectReport) -> float | None:
    """The median connection setup the session measured (its handshakes), if any."""
    values = sorted(t.handshake_ms for t in report.turns if t.handshake_ms is not None)
    return values[len(values) // 2] if values else None


def _priced(pricing: Pricing, t: TurnReport, fig: Figures, written: int | None) -> float | None:
    tokens = Tokens(
        fig.input_tokens, fig.cached_tokens, fig.output_tokens,
        t.input_audio_tokens, t.output_audio_tokens, written,
    )  # fmt: skip
    cost = pricing.cost(t.model, tokens)
    return cost.total if cost is not None else None


def _chained(
    t: TurnReport, rec: Figures, pricing: Pricing, seen: set[int], setup: float | None
) -> Figures:
    """A turn as a chained create on its conversation's one WebSocket."""
    fig = replace(rec, connections=int(t.conversation not in seen))
    seen.add(t.conversation)
    if t.resent_bytes:
        fig.items_sent = t.input_items - t.resent_items
        fig.item_bytes_sent = t.input_bytes - t.resent_bytes
        fig.request_bytes = t.request_bytes - t.resent_bytes
        if t.input_tokens is not None:
            # The items no longer sent are the chain: cached. The new items' tokens are
            # estimated at the request's tokens per byte.
            new = math.ceil(fig.item_bytes_sent * t.input_tokens / max(t.request_bytes, 1))
            fig.cached_tokens = max(t.cached_tokens or 0, t.input_tokens - new)
    written = t.cache_write_tokens
    if written is not None and fig.input_tokens is not None:
        written = min(written, fig.input_tokens - (fig.cached_tokens or 0))
    fig.cost_usd = _priced(pricing, t, fig, written)
    if fig.duration_ms is not None and t.transport == "http" and not fig.connections:
        fig.duration_ms = max(0.0, fig.duration_ms - (t.handshake_ms or setup or 0.0))
    return fig


def _resent(t: TurnReport, rec: Figures, pricing: Pricing, setup: float | None) -> Figures:
    """A turn as an HTTP request of its own, sending its whole context."""
    fig = replace(rec, connections=1)
    fig.items_sent = t.input_items + t.referenced_items
    fig.item_bytes_sent = t.input_bytes + t.referenced_bytes
    fig.request_bytes = t.request_bytes + t.referenced_bytes
    fig.cost_usd = _priced(pricing, t, fig, t.cache_write_tokens)
    if fig.duration_ms is not None and t.transport == "websocket" and rec.connections == 0:
        fig.duration_ms += setup or 0.0
    return fig


_ASSUMPTIONS = {
    "websocket-incremental": [
        "each conversation runs on one WebSocket and chains every turn with "
        "previous_response_id; the service holds the chain (no cache loss)",
        "the items a turn resent become the chain's: cached tokens are the input tokens "
        "less the new items' tokens, at the request's own tokens per byte",
        "the creates keep their other fields (instructions, tools), as real clients send them",
        "an HTTP turn's duration loses its connection setup (its handshake, else the "
        "session's median); upload time saved is not counted; the service's time stays",
        "output and its tokens stay as recorded: the same conversation",
    ],
    "http-resend": [
        "each turn is an HTTP request of its own, resending what it referenced",
        "the service's prompt cache finds the same prefix over HTTP: cached tokens stay "
        "as recorded (without it, they fall to 0 and the input is billed in full)",
        "a WebSocket turn's duration gains a connection setup (the session's median "
        "handshake); upload time is not counted; the service's time stays",
        "output and its tokens stay as recorded: the same conversation",
    ],
}


def project(report: InspectReport, mode: str, pricing: Pricing) -> WhatIf:
    """The session as ``mode`` would have run it; ``ValueError`` for an unknown mode."""
    if mode not in MODES:
        raise ValueError(f"--mode takes one of {', '.join(MODES)}; not {mode!r}")
    out = WhatIf(mode, list(_ASSUMPTIONS[mode]))
    setup = _setup_ms(report)
    opened: set[int] = set()  # recorded connections already counted
    conversations: set[int] = set()
    for t in report.turns:
        if t.protocol != "responses":
            continue
        rec = _recorded(t, t.conn not in opened)
        opened.add(t.conn)
        if mode == "websocket-incremental":
            fig = _chained(t, rec, pricing, conversations, setup)
        else:
            fig = _resent(t, rec, pricing, setup)
        out.turns.append(TurnWhatIf(t.index, rec, fig))
        out.recorded.add(rec)
        out.projected.add(fig)
    return out
