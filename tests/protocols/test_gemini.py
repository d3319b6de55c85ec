"""Gemini Live's protocol model, from tables of frames (no sockets): turns asked for by the
client's content, by tool results and by the end of its audio; turns the service's voice
detection started, with the speech end estimated; usage by modality; snake_case
messages; interruptions; a close that cuts a turn short."""

from __future__ import annotations

import base64
from typing import Any

from tests.protocols.test_models import MS, C, S, script
from tracer.analysis.session import analyse
from tracer.upstream.realtime import tone

URL = "wss://generativelanguage.googleapis.com/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
SETUP = {"setup": {"model": "models/gemini-live-2.5-flash",
                   "generationConfig": {"responseModalities": ["AUDIO"]}}}  # fmt: skip


def audio(ms: int, *, loud: bool = True, rate: int = 16_000) -> dict[str, Any]:
    pcm = tone(ms, rate=rate, amplitude=8000 if loud else 0)
    data = base64.urlsafe_b64encode(pcm).decode()  # as the google-genai SDK sends it
    return {"realtimeInput": {"audio": {"data": data, "mimeType": f"audio/pcm;rate={rate}"}}}


def spoken(ms: int) -> dict[str, Any]:
    pcm = base64.b64encode(tone(ms, rate=24_000)).decode()
    part = {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": pcm}}
    return {"serverContent": {"modelTurn": {"parts": [part]}}}


def text(words: str) -> dict[str, Any]:
    return {"serverContent": {"modelTurn": {"parts": [{"text": words}]}}}


def usage(prompt: int, response: int, audio_in: int = 0, audio_out: int = 0) -> dict[str, Any]:
    return {
        "promptTokenCount": prompt,
        "responseTokenCount": response,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt - audio_in},
                                {"modality": "AUDIO", "tokenCount": audio_in}],
        "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": audio_out}],
    }  # fmt: skip


DONE = {"serverContent": {"turnComplete": True}}


def test_a_text_turn_then_a_tool_round():
    frames = [
        (
            0,
            C,
            {
                **SETUP,
                "setup": {**SETUP["setup"], "generationConfig": {"responseModalities": ["TEXT"]}},
            },
        ),
        (2, S, {"setupComplete": {}}),
        (
            10,
            C,
            {
                "client_content": {
                    "turns": [{"role": "user", "parts": [{"text": "Hi?"}]}],
                    "turn_complete": True,
                }
            },
        ),
        (40, S, text("Hello ")),
        (42, S, text("there.")),
        (43, S, {**DONE, "usageMetadata": usage(5, 3)}),
        (
            50,
            C,
            {
                "clientContent": {
                    "turns": [{"role": "user", "parts": [{"text": "Look."}]}],
                    "turnComplete": True,
                }
            },
        ),
        (
            70,
            S,
            {"toolCall": {"functionCalls": [{"id": "c1", "name": "lookup", "args": {"q": "x"}}]}},
        ),
        (71, S, {"usageMetadata": usage(13, 8)}),  # after the call, before its results
        (
            80,
            C,
            {
                "toolResponse": {
                    "functionResponses": [{"id": "c1", "name": "lookup", "response": {"r": 42}}]
                }
            },
        ),
        (100, S, text("It is 42.")),
        (101, S, {**DONE, "usageMetadata": usage(37, 4)}),
    ]
    report = analyse(script(URL, frames))
    turns = report.turns
    assert [t.protocol for t in turns] == ["gemini-live"] * 3
    assert [t.trigger for t in turns] == ["client"] * 3
    assert [t.status for t in turns] == ["completed"] * 3
    assert [t.input_tokens for t in turns] == [5, 13, 37]
    assert [t.output_tokens for t in turns] == [3, 8, 4]
    assert [t.ttft_ms for t in turns] == [30.0, 20.0, 20.0]
    assert [t.duration_ms for t in turns] == [33.0, 20.0, 21.0]
    assert turns[0].model == "gemini-live-2.5-flash"
    # The session holds the context: each turn refers to what came before.
    assert [t.referenced_items for t in turns] == [0, 2, 4]
    assert turns[2].client_ms == 10.0  # the tool's time, after the call
    assert report.summary.protocols == {"gemini-live": 1}


def test_voice_detection_starts_a_turn_and_its_speech_end_is_an_estimate():
    frames = [
        (0, C, SETUP),
        (1, S, {"setupComplete": {}}),
        *((10 + 100 * i, C, audio(100)) for i in range(5)),  # 0.5 s of speech
        (510, C, audio(100, loud=False)),  # then quiet
        (610, C, audio(100, loud=False)),
        (640, S, {"serverContent": {"inputTranscription": {"text": "hello"}}}),
        (700, S, spoken(200)),
        (710, S, spoken(200)),
        (720, S, {"serverContent": {"outputTranscription": {"text": "Hi there."}}}),
        (721, S, {"serverContent": {"generationComplete": True}}),
        (722, S, {**DONE, "usageMetadata": usage(30, 13, audio_in=22, audio_out=13)}),
    ]
    (t,) = analyse(script(URL, frames)).turns
    assert (t.trigger, t.status) == ("vad", "completed")
    v = t.voice
    assert v is not None
    assert v.speech_end == "estimate"
    # The last audible chunk was sent at 410 ms: the first audio came 290 ms later.
    assert t.start_ns == 410 * MS and v.voice_latency_ms == 290.0
    assert v.input_audio_s == 0.7 and v.output_audio_s == 0.4
    assert (t.input_audio_tokens, t.output_audio_tokens) == (22, 13)
    assert v.transcription_delay_ms == 230.0


def test_the_clients_end_of_audio_is_a_measured_speech_end_and_speech_interrupts():
    frames = [
        (0, C, SETUP),
        (10, C, audio(300)),
        (320, C, {"realtimeInput": {"audioStreamEnd": True}}),
        (400, S, spoken(500)),
        (450, S, {"serverContent": {"interrupted": True}}),
        (451, S, DONE),
        (460, C, audio(100)),
    ]
    (t,) = analyse(script(URL, frames, close=(500, 1011))).turns
    assert (t.trigger, t.status) == ("client", "cancelled")
    assert t.voice is not None and t.voice.interrupted
    assert t.voice.speech_end == "client" and t.voice.voice_latency_ms == 80.0


def test_a_close_cuts_the_running_turn_short():
    frames = [
        (0, C, SETUP),
        (10, C, {"clientContent": {"turns": [{"parts": [{"text": "Go"}]}], "turnComplete": True}}),
        (30, S, spoken(100)),
        (35, S, {"goAway": {"timeLeft": "1s"}}),
    ]
    (t,) = analyse(script(URL, frames, close=(40, 1011))).turns
    assert (t.status, t.error_code) == ("error", "websocket_close_1011")
    assert t.end_ns == 40 * MS


def test_hostile_shapes_read_without_a_traceback():
    """Every field of another type than the protocol's: read as absent, never a crash."""
    odd: list[Any] = [5, "x", None, [1, 2], {"a": 1}, True, -1.5]
    frames = [(0, C, SETUP)]
    at = 1
    for value in odd:
        for message in (
            {"clientContent": {"turns": value, "turnComplete": True}},
            {"clientContent": {"turns": [{"parts": value}], "turnComplete": value}},
            {"toolResponse": {"functionResponses": value}},
            {"realtimeInput": {"mediaChunks": value, "audio": value, "audioStreamEnd": value}},
            {"realtimeInput": {"audio": {"data": "!!not base64!!", "mimeType": value}}},
            {"setup": {"generationConfig": value, "sessionResumption": value, "model": value}},
        ):
            frames.append((at, C, message))
            at += 1
        for message in (
            {"serverContent": {"modelTurn": {"parts": value}}},
            {"serverContent": {"modelTurn": {"parts": [{"inlineData": value, "text": value}]}}},
            {"serverContent": value, "usageMetadata": value},
            {"toolCall": {"functionCalls": value}},
            {"toolCall": value},
            {"sessionResumptionUpdate": value},
            {
                "serverContent": {"turnComplete": True},
                "usageMetadata": {"promptTokensDetails": value},
            },
        ):
            frames.append((at, S, message))
            at += 1
    report = analyse(script(URL, frames, close=(at, 1011)))
    assert report.turns and all(t.protocol == "gemini-live" for t in report.turns)
    live = [
        (0, C, {"type": "session.start", "session": 5}),
        (1, C, {"type": "session.input_audio.append", "audio": "%%%"}),
        (2, C, {"type": "session.input_audio.append", "audio": 7}),
        (3, S, {"type": "session.input_transcript.delta", "end_ms": "soon"}),
        (4, S, {"type": "session.output_audio.delta", "delta": 5}),
        (5, S, {"type": "session.output_transcript.delta", "delta": ["x"]}),
        (6, S, {"type": "session.usage.updated", "usage": {"context_window": 5}}),
        (7, S, {"type": "session.usage.updated", "usage": "lots"}),
    ]
    (t,) = analyse(script("wss://h/v1/live/sessions", live)).turns
    assert t.protocol == "openai-live" and t.voice is not None and t.voice.billed_s is None
