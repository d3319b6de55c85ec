"""The Responses protocol model: frames -> events -> turns (sans-I/O)."""

from __future__ import annotations

from tracer.responses.model import Connection, Turn, TurnSegmenter, loads

__all__ = ["Connection", "Turn", "TurnSegmenter", "loads"]
