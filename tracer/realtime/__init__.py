"""The Realtime API's protocol model (voice agents): frames -> turn events (sans-I/O)."""

from __future__ import annotations

from tracer.realtime.audio import bytes_per_second, decoded_size
from tracer.realtime.model import REALTIME, RealtimeProtocol, RealtimeReader

__all__ = ["REALTIME", "RealtimeProtocol", "RealtimeReader", "bytes_per_second", "decoded_size"]
