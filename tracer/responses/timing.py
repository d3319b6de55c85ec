"""The Responses API's server timing: the request header that asks for it, the event that
brings it, and the split of a turn's time to first token it allows (no I/O).

With ``x-responsesapi-include-timing-metrics: true`` on the upgrade (or the HTTP request),
the service sends ``{"type": "responsesapi.websocket_timing", "timing_metrics": {...}}`` per
response. The fields are not publicly documented; those seen include ``pre_inference_ms``,
``engine_queue_max_ms``, ``first_sampled_message_ttft_ms``, ``engine_service_ttft_total_ms``,
``engine_service_total_ms``, ``total_turn_time_s`` and ``num_engine_calls``. All are kept
by name; the split reads the first four.
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["TIMING_EVENT", "TIMING_HEADER", "TtftSplit", "split_ttft"]

TIMING_HEADER = "x-responsesapi-include-timing-metrics"
TIMING_EVENT = "responsesapi.websocket_timing"


class TtftSplit(NamedTuple):
    """A turn's time to first token, split (ms): ``outside`` the service (network, TLS,
    proxies: what the client saw less what the service reports), the service's own
    ``service`` time (pre-inference and queue), and the ``engine``'s."""

    outside: float | None
    service: float | None
    engine: float | None


def _ms(metrics: dict[str, Any], key: str) -> float | None:
    value = metrics.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return float(value)


def split_ttft(ttft_ms: float | None, metrics: dict[str, Any] | None) -> TtftSplit:
    """The split of ``ttft_ms`` (create sent to first token, as the wire saw it) by the
    service's ``timing_metrics``; None for what they do not give."""
    if not metrics:
        return TtftSplit(None, None, None)
    pre, queue = _ms(metrics, "pre_inference_ms"), _ms(metrics, "engine_queue_max_ms")
    service = None if pre is None and queue is None else (pre or 0.0) + (queue or 0.0)
    engine = _ms(metrics, "engine_service_ttft_total_ms")
    if engine is None:
        engine = _ms(metrics, "first_sampled_message_ttft_ms")
    outside = None
    if ttft_ms is not None and (service is not None or engine is not None):
        outside = round(ttft_ms - (service or 0.0) - (engine or 0.0), 3)
    return TtftSplit(
        outside,
        None if service is None else round(service, 3),
        None if engine is None else round(engine, 3),
    )
