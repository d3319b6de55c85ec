"""The OpenAI Live API's protocol model, from tables of frames (no sockets): answers that
follow the speech, their speech end placed from the input transcript's end_ms (or, without
one, the last audible chunk), billed seconds and the context window, a close that cuts an
answer short."""

from __future__ import annotations

import base64

from tests.protocols.test_models import MS, C, S, script
from tracer.analysis.session import analyse
from tracer.upstream.realtime import tone

URL = "wss://api.openai.com/v1/live/sessions?model=gpt-live-1"
START = {"type": "session.start", "session": {"model": "gpt-live-1", "store": True}}


def append(ms: int, loud: bool = True) -> dict:
    pcm = tone(ms, amplitude=8000 if loud else 0)
    return {"type": "session.input_audio.append", "audio": base64.b64encode(pcm).decode()}


def out(ms: int) -> dict:
    return {"type": "session.output_audio.delta",
            "delta": base64.b64encode(tone(ms)).decode()}  # fmt: skip


def usage(seconds_in: float, seconds_out: float, ratio: float) -> dict:
    return {"type": "session.usage.updated",
            "usage": {"input_seconds": seconds_in, "output_seconds": seconds_out,
                      "context_window": {"usage_ratio": ratio}}}  # fmt: skip


def heard(end_ms: int) -> dict:
    return {"type": "session.input_transcript.delta", "delta": "hi", "start_ms": 0,
            "end_ms": end_ms}  # fmt: skip


def test_answers_follow_the_speech_and_their_speech_end_comes_from_the_transcript():
    frames = [
        (0, C, START),
        (1, S, {"type": "session.started", "session": {"id": "s1"}}),
        # 100 ms appends sent every 100 ms: the speech ends 300 ms into the audio.
        *((10 + 100 * i, C, append(100, loud=i < 3)) for i in range(5)),
        (420, S, heard(300)),
        (450, S, out(100)),
        (460, S, out(100)),
        (
            461,
            S,
            {
                "type": "session.output_transcript.delta",
                "delta": "Hello.",
                "start_ms": 0,
                "end_ms": 200,
            },
        ),
        (462, S, usage(0.5, 0.2, 0.01)),
        *((500 + 100 * i, C, append(100, loud=i < 2)) for i in range(4)),
        (800, S, heard(700)),
        (830, S, out(100)),
        (835, S, usage(0.9, 0.3, 0.02)),
    ]
    first, second = analyse(script(URL, frames)).turns
    assert [first.trigger, second.trigger] == ["vad", "vad"]
    v1, v2 = first.voice, second.voice
    assert v1 is not None and v2 is not None
    # end_ms 300: the third append (sent at 210 ms) reached it; the first audio at 450 ms.
    assert v1.speech_end == "transcript" and first.start_ns == 210 * MS
    assert v1.voice_latency_ms == 240.0 and v1.transcription_delay_ms == 210.0
    assert (v1.input_audio_s, v1.output_audio_s) == (0.5, 0.2)
    assert (v1.billed_s, v1.context_ratio) == (0.7, 0.01)
    assert (v2.billed_s, v2.context_ratio) == (0.5, 0.02)
    # end_ms 700 is 200 ms into the second utterance's appends: the one sent at 600 ms.
    assert second.start_ns == 600 * MS and v2.voice_latency_ms == 230.0
    assert first.duration_ms == 251.0 and first.end_ns == 461 * MS  # its last output
    assert second.referenced_items > 0


def test_without_a_transcript_the_last_audible_chunk_is_the_estimate_and_a_drop_cuts():
    frames = [
        (0, C, START),
        (10, C, append(100)),
        (110, C, append(100)),
        (210, C, append(100, loud=False)),
        (300, S, out(100)),
    ]
    (t,) = analyse(script(URL, frames, close=(320, 1011))).turns
    assert t.voice is not None and t.voice.speech_end == "estimate"
    assert t.start_ns == 110 * MS and t.voice.voice_latency_ms == 190.0
    assert (t.status, t.error_code) == ("error", "websocket_close_1011")
