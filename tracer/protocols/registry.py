"""The protocols tracer understands, and which of them claims a connection (no I/O).

A connection is claimed from its upgrade (the path, the subprotocol, HTTP or WebSocket)
when that settles it, else from its first messages. Adding a protocol is a new module with
a ``Protocol`` and one line here.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from tracer.gemini.model import GEMINI_LIVE
from tracer.openai_live.model import OPENAI_LIVE
from tracer.protocols.base import Protocol
from tracer.realtime.model import REALTIME
from tracer.responses.model import RESPONSES

__all__ = ["PROTOCOLS", "claim_message", "claim_open", "protocol_named"]

PROTOCOLS: tuple[Protocol, ...] = (REALTIME, OPENAI_LIVE, GEMINI_LIVE, RESPONSES)
"""In the order they are asked: the more specific claims first (a Realtime client sends
``response.create`` too)."""

_BY_NAME = {p.name: p for p in PROTOCOLS}


def protocol_named(name: str | None) -> Protocol | None:
    return _BY_NAME.get(name or "")


def claim_open(url: str, transport: str, subprotocol: str | None) -> Protocol | None:
    """The protocol a connection's upgrade (or HTTP request) settles, if any."""
    try:
        path = urlsplit(url).path if "://" in url else url.split("?", 1)[0]
    except ValueError:  # a hostile trace's URL
        return None
    for protocol in PROTOCOLS:
        if protocol.claims_open(path, transport, subprotocol):
            return protocol
    return None


def claim_message(client: bool, kind: str) -> Protocol | None:
    """The protocol a message's ``type`` settles, for a connection its upgrade did not."""
    for protocol in PROTOCOLS:
        if protocol.claims_message(client, kind):
            return protocol
    return None
