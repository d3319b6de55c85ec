"""The scripted Responses-compatible upstream: a sans-I/O engine and its asyncio server."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tracer._lazy import lazy_exports
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

_LAZY = {name: "tracer.upstream.server" for name in ("UpstreamServer", "running_upstream")}
"""The asyncio shell loads on first use."""
__getattr__ = lazy_exports(__name__, _LAZY)
