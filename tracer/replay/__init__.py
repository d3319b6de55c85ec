"""Replay: serve a recorded server side to live clients, or re-send the client side."""

from __future__ import annotations

from tracer.replay.recorded import MODES, RecordedConnection, load_connections, match
from tracer.replay.server import ReplayServer, ReplayStats

__all__ = [
    "MODES",
    "RecordedConnection",
    "ReplayServer",
    "ReplayStats",
    "load_connections",
    "match",
]
