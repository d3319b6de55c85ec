"""What a protocol's reader tells the analysis, in the style of h11's events (no I/O).

A reader turns a connection's frames into these, in the order they happened. Streaming
output deltas are the bulk of any session; they are counted on the turn they belong to, not
announced one by one, so that the analysis keeps pace with the trace's decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tracer.protocols.turns import Turn

__all__ = ["Event", "TurnAmended", "TurnEnded", "TurnStarted"]


@dataclass(slots=True, frozen=True)
class TurnStarted:
    """A turn began: the client sent a create, or the server started a response on its
    own (``turn.trigger``). Its input is known; its answer is not."""

    turn: Turn


@dataclass(slots=True, frozen=True)
class TurnEnded:
    """A turn ended, with its status (``failed``, ``error``: the failure, with its code),
    usage and output; or the trace ended first (``unfinished``)."""

    turn: Turn


@dataclass(slots=True, frozen=True)
class TurnAmended:
    """Something about turn ``index`` arrived after its end: the service's ``timing`` of
    it, or the code of an injection it ``rejected``. Its report is to be brought up to
    date."""

    index: int
    timing: dict[str, Any] | None = None
    rejected: str | None = None


Event = TurnStarted | TurnEnded | TurnAmended
