"""The scripted Responses-compatible upstream: a sans-I/O engine and its asyncio server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tracer.upstream.engine import Connection, Engine, Plan, Step, error_event
from tracer.upstream.script import (
    Call,
    Fault,
    Script,
    ScriptError,
    Timing,
    TurnScript,
    default_script,
)

if TYPE_CHECKING:
    from tracer.upstream.server import UpstreamServer, running_upstream

__all__ = [
    "Call",
    "Connection",
    "Engine",
    "Fault",
    "Plan",
    "Script",
    "ScriptError",
    "Step",
    "Timing",
    "TurnScript",
    "UpstreamServer",
    "default_script",
    "error_event",
    "running_upstream",
]

_LAZY = {"UpstreamServer", "running_upstream"}  # the asyncio shell loads on first use


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from tracer.upstream import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
