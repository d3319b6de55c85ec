"""The documented caps on what a trace may claim (``docs/security.md``), and their overrides.

A 90 KB trace can claim 65 million frames, a 6 KB one a million turns: past a cap a command
stops with one line (``LimitExceeded``) naming the cap and the variable that raises it.
"""

from __future__ import annotations

import os

__all__ = ["MAX_CONNECTIONS", "MAX_FRAMES", "MAX_JSON_OBJECTS", "MAX_TURNS", "cap", "frames_cap"]

MAX_TURNS = 100_000
"""Turns an analysis takes before it stops (``TRACER_MAX_TURNS``)."""
MAX_CONNECTIONS = 50_000
"""Connections likewise (``TRACER_MAX_CONNECTIONS``)."""
MAX_JSON_OBJECTS = 250_000
"""JSON objects one message may hold for the analysis to parse it (``TRACER_MAX_JSON_OBJECTS``):
parsed, each costs hundreds of bytes, and a 9 KB trace can hold a create of a million items.
Counted before parsing, as the message's ``{`` bytes (an upper bound)."""
MAX_FRAMES = 5_000_000
"""Frames a command reads before it stops (``TRACER_MAX_FRAMES``); ``verify``, which only
counts, has no cap."""


def cap(name: str, default: int) -> int:
    """The cap set by environment variable ``name`` (a positive integer), else ``default``."""
    value = os.environ.get(name, "")
    return int(value) if value.isdigit() and int(value) > 0 else default


def frames_cap(*, in_memory: bool = False) -> int:
    """The frames cap; a fifth of it for a command that holds every frame in memory (the
    HAR and VCR exports)."""
    limit = cap("TRACER_MAX_FRAMES", MAX_FRAMES)
    return max(1, limit // 5) if in_memory else limit


def frames_exceeded(limit: int) -> str:
    return (
        f"the trace holds more than {limit:,} frames (the frames cap; "
        "raise it with TRACER_MAX_FRAMES=N)"
    )


def objects_exceeded(limit: int) -> str:
    return (
        f"a message holds more than {limit:,} JSON objects (the objects cap; "
        "raise it with TRACER_MAX_JSON_OBJECTS=N)"
    )
