"""The one builder of the error bodies and events tracer's servers send (no I/O).

Every server tracer runs (the scripted upstream, replay, the capture proxies' refusals)
answers an error in the OpenAI shape an SDK raises from: ``{"error": {"type", "code",
"message", "param"}}`` as an HTTP body, or the WebSocket mode's ``error`` event, which adds
``"type": "error"`` and the HTTP ``status`` it stands for.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["error_body", "error_event", "error_object"]


def error_object(
    code: str, message: str, *, kind: str = "invalid_request_error", param: str | None = None
) -> dict[str, Any]:
    """The ``error`` object itself."""
    return {"type": kind, "code": code, "message": message, "param": param}


def error_body(
    code: str, message: str, *, kind: str = "invalid_request_error", param: str | None = None
) -> bytes:
    """An HTTP error response's JSON body."""
    return json.dumps({"error": error_object(code, message, kind=kind, param=param)}).encode()


def error_event(
    code: str,
    message: str,
    *,
    status: int = 400,
    kind: str = "invalid_request_error",
    param: str | None = None,
    stream_id: str | None = None,
) -> dict[str, Any]:
    """An ``error`` server event in the WebSocket mode's shape."""
    event: dict[str, Any] = {
        "type": "error",
        "status": status,
        "error": error_object(code, message, kind=kind, param=param),
    }
    if stream_id is not None:
        event["stream_id"] = stream_id
    return event
