"""cassetter cassettes (YAML or TOML, as cassetter's Python, Node, Go and Rust SDKs write
them, and as pydantic-ai's tests keep their HTTP and WebSocket recordings) to trace
records (no I/O).

A cassetter cassette holds HTTP ``interactions`` (bodies typed ``json``, ``text``,
``binary`` or ``none``; ``recorded_at`` when the response ended) and ``ws_interactions``
(each frame's direction, type, body and ``offset_ms`` from the connection's start;
``recorded_at`` when it closed). Each becomes a HAR entry for the one import path
(redaction, JSON and event-stream calls). WebSocket frames keep their recorded offsets; an
HTTP call's duration is not kept, so calls get a synthesised one and the header then says
``times: synthesised``. A JSON body is written back compactly: its byte count can differ
from what went over the wire.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

import orjson

from tracer.export.har import HarImport, import_har
from tracer.export.vcr import CALL_MS, _har_headers, _values
from tracer.trace.format import TraceError

__all__ = ["import_cassetter", "is_cassetter"]

_BODY_TYPES = ("json", "text", "binary", "none")


def is_cassetter(doc: Any) -> bool:
    """Whether a parsed YAML or TOML document has cassetter's shape (not VCR.py's)."""
    if not isinstance(doc, dict):
        return False
    if isinstance(doc.get("ws_interactions"), list) or isinstance(
        doc.get("grpc_interactions"), list
    ):
        return True
    interactions = doc.get("interactions")
    if not isinstance(interactions, list) or not interactions:
        return False
    first = interactions[0]
    return isinstance(first, dict) and "recorded_at" in first


def _when(v: Any, what: str) -> float:
    try:
        at = datetime.fromisoformat(str(v))
    except ValueError:
        raise TraceError(f"cassetter cassette: {what} has no recorded_at time") from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def _body(message: dict[str, Any]) -> Any:
    """A request's or response's typed body: YAML nests it, TOML flattens it."""
    if "body_type" in message:
        return {"type": message.get("body_type"), "content": message.get("body_content")}
    return message.get("body")


def _bytes(body: Any) -> bytes | None:
    """A typed body's bytes; None for ``none`` or no body."""
    if not isinstance(body, dict):
        return None
    kind, content = body.get("type"), body.get("content")
    if kind not in _BODY_TYPES:
        raise TraceError(f"cassetter cassette: a body of type {kind!r}")
    if kind == "none" or content is None:
        return None
    if kind == "json" and isinstance(content, str):  # TOML keeps the JSON text as it was
        return content.encode("utf-8", errors="replace")
    if kind == "json":
        try:
            return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
        except TypeError as exc:
            raise TraceError(f"cassetter cassette: a JSON body that is not JSON ({exc})") from None
    if kind == "binary":
        try:
            return base64.b64decode(str(content), validate=True)
        except (binascii.Error, ValueError):
            raise TraceError("cassetter cassette: a binary body that is not base64") from None
    return str(content).encode("utf-8", errors="replace")


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def _http_entry(i: int, it: Any, after: float) -> dict[str, Any]:
    """Interaction ``i``, ending at its ``recorded_at`` and starting no earlier than
    ``after`` (the previous call's end: calls recorded one after another do not overlap)."""
    if not isinstance(it, dict):
        raise TraceError(f"cassetter interaction {i}: not a mapping")
    req, resp = it.get("request"), it.get("response")
    if not isinstance(req, dict) or not isinstance(resp, dict):
        raise TraceError(f"cassetter interaction {i}: no request or response")
    ended = _when(it.get("recorded_at"), f"interaction {i}")
    started = min(ended, max(ended - CALL_MS / 1000, after))
    took = (ended - started) * 1000
    status = resp.get("status")
    resp_headers = resp.get("headers") or {}
    body, answer = _bytes(_body(req)), _bytes(_body(resp))
    mime = (_values(resp_headers, "content-type") or ["application/json"])[0]
    return {
        "startedDateTime": _iso(started),
        "time": took,
        "request": {
            "method": str(req.get("method", "GET")).upper(), "url": str(req.get("uri", "")),
            "headers": _har_headers(req.get("headers") or {}),
            **({"postData": {"mimeType": "application/json", "text": _text(body)}}
               if body is not None else {}),
        },
        "response": {
            "status": status if isinstance(status, int) else 0,
            "headers": _har_headers(resp_headers),
            "content": {"mimeType": mime,
                        **({"text": _text(answer)} if answer is not None else {})},
        },
        "timings": {"send": 0, "wait": took / 2},
    }  # fmt: skip


def _ws_entry(i: int, it: Any) -> dict[str, Any]:
    if not isinstance(it, dict) or not isinstance(it.get("frames", []), list):
        raise TraceError(f"cassetter WebSocket interaction {i}: not a mapping with frames")
    closed = _when(it.get("recorded_at"), f"WebSocket interaction {i}")
    frames = it.get("frames") or []
    offsets = [f.get("offset_ms") for f in frames if isinstance(f, dict)]
    last = max((o for o in offsets if isinstance(o, int | float)), default=0)
    start = closed - last / 1000  # recorded_at is the close; the frames' offsets from the open
    messages, close = [], None
    for f in frames:
        if not isinstance(f, dict) or f.get("direction") not in ("send", "recv"):
            raise TraceError(f"cassetter WebSocket interaction {i}: a frame without direction")
        offset = f.get("offset_ms")
        at = start + (offset / 1000 if isinstance(offset, int | float) else 0)
        kind = "send" if f["direction"] == "send" else "receive"
        data = _bytes(f.get("body")) or b""
        if f.get("frame_type") == "close":
            close = {"time": at, "by": "client" if kind == "send" else "server",
                     "code": _close_code(data), "reason": ""}  # fmt: skip
            continue
        if f.get("frame_type") == "binary":
            encoded = {"data": base64.b64encode(data).decode(), "_encoding": "base64"}
        else:
            encoded = {"data": data.decode("utf-8", errors="replace")}
        opcode = 2 if f.get("frame_type") == "binary" else 1
        messages.append({"type": kind, "time": at, "opcode": opcode, **encoded})
    return {
        "startedDateTime": _iso(start),
        "time": (closed - start) * 1000,
        "request": {"method": "GET", "url": str(it.get("uri", "")),
                    "headers": _har_headers(it.get("headers") or {})},
        "response": {"status": 101, "headers": [], "content": {"mimeType": ""}},
        "timings": {"send": 0, "wait": 0},
        "_webSocketMessages": messages,
        "_close": close or {"time": closed, "code": None, "reason": "", "by": None},
    }  # fmt: skip


def _close_code(data: bytes) -> int | None:
    try:
        value = orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        value = data.decode("ascii", errors="replace").split()[0] if data.strip() else None
    if isinstance(value, dict):
        value = value.get("code")
    try:
        code = int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return code if code is not None and 0 <= code <= 0xFFFF else None


def import_cassetter(doc: Any, *, source: str = "cassette") -> HarImport:
    """A cassetter cassette's HTTP and WebSocket interactions as trace records."""
    if not is_cassetter(doc):
        raise TraceError("not a cassetter cassette")
    http = doc.get("interactions") or []
    ws = doc.get("ws_interactions") or []
    if not isinstance(http, list) or not isinstance(ws, list):
        raise TraceError("cassetter cassette: interactions are not lists")
    entries, after = [], float("-inf")
    for i, it in enumerate(http):
        entries.append(_http_entry(i, it, after))
        after = _when(it.get("recorded_at"), f"interaction {i}")
    entries += [_ws_entry(i, it) for i, it in enumerate(ws)]
    imported = import_har({"log": {"entries": entries}}, source=source)
    imported.header.metadata.pop("har_creator", None)
    if http:  # a call's duration is not in the cassette
        imported.header.metadata["times"] = "synthesised"
    grpc = doc.get("grpc_interactions")
    imported.skipped_entries += len(grpc) if isinstance(grpc, list) else 0
    return imported
