"""Writing a HAR document of a trace with bounded memory.

A HAR file lists each connection's messages inside the connection's entry, but a trace
interleaves connections. ``write_har`` reads the records once and spills every payload to
an anonymous temporary file (0600, unlinked at once), keeping only each frame's place and
size; then it writes each entry, streaming its messages' payloads back from the spill. The
large fields of an entry (``_webSocketMessages``, an HTTP body, an event stream) are never
held whole: memory holds the entries' metadata, not their payloads. See ``har.py`` for the
format.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import parse_qsl

import orjson

from tracer._version import __version__
from tracer.export.jsonl import payload_text
from tracer.files import Spill
from tracer.responses.sse import encode_event
from tracer.trace.records import Close, Direction, Frame, Header, Opcode, Open, Record

__all__ = ["HarWritten", "sse_text", "write_har"]

# Placeholders for the streamed fields; the nonce keeps a trace's own text from posing as one.
_MARK = "\x00tracer-har-" + secrets.token_hex(8) + "-{}\x00"


@dataclass(slots=True)
class HarWritten:
    """What ``write_har`` wrote: entries and bytes."""

    entries: int = 0
    bytes: int = 0


@dataclass(slots=True)
class _Msg:
    """A frame without its payload: where the payload lies in the spill file."""

    t_ns: int
    direction: Direction
    opcode: Opcode
    fin: bool
    offset: int
    size: int


@dataclass(slots=True)
class _Conn:
    open: Open
    frames: list[_Msg] = field(default_factory=list)
    close: Close | None = None


def sse_data_text(data: bytes) -> str:
    """One event of an event stream as the server sent it: ``event:`` and ``data:`` lines."""
    kind = None
    if data.startswith(b"{"):
        try:
            obj = orjson.loads(data)
            kind = obj.get("type") if isinstance(obj, dict) else None
        except orjson.JSONDecodeError:
            kind = None
    return encode_event(data, kind if isinstance(kind, str) else None).decode("utf-8", "replace")


def sse_text(events: Iterable[bytes]) -> str:
    """An event stream as the server sent it: ``event:`` (the JSON ``type``) and ``data:``."""
    return "".join(sse_data_text(data) for data in events)


def _iso(unix_ns: int) -> str:
    stamp = dt.datetime.fromtimestamp(unix_ns / 1e9, tz=dt.UTC)
    return stamp.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _host(headers: list[tuple[str, str]]) -> str:
    for k, v in headers:
        if k.lower() == "host":
            return v
    return "localhost"


def _query(url: str) -> str:
    return url.partition("#")[0].partition("?")[2]


def _encode(msg: _Msg, payload: bytes) -> dict[str, Any]:
    """One ``_webSocketMessages`` entry's opcode and data fields."""
    out: dict[str, Any] = {"opcode": int(msg.opcode)}
    is_text = msg.opcode is Opcode.TEXT
    out["data"], encoded = payload_text(payload, text=is_text)
    if encoded and is_text:  # DevTools' rule: any other opcode is base64 without saying so
        out["_encoding"] = "base64"
    if not msg.fin:
        out["_fin"] = False
    return out


def _payload(spill: Spill, msg: _Msg) -> bytes:
    return spill.read(msg.offset, msg.size)


def write_har(header: Header, records: Iterable[Record], out: IO[bytes]) -> HarWritten:
    """Write the HAR document of a trace to ``out``: one entry per connection, in the order
    they opened (see the module docstring)."""
    spill = Spill()
    try:
        conns: dict[int, _Conn] = {}
        for r in records:
            if isinstance(r, Frame):
                c = conns.get(r.conn)
                if c is not None:
                    at, size = spill.add(r.payload)
                    c.frames.append(_Msg(r.t_ns, r.direction, r.opcode, r.fin, at, size))
            elif isinstance(r, Open):
                conns[r.conn] = _Conn(r)
            elif isinstance(r, Close) and r.conn in conns:
                conns[r.conn].close = r
        written = HarWritten()
        comment = f"exported by tracer from a trace of format version {header.format_version}"
        creator = {"name": "tracer", "version": __version__}
        head = orjson.dumps({"version": "1.2", "creator": creator, "pages": []})
        parts = [b'{"log":', head[:-1], b',"entries":[']
        written.bytes += _put(out, parts)
        for i, c in enumerate(conns.values()):
            if i:
                written.bytes += _put(out, [b","])
            written.bytes += _write_entry(out, c, header.anchor_unix_ns, spill)
            written.entries += 1
        tail = [b'],"comment":', orjson.dumps(comment), b"}}\n"]
        written.bytes += _put(out, tail)
        return written
    finally:
        spill.close()


def _put(out: IO[bytes], parts: list[bytes]) -> int:
    n = 0
    for p in parts:
        out.write(p)
        n += len(p)
    return n


def _write_entry(out: IO[bytes], c: _Conn, anchor: int, spill: Spill) -> int:
    """Write one entry: its small fields from a dict, its large ones streamed in place of
    the placeholders the dict holds for them."""
    entry, streams = _entry(c, anchor, spill)
    text = orjson.dumps(entry)
    n = 0
    for k, stream in enumerate(streams):
        mark = orjson.dumps(_MARK.format(k))
        before, _, text = text.partition(mark)
        out.write(before)
        n += len(before)
        for piece in stream():
            out.write(piece)
            n += len(piece)
    out.write(text)
    return n + len(text)


def _json_string(pieces: Iterator[str]) -> Iterator[bytes]:
    """One JSON string, written piece by piece (escaping is per character)."""
    yield b'"'
    for piece in pieces:
        yield orjson.dumps(piece)[1:-1]
    yield b'"'


def _json_array(items: Iterator[Any]) -> Iterator[bytes]:
    yield b"["
    for i, item in enumerate(items):
        yield (b"," if i else b"") + orjson.dumps(item)
    yield b"]"


# Over 60 lines: one HAR entry's field mapping, read top to bottom.
def _entry(
    c: _Conn, anchor: int, spill: Spill
) -> tuple[dict[str, Any], list[Callable[[], Iterator[bytes]]]]:
    """The entry's fields, and the streams that replace its placeholders, in order."""
    o = c.open
    end_ns = c.close.t_ns if c.close else (c.frames[-1].t_ns if c.frames else o.t_ns)
    http = o.transport == "http"
    host = _host(o.request_headers)
    url = f"{'http' if http else 'ws'}://{host}{o.url}" if o.url.startswith("/") else o.url
    handshake_ms = o.handshake_ns / 1e6 if o.handshake_ns is not None else -1
    streams: list[Callable[[], Iterator[bytes]]] = []

    def placeholder(stream: Callable[[], Iterator[bytes]]) -> str:
        streams.append(stream)
        return _MARK.format(len(streams) - 1)

    request: dict[str, Any] = {
        "method": "POST" if http else "GET",
        "url": url,
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": [{"name": k, "value": v} for k, v in o.request_headers],
        "queryString": [{"name": k, "value": v} for k, v in parse_qsl(_query(url))],
        "headersSize": -1,
        "bodySize": 0,
    }
    response: dict[str, Any] = {
        "status": o.status,
        "statusText": "Switching Protocols" if o.status == 101 else "",
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": [{"name": k, "value": v} for k, v in o.response_headers],
        "content": {"size": 0, "mimeType": "x-unknown"},
        "redirectURL": "",
        "headersSize": -1,
        "bodySize": -1,
    }
    entry: dict[str, Any] = {
        "startedDateTime": _iso(anchor + o.t_ns),
        "time": max(0.0, (end_ns - o.t_ns) / 1e6),
        "request": request,
        "response": response,
        "cache": {},
        "timings": {"blocked": -1, "dns": -1, "connect": -1, "ssl": -1, "send": 0,
                    "wait": handshake_ms, "receive": 0},
        "connection": str(o.conn),
    }  # fmt: skip
    if o.server_addr:
        entry["serverIPAddress"] = o.server_addr.rsplit(":", 1)[0]
    if o.subprotocol:
        entry["_subprotocol"] = o.subprotocol
    if http:
        sent = [m for m in c.frames if m.direction is Direction.CLIENT]
        received = [m for m in c.frames if m.direction is Direction.SERVER]
        body = (_payload(spill, m).decode("utf-8", errors="replace") for m in sent)
        request["postData"] = {"mimeType": "application/json", "text": placeholder(
            lambda: _json_string(body))}  # fmt: skip
        request["bodySize"] = sum(m.size for m in sent)
        event_stream = o.status == 200
        if event_stream:
            size = sum(len(sse_data_text(_payload(spill, m)).encode()) for m in received)
            text = (sse_data_text(_payload(spill, m)) for m in received)
        else:
            size = sum(m.size for m in received)
            text = (_payload(spill, m).decode("utf-8", errors="replace") for m in received)
        response["content"] = {
            "size": size,
            "mimeType": "text/event-stream" if event_stream else "application/json",
            "text": placeholder(lambda: _json_string(text)),
        }
        sse = (
            {
                "time": (anchor + m.t_ns) / 1e9,
                "data": _payload(spill, m).decode("utf-8", "replace"),
            }
            for m in received
        )
        entry["_sseMessages"] = placeholder(lambda: _json_array(sse))
        entry["_requestTime"] = (anchor + c.frames[0].t_ns) / 1e9 if sent else None
    else:
        entry["_resourceType"] = "websocket"
        messages = (
            {
                "type": "send" if m.direction is Direction.CLIENT else "receive",
                "time": (anchor + m.t_ns) / 1e9,
                **_encode(m, _payload(spill, m)),
            }
            for m in c.frames
        )
        entry["_webSocketMessages"] = placeholder(lambda: _json_array(messages))
    if c.close is not None:
        cl = c.close
        entry["_close"] = {
            "time": (anchor + cl.t_ns) / 1e9,
            "code": cl.code,
            "reason": cl.reason,
            "by": cl.by,
            "error": cl.error,
        }
    return entry, streams
