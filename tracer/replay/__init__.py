"""Replay: serve a recorded server side to live clients, or re-send the client side."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tracer._lazy import lazy_exports
from tracer.replay.engine import DEFAULT_MAX_QUEUE
from tracer.replay.recorded import MODES, RecordedConnection, load_connections, match

if TYPE_CHECKING:
    from tracer.replay.server import ReplayServer, ReplayStats

__all__ = [
    "DEFAULT_MAX_QUEUE",
    "MODES",
    "RecordedConnection",
    "ReplayServer",
    "ReplayStats",
    "load_connections",
    "match",
]

_LAZY = {name: "tracer.replay.server" for name in ("ReplayServer", "ReplayStats")}
"""The asyncio shell loads on first use."""
__getattr__ = lazy_exports(__name__, _LAZY)
