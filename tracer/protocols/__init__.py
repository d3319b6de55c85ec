"""Protocol models: which protocol a connection speaks, and its frames as turn events
(sans-I/O). ``Segmenter`` reads a trace; ``PROTOCOLS`` lists the protocols it knows."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tracer._lazy import lazy_exports

if TYPE_CHECKING:
    from tracer.protocols.base import Protocol, Reader, Tokens
    from tracer.protocols.events import Event, TurnEnded, TurnStarted
    from tracer.protocols.registry import PROTOCOLS, protocol_named
    from tracer.protocols.segmenter import Segmenter
    from tracer.protocols.turns import Connection, Turn, VoiceTurn

__all__ = [
    "PROTOCOLS",
    "Connection",
    "Event",
    "Protocol",
    "Reader",
    "Segmenter",
    "Tokens",
    "Turn",
    "TurnEnded",
    "TurnStarted",
    "VoiceTurn",
    "protocol_named",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "Protocol": "tracer.protocols.base",
        "Reader": "tracer.protocols.base",
        "Tokens": "tracer.protocols.base",
        "Event": "tracer.protocols.events",
        "TurnEnded": "tracer.protocols.events",
        "TurnStarted": "tracer.protocols.events",
        "PROTOCOLS": "tracer.protocols.registry",
        "protocol_named": "tracer.protocols.registry",
        "Segmenter": "tracer.protocols.segmenter",
        "Connection": "tracer.protocols.turns",
        "Turn": "tracer.protocols.turns",
        "VoiceTurn": "tracer.protocols.turns",
    },
)
