"""HAR 1.2 with Chrome DevTools' WebSocket extension, both ways (no I/O).

A WebSocket connection becomes one entry with ``_resourceType: "websocket"`` and its frames in
``_webSocketMessages`` (``type`` send/receive, ``time`` in Unix seconds, ``opcode``, ``data``),
as DevTools writes them. DevTools keeps text (opcode 1) as text and everything else as base64;
tracer does the same, and adds what DevTools leaves out so that a round trip loses nothing:
control and continuation frames, ``_fin: false`` on a non-final fragment, ``_encoding:
"base64"`` on a text frame that is not valid UTF-8, and ``_close`` with how the connection
ended. An HTTP connection (a streamed ``POST /v1/responses``) becomes an ordinary entry whose
request body is the create and whose response text is the event stream; ``_sseMessages`` keeps
each event's arrival time.
"""

# Over 400 lines: the HAR export and its import are each other's inverse, kept side by side.

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from tracer._version import __version__
from tracer.export.har_write import sse_text, write_har
from tracer.responses.sse import SSEDecoder
from tracer.trace.format import FORMAT_VERSION, TraceError
from tracer.trace.records import Close, Direction, Frame, Header, Opcode, Open, Record
from tracer.trace.redact import Redactor
from tracer.trace.scrub import redact_records

__all__ = ["HarImport", "export_har", "import_har", "sse_text", "write_har"]

_OPCODES = {int(op): op for op in Opcode}


def export_har(header: Header, records: Iterable[Record]) -> dict[str, Any]:
    """The HAR document of a trace, parsed (``write_har`` writes it with bounded memory)."""
    buf = io.BytesIO()
    write_har(header, records, buf)
    doc: dict[str, Any] = orjson.loads(buf.getvalue())
    return doc


# ---- import -------------------------------------------------------------------------------


@dataclass(slots=True)
class HarImport:
    """What ``import_har`` found: the trace's header and records, and what it skipped."""

    header: Header
    records: list[Record]
    connections: int = 0
    frames: int = 0
    skipped_entries: int = 0
    spread_entries: int = 0  # streamed entries whose event times were spread, not recorded


class _Bad(Exception):
    pass


def import_har(har: Any, *, redactor: Redactor | None = None, source: str = "har") -> HarImport:
    """Turn a parsed HAR document into trace records, redacting secrets as a recorder does.

    WebSocket entries (``_webSocketMessages``), streamed requests (a POST whose response is
    ``text/event-stream``) and non-streamed JSON calls (a POST with a JSON body answered
    with JSON: ``/v1/responses``, ``/v1/responses/compact``) become connections; other
    entries are skipped and counted. Records come out in time order across connections, as a
    live recording has them. Raises ``TraceError`` (one line) for a document that is not a HAR.
    """
    r = redactor or Redactor()
    log = har.get("log") if isinstance(har, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list):
        raise TraceError("not a HAR file: no log.entries list")
    creator = log.get("creator") if isinstance(log.get("creator"), dict) else {}  # type: ignore[union-attr]
    timed: list[
        tuple[int, int, Open | Frame | Close]
    ] = []  # (unix ns, tie-break, record with unix t_ns)
    out = HarImport(header=Header(FORMAT_VERSION, __version__, 0), records=[])
    seq = 0
    for i, e in enumerate(entries):
        try:
            got = _import_entry(e, out.connections + 1)
        except _Bad as exc:
            raise TraceError(f"HAR entry {i}: {exc}") from None
        if got is None:
            out.skipped_entries += 1
            continue
        out.connections += 1
        if isinstance(e, dict) and "_sseMessages" not in e and _streamed(e):
            out.spread_entries += 1
        for rec in got:
            timed.append((rec.t_ns, seq, rec))
            seq += 1
            if type(rec) is Frame:
                out.frames += 1
    timed.sort(key=lambda x: (x[0], x[1]))
    anchor = timed[0][0] if timed else 0
    # One path with the recorder: every header's credential is learned before any record is
    # written, keys split across messages are joined, close reasons and subprotocols scrubbed.
    out.records = redact_records([_shift(rec, anchor) for _, _, rec in timed], r)
    out.header = Header(
        format_version=FORMAT_VERSION,
        tracer_version=__version__,
        anchor_unix_ns=anchor,
        metadata={
            "source": f"tracer import {source}",
            "har_creator": r.text(f"{creator.get('name', '')} {creator.get('version', '')}"),
            # Whether every event's time is the source's, or some were spread over a response.
            "times": "synthesised" if out.spread_entries else "recorded",
        },
    )
    return out


def _streamed(e: dict[str, Any]) -> bool:
    resp = e.get("response") if isinstance(e.get("response"), dict) else {}
    content = resp.get("content") if isinstance(resp.get("content"), dict) else {}  # type: ignore[union-attr]
    return str(content.get("mimeType", "")).startswith("text/event-stream")  # type: ignore[union-attr]


def _shift(rec: Open | Frame | Close, anchor: int) -> Record:
    if isinstance(rec, Frame):
        return rec._replace(t_ns=rec.t_ns - anchor)
    return dataclasses.replace(rec, t_ns=rec.t_ns - anchor)


_MAX_SECONDS = 1e11  # about year 5138: any time or duration beyond is damage


def _opt_num(v: Any) -> float | None:
    """A finite, plausible number of seconds or milliseconds, or None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        f = float(v)
    except OverflowError:
        return None
    return f if math.isfinite(f) and abs(f) < _MAX_SECONDS else None


def _num(v: Any, what: str) -> float:
    f = _opt_num(v)
    if f is None:
        raise _Bad(f"{what} is not a number in range")
    return f


def _query(url: str) -> str:
    """The query of a URL or path, without parsing the rest (a hostile one may not parse)."""
    return url.partition("#")[0].partition("?")[2]


def _str(v: Any, what: str) -> str:
    if not isinstance(v, str):
        raise _Bad(f"{what} is not text")
    return v


def _started_ns(e: dict[str, Any]) -> int:
    text = _str(e.get("startedDateTime"), "startedDateTime")
    try:
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _Bad(f"startedDateTime {text[:40]!r} is not an ISO 8601 time") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return round(stamp.timestamp() * 1e6) * 1000


def _headers(v: Any, what: str) -> list[tuple[str, str]]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise _Bad(f"{what} is not a list")
    out = []
    for h in v:
        if not isinstance(h, dict):
            raise _Bad(f"{what} holds a header that is not an object")
        out.append((_str(h.get("name"), "a header name"), _str(h.get("value"), "a header value")))
    return out


# Over 60 lines: one HAR entry's field mapping, read top to bottom.
def _import_entry(e: Any, conn: int) -> list[Open | Frame | Close] | None:
    if not isinstance(e, dict):
        raise _Bad("not an object")
    req = e.get("request")
    resp = e.get("response")
    if not isinstance(req, dict) or not isinstance(resp, dict):
        raise _Bad("has no request or response object")
    messages = e.get("_webSocketMessages")
    content = resp.get("content") if isinstance(resp.get("content"), dict) else {}
    mime = str(content.get("mimeType", ""))  # type: ignore[union-attr]
    is_sse = req.get("method") == "POST" and (
        mime.startswith("text/event-stream") or "_sseMessages" in e
    )
    post = req.get("postData") if isinstance(req.get("postData"), dict) else {}
    # A non-streamed JSON call (the SDKs' default): its request body, then its answer.
    is_json = (
        req.get("method") == "POST"
        and not is_sse
        and mime.split(";")[0].strip().endswith("json")
        and isinstance(post.get("text"), str)  # type: ignore[union-attr]
    )
    if messages is None and not is_sse and not is_json:
        return None
    try:
        url = urlsplit(_str(req.get("url"), "request.url"))
    except ValueError as exc:  # e.g. "Invalid IPv6 URL"
        raise _Bad(f"request.url: {exc}") from None
    target = url.path + (f"?{url.query}" if url.query else "")
    t_open = _started_ns(e)
    timings = e.get("timings") if isinstance(e.get("timings"), dict) else {}
    wait = _opt_num(timings.get("wait"))  # type: ignore[union-attr]
    handshake = int(wait * 1e6) if wait is not None and wait >= 0 else None
    status = resp.get("status")
    if type(status) is not int or not 0 <= status <= 999:
        raise _Bad("response.status is not an HTTP status")
    server_ip = e.get("serverIPAddress")
    sub = e.get("_subprotocol")
    records: list[Open | Frame | Close] = [
        Open(
            conn=conn,
            t_ns=t_open,
            url=target,
            request_headers=_headers(req.get("headers"), "request.headers"),
            response_headers=_headers(resp.get("headers"), "response.headers"),
            status=status,
            subprotocol=sub if isinstance(sub, str) else None,
            server_addr=server_ip if isinstance(server_ip, str) and server_ip else None,
            handshake_ns=handshake,
            transport="websocket" if messages is not None else "http",
        )
    ]
    end = t_open
    if messages is not None:
        if not isinstance(messages, list):
            raise _Bad("_webSocketMessages is not a list")
        for m in messages:
            frame = _ws_message(m, conn)
            end = max(end, frame.t_ns)
            records.append(frame)
    elif is_json:
        records.extend(_json_frames(e, post, content, conn, t_open))  # type: ignore[arg-type]
        end = max([end, *(f.t_ns for f in records[1:])])
    else:
        records.extend(_sse_frames(e, req, content, conn, t_open))  # type: ignore[arg-type]
        end = max([end, *(f.t_ns for f in records[1:])])
    close = e.get("_close")
    if isinstance(close, dict):
        code = close.get("code")
        records.append(
            Close(
                conn=conn,
                t_ns=round(_num(close.get("time"), "_close.time") * 1e6) * 1000,
                code=code if type(code) is int and 0 <= code <= 0xFFFF else None,
                reason=str(close.get("reason") or ""),
                by=close.get("by") if isinstance(close.get("by"), str) else None,
                error=close.get("error") if isinstance(close.get("error"), str) else None,
            )
        )
    else:
        total = _opt_num(e.get("time"))
        t_end = t_open + int(total * 1e6) if total is not None and total > 0 else end
        records.append(Close(conn=conn, t_ns=max(t_end, end), code=None, by=None))
    return records


def _ws_message(m: Any, conn: int) -> Frame:
    if not isinstance(m, dict):
        raise _Bad("a WebSocket message is not an object")
    kind = m.get("type")
    if kind not in ("send", "receive"):
        raise _Bad(f"a WebSocket message has type {kind!r}, not send or receive")
    opcode = m.get("opcode")
    if type(opcode) is not int or opcode not in _OPCODES:
        raise _Bad(f"a WebSocket message has opcode {opcode!r}")
    data = _str(m.get("data"), "a WebSocket message's data")
    op = _OPCODES[opcode]
    if op is Opcode.TEXT and m.get("_encoding") != "base64":
        payload = data.encode("utf-8", errors="surrogatepass")
    else:
        try:
            payload = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise _Bad("a WebSocket message's data is not base64") from None
    t = _message_ns(m.get("time"), "a WebSocket message's time")
    direction = Direction.CLIENT if kind == "send" else Direction.SERVER
    return Frame(conn, t, direction, op, payload, m.get("_fin") is not False)


def _message_ns(v: Any, what: str) -> int:
    """A message's Unix time in ns, from seconds (Chrome DevTools' HAR) or milliseconds
    (Playwright's): past the plausible bound in seconds (the year 5138) it is in ms."""
    in_seconds = _opt_num(v)
    in_ms = _opt_num(v / 1000) if in_seconds is None and isinstance(v, int | float) else None
    if in_ms is not None:  # past the bound in seconds: milliseconds (bounded the same way)
        return round(in_ms * 1e6) * 1000
    if in_seconds is None:
        raise _Bad(f"{what} is not a number in range")
    return round(in_seconds * 1e6) * 1000


def _json_frames(
    e: dict[str, Any], post: dict[str, Any], content: dict[str, Any], conn: int, t0: int
) -> Iterator[Frame]:
    """A non-streamed call: the request body when it was sent, the answer when its first
    byte came (``timings.send`` and ``wait`` after the start)."""
    timings = e.get("timings") if isinstance(e.get("timings"), dict) else {}
    send = max(0.0, _opt_num(timings.get("send")) or 0.0)  # type: ignore[union-attr]
    wait = max(0.0, _opt_num(timings.get("wait")) or 0.0)  # type: ignore[union-attr]
    yield Frame(conn, t0, Direction.CLIENT, Opcode.TEXT, str(post["text"]).encode())
    text = content.get("text")
    if not isinstance(text, str):
        return
    if content.get("encoding") == "base64":
        try:
            data = base64.b64decode(text)
        except (binascii.Error, ValueError):
            raise _Bad("response.content.text is not base64") from None
    else:
        data = text.encode("utf-8", errors="surrogatepass")
    yield Frame(conn, t0 + int((send + wait) * 1e6), Direction.SERVER, Opcode.TEXT, data)


def _sse_frames(
    e: dict[str, Any], req: dict[str, Any], content: dict[str, Any], conn: int, t0: int
) -> Iterator[Frame]:
    post = req.get("postData") if isinstance(req.get("postData"), dict) else {}
    body = post.get("text")  # type: ignore[union-attr]
    sent = t0
    request_time = _opt_num(e.get("_requestTime"))
    if request_time is not None:
        sent = round(request_time * 1e6) * 1000
    if isinstance(body, str) and body:
        yield Frame(conn, sent, Direction.CLIENT, Opcode.TEXT, body.encode())
    messages = e.get("_sseMessages")
    if isinstance(messages, list):
        for m in messages:
            if not isinstance(m, dict):
                raise _Bad("an _sseMessages entry is not an object")
            t = _message_ns(m.get("time"), "an _sseMessages time")
            data = _str(m.get("data"), "an _sseMessages data").encode("utf-8")
            yield Frame(conn, t, Direction.SERVER, Opcode.TEXT, data)
        return
    text = content.get("text")
    if not isinstance(text, str):
        return
    if content.get("encoding") == "base64":
        try:
            text = base64.b64decode(text).decode("utf-8", errors="replace")
        except (binascii.Error, ValueError):
            raise _Bad("response.content.text is not base64") from None
    # No per-event times in a plain HAR: spread the events over the response's receive time.
    timings = e.get("timings") if isinstance(e.get("timings"), dict) else {}
    wait = _opt_num(timings.get("wait")) or 0.0  # type: ignore[union-attr]
    first = sent + int(max(0.0, wait) * 1e6)
    try:
        events = parse_sse(text)
    except ValueError as exc:
        raise _Bad(str(exc)) from None
    total = _opt_num(e.get("time"))
    span = int(total * 1e6) - (first - t0) if total is not None else 0
    step = max(0, span) // max(1, len(events))
    for k, data in enumerate(events):
        yield Frame(conn, first + k * step, Direction.SERVER, Opcode.TEXT, data)


def parse_sse(text: str) -> list[bytes]:
    """The ``data`` of each event of a complete event stream."""
    decoder = SSEDecoder()
    return decoder.feed(text.encode("utf-8")) + decoder.finish()
