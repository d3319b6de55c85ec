"""Audio as the Realtime API carries it: base64 in JSON, in a session's format (no I/O)."""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_RATE", "bytes_per_second", "decoded_size"]

DEFAULT_RATE = 48_000
"""Bytes per second of the API's default format, 16-bit PCM at 24 kHz mono."""

# The beta names of formats (a string), 8 kHz G.711 or 24 kHz PCM16.
_BETA = {"pcm16": 48_000, "g711_ulaw": 8_000, "g711_alaw": 8_000}
_G711 = frozenset(["audio/pcmu", "audio/pcma"])


def bytes_per_second(fmt: Any) -> int:
    """Bytes per second of audio in a session's format: the GA object
    (``{"type": "audio/pcm", "rate": 24000}``) or a beta name (``"pcm16"``); 0 when the
    format is one tracer cannot size (so seconds are unknown, not wrong)."""
    if isinstance(fmt, str):
        return _BETA.get(fmt, 0)
    if not isinstance(fmt, dict):
        return 0
    kind = fmt.get("type")
    if kind in _G711:
        return 8_000
    if kind == "audio/pcm":
        rate = fmt.get("rate", 24_000)
        return 2 * rate if isinstance(rate, int) and 0 < rate <= 384_000 else 0
    return 0


def decoded_size(b64: str | bytes) -> int:
    """Bytes a base64 string decodes to, without decoding it."""
    n = len(b64)
    if n == 0:
        return 0
    tail = b64[-2:]
    pad = 2 if tail in ("==", b"==") else 1 if tail[-1:] in ("=", b"=") else 0
    return n * 3 // 4 - pad
