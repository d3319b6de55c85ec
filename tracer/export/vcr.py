"""VCR.py cassettes (YAML, as VCR.py and pytest-recording write them) to trace records,
and a trace's HTTP calls back to a cassette (no I/O).

A cassette holds interactions (a request, its response) and no times: imported calls get
synthesised times, one after another, and the trace header says so (``times:
synthesised``). Cassettes may hold ``!!python/object`` tags: they are read with a safe
loader that turns every such tag into plain data, so importing never runs code.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import yaml

from tracer.export.har import HarImport, import_har
from tracer.responses.sse import encode_event
from tracer.trace.format import TraceError
from tracer.trace.records import Close, Direction, Frame, Open, Record

__all__ = ["decoded_body", "export_vcr", "import_vcr", "is_cassette", "load_cassette"]

CALL_MS = 100.0  # the synthesised time of one call
GAP_MS = 10.0  # between calls


class _Loader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no types
    """A safe loader that reads every unknown tag (``!!python/object:...``) as plain data."""


def _inert(loader: _Loader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


def _as_text(loader: _Loader, node: yaml.Node) -> Any:
    return loader.construct_scalar(node)


_Loader.add_multi_constructor("tag:yaml.org,2002:python/", _inert)
_Loader.add_multi_constructor("!", _inert)
# A date inside a recorded JSON body stays the string it was (and `recorded_at` is parsed
# where it is read): YAML 1.1 would turn an unquoted 2026-12-04T... into a datetime.
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _as_text)


def load_cassette(data: bytes) -> Any:
    """A cassette's YAML, parsed without constructing any object it names."""
    try:
        return yaml.load(data, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise TraceError(f"not a cassette: invalid YAML ({str(exc).splitlines()[0]})") from None


def is_cassette(doc: Any) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("interactions"), list)


def _text(body: Any, headers: dict[str, Any]) -> str | None:
    """A body as text: a string, bytes (decompressed as its headers say), or VCR's
    ``{"string": ...}``."""
    if isinstance(body, dict):
        body = body.get("string", body.get("content"))
    if body is None:
        return None
    if isinstance(body, str):
        return body
    if isinstance(body, bytes | bytearray):
        return decoded_body(bytes(body), " ".join(_values(headers, "content-encoding")))
    return None


def decoded_body(raw: bytes, encoding: str) -> str:
    """A recorded body as text, decompressed as its ``content-encoding`` says (gzip or
    deflate; kept as it is when that fails)."""
    encoding = encoding.lower()
    try:
        if "gzip" in encoding:
            raw = gzip.decompress(raw)
        elif "deflate" in encoding:
            raw = zlib.decompress(raw)
    except (OSError, zlib.error):
        pass
    return raw.decode("utf-8", errors="replace")


def _values(headers: Any, name: str) -> list[str]:
    if not isinstance(headers, dict):
        return []
    for key, value in headers.items():
        if str(key).lower() == name:
            return [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return []


def _har_headers(headers: Any) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    if isinstance(headers, dict):
        for key, value in headers.items():
            for v in value if isinstance(value, list) else [value]:
                out.append({"name": str(key), "value": str(v)})
    return out


def import_vcr(doc: Any, *, source: str = "cassette") -> HarImport:
    """A cassette's interactions as trace records (through the HAR importer, one path for
    redaction and the JSON and event-stream calls), with synthesised times."""
    if not is_cassette(doc):
        raise TraceError("not a VCR.py cassette: no interactions list")
    entries = []
    start = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
    for i, interaction in enumerate(doc["interactions"]):
        if not isinstance(interaction, dict):
            raise TraceError(f"cassette interaction {i}: not a mapping")
        req, resp = interaction.get("request"), interaction.get("response")
        if not isinstance(req, dict) or not isinstance(resp, dict):
            raise TraceError(f"cassette interaction {i}: no request or response")
        status = resp.get("status")
        code = status.get("code") if isinstance(status, dict) else status
        req_headers, resp_headers = req.get("headers") or {}, resp.get("headers") or {}
        body = _text(req.get("body"), req_headers)
        answer = _text(resp.get("body"), resp_headers)
        mime = (_values(resp_headers, "content-type") or ["application/json"])[0]
        at = start + i * (CALL_MS + GAP_MS) / 1000
        entries.append({
            "startedDateTime": datetime.fromtimestamp(at, UTC).isoformat(),
            "time": CALL_MS,
            "request": {
                "method": str(req.get("method", "GET")).upper(), "url": str(req.get("uri", "")),
                "headers": _har_headers(req_headers),
                **({"postData": {"mimeType": "application/json", "text": body}}
                   if body is not None else {}),
            },
            "response": {
                "status": code if isinstance(code, int) else 0,
                "headers": _har_headers(resp_headers),
                "content": {"mimeType": mime, **({"text": answer} if answer is not None else {})},
            },
            "timings": {"send": 0, "wait": CALL_MS / 2},
        })  # fmt: skip
    imported = import_har({"log": {"entries": entries}}, source=source)
    imported.header.metadata["times"] = "synthesised"
    imported.header.metadata.pop("har_creator", None)
    return imported


def export_vcr(records: Iterable[Record], host: str = "localhost") -> tuple[str, int]:
    """The trace's HTTP calls as a VCR.py cassette (YAML, version 1): each request's body
    and its answer (a JSON body, or the server-sent events as the stream carried them); the
    cassette and its number of interactions."""
    calls: dict[int, dict[str, Any]] = {}
    order: list[int] = []
    for rec in records:
        if type(rec) is Open and rec.transport == "http":
            calls[rec.conn] = {"open": rec, "body": None, "events": []}
            order.append(rec.conn)
        elif type(rec) is Frame and rec.conn in calls:
            call = calls[rec.conn]
            if rec.direction is Direction.CLIENT and call["body"] is None:
                call["body"] = rec.payload.decode("utf-8", errors="replace")
            elif rec.direction is Direction.SERVER:
                call["events"].append(rec.payload.decode("utf-8", errors="replace"))
        elif type(rec) is Close:
            continue
    interactions = [_interaction(calls[conn], host) for conn in order]
    doc = {"interactions": interactions, "version": 1}
    return yaml.safe_dump(doc, sort_keys=False), len(interactions)


def _interaction(call: dict[str, Any], host: str) -> dict[str, Any]:
    opened: Open = call["open"]
    headers = {k: [v] for k, v in opened.request_headers}
    name = next((v for k, v in opened.request_headers if k.lower() == "host"), host)
    target = opened.url if opened.url.startswith("/") else urlsplit(opened.url).path
    answer_headers: dict[str, list[str]] = {}
    for k, v in opened.response_headers:
        answer_headers.setdefault(k, []).append(v)
    stream = any(
        k.lower() == "content-type" and v.startswith("text/event-stream")
        for k, v in opened.response_headers
    )
    if stream:  # framed as the stream carried it: one event each
        body = b"".join(encode_event(event.encode()) for event in call["events"]).decode()
    else:
        body = call["events"][0] if call["events"] else ""
    return {
        "request": {"body": call["body"], "headers": headers, "method": "POST",
                    "uri": f"http://{name}{target}"},
        "response": {"body": {"string": body}, "headers": answer_headers,
                     "status": {"code": opened.status, "message": "OK"}},
    }  # fmt: skip
