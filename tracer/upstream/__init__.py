"""The scripted Responses-compatible upstream: a sans-I/O engine and its asyncio server."""

from __future__ import annotations

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
