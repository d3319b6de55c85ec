"""pydantic-ai's WebSocket cassettes (its realtime tests' YAML: ``version`` and
``interactions``, each a ``direction`` of ``sent`` or ``received`` and the message's JSON as
``data``) to trace records (no I/O).

Such a cassette holds one connection's messages in order and nothing else: no URL, no
headers, no times. The protocol is told from the messages (Realtime, OpenAI Live, Gemini
Live or Responses), messages get synthesised times one step apart and the header says
``times: synthesised``. A message is written back compactly from its parsed JSON: its byte
count can differ from what went over the wire.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from tracer.export.har import HarImport, import_har
from tracer.trace.format import TraceError

__all__ = ["STEP_MS", "import_pydantic_ws", "is_pydantic_ws"]

STEP_MS = 10.0
"""The synthesised time between two messages."""


def is_pydantic_ws(doc: Any) -> bool:
    if not isinstance(doc, dict) or not isinstance(doc.get("interactions"), list):
        return False
    first = doc["interactions"][0] if doc["interactions"] else None
    return isinstance(first, dict) and first.get("direction") in ("sent", "received")


def import_pydantic_ws(doc: Any, *, source: str = "cassette") -> HarImport:
    """The cassette's messages as one WebSocket connection."""
    if not is_pydantic_ws(doc):
        raise TraceError("not a pydantic-ai WebSocket cassette")
    start = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
    messages = []
    for i, m in enumerate(doc["interactions"]):
        if not isinstance(m, dict) or m.get("direction") not in ("sent", "received"):
            raise TraceError(f"cassette message {i}: no direction sent or received")
        try:
            data = orjson.dumps(m.get("data"), option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError as exc:
            raise TraceError(f"cassette message {i}: data that is not JSON ({exc})") from None
        kind = "send" if m["direction"] == "sent" else "receive"
        at = start + (i + 1) * STEP_MS / 1000
        messages.append({"type": kind, "time": at, "opcode": 1, "data": data})
    end = start + (len(messages) + 1) * STEP_MS / 1000
    entry = {
        "startedDateTime": datetime.fromtimestamp(start, UTC).isoformat(),
        "time": (end - start) * 1000,
        "request": {"method": "GET", "url": "", "headers": []},
        "response": {"status": 101, "headers": [], "content": {"mimeType": ""}},
        "timings": {"send": 0, "wait": 0},
        "_webSocketMessages": messages,
        "_close": {"time": end, "code": None, "reason": "", "by": None},
    }
    imported = import_har({"log": {"entries": [entry]}}, source=source)
    imported.header.metadata.pop("har_creator", None)
    imported.header.metadata["times"] = "synthesised"
    return imported
