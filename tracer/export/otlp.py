"""OpenTelemetry: OTLP JSON spans of a session, one per turn (no I/O).

The document is an ``ExportTraceServiceRequest`` in the OTLP/JSON encoding (trace and span
ids as hex, 64-bit integers as strings), ready for ``POST /v1/traces`` of any OTLP collector.
A root span covers the session; each turn is a client span named ``chat {model}`` with the
GenAI semantic-convention attributes, and children for the time to first token, the
generation, and the client's own time before the turn. Ids are derived from the trace, so
exporting the same trace twice gives the same document.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlsplit

from tracer._version import __version__
from tracer.analysis.model import InspectReport, TurnReport
from tracer.trace.records import Header

__all__ = ["export_otlp"]

_KIND_INTERNAL = 1
_KIND_CLIENT = 3
_STATUS_OK = 1
_STATUS_ERROR = 2


def _value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, list):
        return {"arrayValue": {"values": [_value(x) for x in v]}}
    return {"stringValue": str(v)}


def _attrs(pairs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _value(v)} for k, v in pairs.items() if v is not None]


class _Ids:
    def __init__(self, header: Header) -> None:
        meta = sorted(header.metadata.items(), key=lambda kv: repr(kv[0]))  # keys of any type
        seed = f"{header.anchor_unix_ns}:{meta!r}".encode()
        self.seed = seed
        self.trace_id = hashlib.blake2b(seed, digest_size=16).hexdigest()

    def span(self, *parts: object) -> str:
        key = self.seed + b"/" + "/".join(map(str, parts)).encode()
        return hashlib.blake2b(key, digest_size=8).hexdigest()


def _span(
    ids: _Ids,
    span_id: str,
    parent: str | None,
    name: str,
    start: int,
    end: int,
    *,
    kind: int = _KIND_INTERNAL,
    attributes: dict[str, Any] | None = None,
    status: tuple[int, str] | None = None,
    events: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    span: dict[str, Any] = {
        "traceId": ids.trace_id,
        "spanId": span_id,
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(max(start, end)),
        "attributes": _attrs(attributes or {}),
    }
    if parent:
        span["parentSpanId"] = parent
    if status is not None:
        span["status"] = {"code": status[0], **({"message": status[1]} if status[1] else {})}
    if events:
        span["events"] = events
    return span


def _provider(url: str) -> str:
    """The semantic conventions' provider name, from the host the connection went to: the
    APIs tracer understands are OpenAI's, also served by Azure OpenAI and xAI."""
    try:
        host = (urlsplit(url).hostname or "") if "://" in url else ""
    except ValueError:  # a hostile trace's URL
        host = ""
    if host.endswith(".openai.azure.com") or host.endswith(".services.ai.azure.com"):
        return "azure.ai.openai"
    if host == "api.x.ai":
        return "x_ai"
    return "openai"


def _voice_attributes(t: TurnReport) -> dict[str, Any]:
    """A voice turn's figures (the Realtime API): audio, voice latency, interruption."""
    v = t.voice
    if v is None:
        return {}
    return {
        "tracer.trigger": t.trigger,
        "tracer.usage.input_audio_tokens": t.input_audio_tokens,
        "tracer.usage.output_audio_tokens": t.output_audio_tokens,
        "tracer.voice.input_audio_s": v.input_audio_s,
        "tracer.voice.output_audio_s": v.output_audio_s,
        "tracer.voice.ttfa_ms": v.ttfa_ms,
        "tracer.voice.latency_ms": v.voice_latency_ms,
        "tracer.voice.perceived_latency_ms": v.perceived_latency_ms,
        "tracer.voice.transcription_delay_ms": v.transcription_delay_ms,
        "tracer.voice.interrupted": v.interrupted,
        "tracer.voice.output_audio_cut_s": v.output_audio_cut_s,
    }


def _turn_attributes(t: TurnReport, url: str = "") -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": _provider(url),
        "gen_ai.request.model": t.model,
        "gen_ai.response.id": t.response_id,
        "gen_ai.usage.input_tokens": t.input_tokens,
        "gen_ai.usage.output_tokens": t.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": t.cached_tokens,
        "gen_ai.response.time_to_first_chunk": (
            round(t.ttft_ms / 1e3, 6) if t.ttft_ms is not None else None
        ),
        "error.type": t.error_code if t.failed else None,
        "tracer.turn.index": t.index,
        "tracer.connection.id": t.conn,
        "tracer.transport": t.transport,
        "tracer.status": t.status,
        "tracer.warmup": t.warmup,
        "tracer.previous_response_id": t.previous_response_id,
        "tracer.stream_id": t.stream_id,
        "tracer.request.bytes": t.request_bytes,
        "tracer.input.items": t.input_items,
        "tracer.input.bytes": t.input_bytes,
        "tracer.resent.items": t.resent_items,
        "tracer.resent.reason": t.resent_reason,
        "tracer.conversation": t.conversation,
        "tracer.resent.bytes": t.resent_bytes,
        "tracer.referenced.items": t.referenced_items,
        "tracer.referenced.bytes": t.referenced_bytes,
        "tracer.resent_fields.bytes": t.resent_field_bytes,
        "tracer.cache_loss": t.cache_loss,
        "tracer.ttfe_ms": t.ttfe_ms,
        "tracer.ttft_ms": t.ttft_ms,
        "tracer.client_ms": t.client_ms,
        "tracer.protocol": t.protocol,
        "gen_ai.usage.cache_creation.input_tokens": t.cache_write_tokens,
        "tracer.cost_usd": t.cost_usd,
        **_voice_attributes(t),
    }


# Over 60 lines: the OTLP document's mapping, read top to bottom.
def export_otlp(
    report: InspectReport, header: Header, *, service_name: str = "agent"
) -> dict[str, Any]:
    """The OTLP/JSON ``ExportTraceServiceRequest`` of a session report."""
    ids = _Ids(header)
    anchor = header.anchor_unix_ns
    t0 = anchor + report.summary.t0_ns
    root = ids.span("session")
    spans: list[dict[str, Any]] = []
    end_all = t0
    urls = {c.conn: c.url for c in report.connections}
    for t in report.turns:
        start = anchor + t.start_ns
        end = anchor + (t.end_ns if t.end_ns is not None else t.start_ns)
        end_all = max(end_all, end)
        sid = ids.span("turn", t.index)
        failed = t.failed
        events = []
        if t.cache_loss:
            events.append(
                {
                    "timeUnixNano": str(start),
                    "name": "tracer.cache_lost",
                    "attributes": _attrs(
                        {"tracer.cache_loss": t.cache_loss,
                         "tracer.previous_response_id": t.previous_response_id}
                    ),
                }
            )  # fmt: skip
        spans.append(
            _span(
                ids, sid, root, f"chat {t.model}" if t.model else "chat", start, end,
                kind=_KIND_CLIENT,
                attributes=_turn_attributes(t, urls.get(t.conn, "")),
                status=(_STATUS_ERROR, t.error_code or t.status) if failed else (_STATUS_OK, ""),
                events=events,
            )
        )  # fmt: skip
        if t.ttft_ms is not None and t.duration_ms is not None:
            first = start + round(t.ttft_ms * 1e6)
            spans.append(_span(ids, ids.span("ttft", t.index), sid, "time to first token",
                               start, first))  # fmt: skip
            spans.append(_span(ids, ids.span("gen", t.index), sid, "generation", first, end))
        if t.client_ms:
            before = start - round(t.client_ms * 1e6)
            spans.append(_span(ids, ids.span("client", t.index), sid, "client time", before, start))
    s = report.summary
    spans.insert(
        0,
        _span(
            ids, root, None, "agent session", t0, end_all,
            attributes={
                "tracer.turns": s.turns,
                "tracer.connections": s.connections,
                "tracer.bytes_sent": s.bytes_sent,
                "tracer.resent.bytes": s.resent_bytes,
                "tracer.referenced.bytes": s.referenced_bytes,
                "tracer.cache_losses": s.cache_losses,
                "gen_ai.usage.input_tokens": s.input_tokens,
                "gen_ai.usage.output_tokens": s.output_tokens,
                "gen_ai.usage.cache_read.input_tokens": s.cached_tokens,
            },
        ),
    )  # fmt: skip
    source = header.metadata.get("source")
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": _attrs(
                        {
                            "service.name": service_name,
                            "tracer.source": source if isinstance(source, str) else None,
                        }
                    )
                },
                "scopeSpans": [
                    {"scope": {"name": "tracer", "version": __version__}, "spans": spans}
                ],
            }
        ]
    }
