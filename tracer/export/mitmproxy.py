"""mitmproxy flow files (``mitmdump -w``) to trace records, without mitmproxy (no I/O).

A flow file is a run of tnetstrings, one per flow: a dict holding the request, the
response (bodies as captured, timestamps in seconds) and, for a WebSocket, its messages
(``[type, from_client, content, timestamp]``) and how it closed. Each flow becomes a HAR
entry for the one import path (redaction, JSON and event-stream calls): request and
response times are the proxy's; events of a streamed body are spread over the response
and the header then says ``times: synthesised``.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from typing import Any, BinaryIO

from tracer.export.har import HarImport, import_har
from tracer.export.vcr import decoded_body
from tracer.trace.format import TraceError

__all__ = ["import_flows", "is_flow_file", "read_tnetstrings"]

MAX_DEPTH = 64
"""Nesting deeper than any flow holds is refused, not recursed into."""

_LENGTH = re.compile(rb"(\d{1,12}):")


def is_flow_file(f: BinaryIO) -> bool:
    """Whether a file starts, at its current position, as a flow file does: a tnetstring
    dict (its length, and a ``}`` where the length says it ends). Moves the position."""
    start = f.tell()
    m = _LENGTH.match(f.read(13))
    if m is None:
        return False
    f.seek(start + m.end() + int(m.group(1)))
    return f.read(1) == b"}"


def _pop(data: memoryview, at: int, depth: int) -> tuple[Any, int]:
    """The tnetstring at ``at`` and where the next one starts."""
    if depth > MAX_DEPTH:
        raise TraceError(f"flow file: nested over {MAX_DEPTH} deep")
    colon = bytes(data[at : at + 13]).find(b":")
    if colon <= 0 or not bytes(data[at : at + colon]).isdigit():
        raise TraceError(f"flow file: no tnetstring length at byte {at}")
    start = at + colon + 1
    end = start + int(bytes(data[at : at + colon]))
    if end >= len(data):
        raise TraceError(f"flow file: truncated at byte {at}")
    body, kind = data[start:end], data[end : end + 1].tobytes()
    return _value(body, kind, depth), end + 1


def _value(body: memoryview, kind: bytes, depth: int) -> Any:
    if kind == b",":
        return body.tobytes()
    if kind == b";":
        return body.tobytes().decode("utf-8", errors="replace")
    if kind in (b"#", b"^"):
        try:
            return int(body.tobytes()) if kind == b"#" else float(body.tobytes())
        except ValueError:
            raise TraceError("flow file: a number that is not one") from None
    if kind == b"!":
        return body.tobytes() == b"true"
    if kind == b"~":
        return None
    if kind in (b"]", b"}"):
        items, at = [], 0
        while at < len(body):
            item, at = _pop(body, at, depth + 1)
            items.append(item)
        if kind == b"]":
            return items
        if len(items) % 2:
            raise TraceError("flow file: a dict with a key and no value")
        return {_key(k): v for k, v in zip(items[::2], items[1::2], strict=True)}
    raise TraceError(f"flow file: unknown tnetstring type {kind!r}")


def _key(k: Any) -> str:
    return k.decode("utf-8", errors="replace") if isinstance(k, bytes) else str(k)


def read_tnetstrings(data: bytes) -> list[Any]:
    """Every tnetstring of a file, in order; ``TraceError`` (one line) when damaged."""
    view, at, out = memoryview(data), 0, []
    while at < len(view):
        if data[at : at + 1] in (b"\n", b"\r", b" "):
            at += 1
            continue
        value, at = _pop(view, at, 0)
        out.append(value)
    return out


def _text(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    return "" if v is None else str(v)


def _headers(v: Any) -> list[dict[str, str]]:
    out = []
    for pair in v if isinstance(v, list) else []:
        if isinstance(pair, list) and len(pair) == 2:
            out.append({"name": _text(pair[0]), "value": _text(pair[1])})
    return out


def _body(message: dict[str, Any]) -> str | None:
    """A captured body as text, decoded as its ``content-encoding`` says."""
    raw = message.get("content")
    if not isinstance(raw, bytes):
        return None
    encoding = " ".join(
        h["value"]
        for h in _headers(message.get("headers"))
        if h["name"].lower() == "content-encoding"
    )
    return decoded_body(raw, encoding)


def _seconds(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _ms(start: float | None, end: float | None) -> float:
    return max(0.0, (end - start) * 1000) if start is not None and end is not None else 0.0


def _entry(flow: dict[str, Any]) -> dict[str, Any] | None:
    """A flow as a HAR entry; None for what is not an HTTP flow with a response."""
    req, resp = flow.get("request"), flow.get("response")
    if flow.get("type") != "http" or not isinstance(req, dict) or not isinstance(resp, dict):
        return None
    started = _seconds(req.get("timestamp_start")) or 0.0
    sent = _seconds(req.get("timestamp_end"))
    first = _seconds(resp.get("timestamp_start"))
    ended = _seconds(resp.get("timestamp_end"))
    scheme, host = _text(req.get("scheme")) or "http", _text(req.get("host"))
    port = req.get("port")
    url = f"{scheme}://{host}{f':{port}' if isinstance(port, int) else ''}{_text(req.get('path'))}"
    headers = _headers(resp.get("headers"))
    mime = next((h["value"] for h in headers if h["name"].lower() == "content-type"), "")
    body, answer = _body(req), _body(resp)
    entry: dict[str, Any] = {
        "startedDateTime": datetime.fromtimestamp(started, UTC).isoformat(),
        "time": _ms(started, ended),
        "request": {
            "method": _text(req.get("method")).upper(),
            "url": url,
            "headers": _headers(req.get("headers")),
            **({"postData": {"mimeType": "application/json", "text": body}} if body else {}),
        },
        "response": {
            "status": resp.get("status_code") if isinstance(resp.get("status_code"), int) else 0,
            "headers": headers,
            "content": {"mimeType": mime, **({"text": answer} if answer is not None else {})},
        },
        "timings": {"send": _ms(started, sent), "wait": _ms(sent, first)},
    }
    ws = flow.get("websocket")
    if isinstance(ws, dict):
        entry.update(_websocket(ws, started))
    return entry


def _websocket(ws: dict[str, Any], started: float) -> dict[str, Any]:
    messages = []
    listed = ws.get("messages")
    for m in listed if isinstance(listed, list) else []:
        if not isinstance(m, list) or len(m) < 4 or not isinstance(m[2], bytes):
            raise TraceError("flow file: a WebSocket message is not [type, from_client, ...]")
        text = m[0] == 1
        try:
            data = m[2].decode("utf-8") if text else None
        except UnicodeDecodeError:
            data = None
        encoded = {"data": data} if data is not None else _base64(m[2])
        messages.append({
            "type": "send" if m[1] is True else "receive",
            "time": _seconds(m[3]) or started,
            "opcode": 1 if text else 2,
            **encoded,
        })  # fmt: skip
    out: dict[str, Any] = {"_webSocketMessages": messages}
    end = _seconds(ws.get("timestamp_end"))
    if end is not None:
        code = ws.get("close_code")
        out["_close"] = {
            "time": end,
            "code": code if isinstance(code, int) else None,
            "reason": _text(ws.get("close_reason")),
            "by": "client" if ws.get("closed_by_client") is True else "server",
        }
    return out


def _base64(data: bytes) -> dict[str, str]:
    return {"data": base64.b64encode(data).decode(), "_encoding": "base64"}


def import_flows(data: bytes, *, source: str = "flows") -> HarImport:
    """A flow file's HTTP and WebSocket flows as trace records (through the HAR importer)."""
    flows = read_tnetstrings(data)
    entries, other = [], 0
    for flow in flows:
        entry = _entry(flow) if isinstance(flow, dict) else None
        if entry is None:
            other += 1
        else:
            entries.append(entry)
    imported = import_har({"log": {"entries": entries}}, source=source)
    imported.skipped_entries += other
    meta = imported.header.metadata
    meta.pop("har_creator", None)
    versions = {f.get("version") for f in flows if isinstance(f, dict)}
    meta["mitmproxy_flow_version"] = ",".join(str(v) for v in sorted(versions, key=str))
    return imported
