"""JSONL traces of claude-tap (an agent-trace proxy for Claude Code, Codex and others;
its record shape is public) to trace records (no I/O).

Each line is one API call: ``request`` (method, path, headers, the JSON ``body``),
``response`` (status, headers, the JSON ``body``: for a streamed call the response
rebuilt from its events, and the events themselves as ``sse_events`` when claude-tap keeps
them), ``duration_ms`` and ``timestamp`` (when the record was written: the call's end). A
WebSocket session is one record per turn: ``request_id`` of the first, ``<id>_<n>`` of the
n-th, ``duration_ms`` counted from the connection's start, the client's messages and the
server's events as ``ws_events`` when kept, else the turn's ``response.create`` and its
final response. Calls become HAR entries for the one import path (redaction, JSON and
event-stream calls); a turn whose events were not kept is read from its final response (a
``response.completed`` event), and its events' times are spread: the header then says
``times: synthesised``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson

from tracer.export.har import HarImport, import_har
from tracer.responses.sse import encode_event
from tracer.trace.format import TraceError

__all__ = ["import_claude_tap", "is_claude_tap", "read_json_lines"]

_TURN_SUFFIX = re.compile(r"_(\d+)$")


def read_json_lines(data: bytes) -> list[Any]:
    """Every line's JSON value (blank lines skipped); ``TraceError`` naming a bad line."""
    out = []
    for n, line in enumerate(data.splitlines(), 1):
        if line.strip():
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise TraceError(f"JSON lines: line {n} is not JSON ({exc})") from None
    return out


def is_claude_tap(records: list[Any]) -> bool:
    first = records[0] if records else None
    return (
        isinstance(first, dict)
        and isinstance(first.get("request"), dict)
        and isinstance(first.get("response"), dict)
        and "request_id" in first
        and "duration_ms" in first
    )


def _json(v: Any) -> str:
    return orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode()


def _headers(v: Any) -> list[dict[str, str]]:
    if not isinstance(v, dict):
        return []
    return [{"name": str(k), "value": str(x)} for k, x in v.items()]


def _end(rec: dict[str, Any], n: int) -> float:
    try:
        at = datetime.fromisoformat(str(rec.get("timestamp")))
    except ValueError:
        raise TraceError(f"claude-tap record {n}: no timestamp") from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def _ms(rec: dict[str, Any]) -> float:
    d = rec.get("duration_ms")
    return float(d) if isinstance(d, int | float) and not isinstance(d, bool) and d >= 0 else 0.0


def _http_entry(rec: dict[str, Any], n: int) -> tuple[dict[str, Any], bool]:
    """A call as a HAR entry, and whether its events' times are spread (not kept)."""
    req, resp = rec["request"], rec["response"]
    end, took = _end(rec, n), _ms(rec)
    events = resp.get("sse_events")
    if isinstance(events, list) and events:
        text = b"".join(encode_event(_json(e).encode()) for e in events).decode()
        content = {"mimeType": "text/event-stream", "text": text}
    else:  # the answer, or a streamed call's response as claude-tap rebuilt it
        body = resp.get("body")
        content = {"mimeType": "application/json", **({"text": _json(body)} if body else {})}
    body = req.get("body")
    entry = {
        "startedDateTime": datetime.fromtimestamp(end - took / 1000, UTC).isoformat(),
        "time": took,
        "request": {
            "method": str(req.get("method", "POST")).upper(),
            "url": str(req.get("path", "")),
            "headers": _headers(req.get("headers")),
            **({"postData": {"mimeType": "application/json", "text": _json(body)}}
               if body is not None else {}),
        },
        "response": {
            "status": resp.get("status") if isinstance(resp.get("status"), int) else 0,
            "headers": [h for h in _headers(resp.get("headers"))
                        if h["name"].lower() != "content-type"],
            "content": content,
        },
        "timings": {"send": 0, "wait": took / 2},
    }  # fmt: skip
    streamed = isinstance(body, dict) and body.get("stream") is True
    return entry, streamed or content["mimeType"] == "text/event-stream"


def _turn_messages(rec: dict[str, Any], sent: float, end: float) -> list[dict[str, Any]]:
    """One turn's messages: what the client sent at ``sent``, the events spread to ``end``."""
    req, resp = rec["request"], rec["response"]
    client = req.get("ws_events")
    if not isinstance(client, list) or not client:
        client = [req["body"]] if isinstance(req.get("body"), dict) else []
    server = resp.get("ws_events")
    if not isinstance(server, list) or not server:
        body = resp.get("body")
        server = [{"type": "response.completed", "response": body}] if body else []
    out = [{"type": "send", "time": sent, "opcode": 1, "data": _json(m)} for m in client]
    step = (end - sent) / max(1, len(server))
    out += [
        {"type": "receive", "time": sent + (k + 1) * step, "opcode": 1, "data": _json(m)}
        for k, m in enumerate(server)
    ]
    return out


def _ws_entry(turns: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """A WebSocket session's records (in turn order) as one entry."""
    first_n, first = turns[0]
    start = _end(first, first_n) - _ms(first) / 1000
    messages: list[dict[str, Any]] = []
    sent = start
    for _, rec in turns:
        end = max(sent, start + _ms(rec) / 1000)
        messages += _turn_messages(rec, sent, end)
        sent = end
    req = first["request"]
    return {
        "startedDateTime": datetime.fromtimestamp(start, UTC).isoformat(),
        "time": (sent - start) * 1000,
        "request": {"method": "GET", "url": str(req.get("path", "")),
                    "headers": _headers(req.get("headers"))},
        "response": {"status": 101, "headers": [], "content": {"mimeType": ""}},
        "timings": {"send": 0, "wait": 0},
        "_webSocketMessages": messages,
        "_close": {"time": sent, "code": None, "reason": "", "by": None},
    }  # fmt: skip


def import_claude_tap(records: list[Any], *, source: str = "trace.jsonl") -> HarImport:
    """claude-tap's records as trace records: HTTP calls, and WebSocket sessions."""
    entries: list[dict[str, Any]] = []
    sessions: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    spread = False
    for n, rec in enumerate(records, 1):
        if (
            not isinstance(rec, dict)
            or not isinstance(rec.get("request"), dict)
            or not (isinstance(rec.get("response"), dict))
        ):
            raise TraceError(f"claude-tap record {n}: no request or response object")
        if rec.get("transport") == "websocket" or rec["request"].get("method") == "WEBSOCKET":
            base = _TURN_SUFFIX.sub("", str(rec.get("request_id", n)))
            if base not in sessions:
                sessions[base] = []
            sessions[base].append((n, rec))
            spread = spread or not rec["response"].get("ws_events")
            continue
        entry, streamed = _http_entry(rec, n)
        entries.append(entry)
        spread = spread or streamed
    entries += [_ws_entry(turns) for turns in sessions.values()]
    imported = import_har({"log": {"entries": entries}}, source=source)
    imported.header.metadata.pop("har_creator", None)
    if spread:  # a streamed call's or a turn's events were spread over it
        imported.header.metadata["times"] = "synthesised"
    return imported
