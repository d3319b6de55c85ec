"""Audio as the Realtime API carries it: base64 in JSON, in the session's format, with the
session's turn detection (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_RATE",
    "DEFAULT_SILENCE_MS",
    "SessionConfig",
    "bytes_per_second",
    "decoded_size",
]

DEFAULT_RATE = 48_000
"""Bytes per second of the API's default format, 16-bit PCM at 24 kHz mono."""

DEFAULT_SILENCE_MS = 500
"""The server VAD's silence duration when a session names none."""

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


@dataclass(slots=True)
class SessionConfig:
    """What a session's ``session.created``/``updated`` (or the client's ``session.update``)
    said that the figures need: the model, the audio formats, the turn detection."""

    model: str | None = None
    input_rate: int = DEFAULT_RATE  # bytes per second (0: a format tracer cannot size)
    output_rate: int = DEFAULT_RATE
    silence_ms: int | None = None  # server VAD's silence_duration_ms (None: not server VAD)
    transcribing: bool = False  # the session transcribes the input audio

    def update(self, session: dict[str, Any]) -> None:
        """Take what ``session`` says, in the GA shape (``audio.input.format``) or the beta
        one (``input_audio_format``); what it leaves out stays as it was."""
        if isinstance(session.get("model"), str):
            self.model = session["model"]
        audio = _dict(session.get("audio"))
        inp, out = _dict(audio.get("input")), _dict(audio.get("output"))
        fmt_in = inp.get("format", session.get("input_audio_format"))
        fmt_out = out.get("format", session.get("output_audio_format"))
        if fmt_in is not None:
            self.input_rate = bytes_per_second(fmt_in)
        if fmt_out is not None:
            self.output_rate = bytes_per_second(fmt_out)
        if "turn_detection" in inp or "turn_detection" in session:
            detection = _dict(inp.get("turn_detection", session.get("turn_detection")))
            silence = detection.get("silence_duration_ms")
            if detection.get("type") != "server_vad":
                self.silence_ms = None  # semantic detection: no fixed silence to add
            else:
                self.silence_ms = silence if isinstance(silence, int) else DEFAULT_SILENCE_MS
        if "transcription" in inp or "input_audio_transcription" in session:
            value = inp.get("transcription", session.get("input_audio_transcription"))
            self.transcribing = isinstance(value, dict)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
