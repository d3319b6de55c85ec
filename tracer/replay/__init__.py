"""Replay: serve a recorded server side to live clients, or re-send the client side."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tracer.replay.recorded import MODES, RecordedConnection, load_connections, match

if TYPE_CHECKING:
    from tracer.replay.server import ReplayServer, ReplayStats

__all__ = [
    "MODES",
    "RecordedConnection",
    "ReplayServer",
    "ReplayStats",
    "load_connections",
    "match",
]

_LAZY = {"ReplayServer", "ReplayStats"}  # the asyncio shell loads on first use


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from tracer.replay import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
