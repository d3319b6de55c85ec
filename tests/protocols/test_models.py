"""Table tests of the protocol models: bytes in, events and figures out, no sockets.

Each case is a connection's upgrade and messages as they would cross the wire; the expected
values are worked out by hand from those messages (the audio sizes from the base64 lengths
and the session's format), never from tracer's output."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tracer.analysis.session import analyse
from tracer.protocols.events import TurnEnded, TurnStarted
from tracer.protocols.registry import claim_message, claim_open
from tracer.protocols.segmenter import Segmenter
from tracer.realtime.audio import bytes_per_second, decoded_size
from tracer.trace.records import Close, Direction, Frame, Opcode, Open, Record

C, S = Direction.CLIENT, Direction.SERVER
MS = 1_000_000


def script(
    url: str,
    messages: list[tuple[int, Direction, dict[str, Any] | bytes]],
    close: tuple[int, int | None] | None = None,
) -> list[Record]:
    """An Open, the messages (at ms, from, JSON or raw bytes), and maybe a Close."""
    out: list[Record] = [Open(conn=1, t_ns=0, url=url)]
    for at, side, body in messages:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        out.append(Frame(1, at * MS, side, Opcode.TEXT, raw))
    if close is not None:
        out.append(Close(conn=1, t_ns=close[0] * MS, code=close[1]))
    return out


def pcm(ms: int, rate: int = 24_000) -> str:
    return base64.b64encode(b"\x01\x00" * (rate * ms // 1000)).decode()


def rt(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, **fields}


SESSION = rt(
    "session.created",
    session={
        "model": "gpt-realtime",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 400},
            },
            "output": {"format": {"type": "audio/pcm", "rate": 24000}},
        },
    },
)
USAGE = {
    "input_tokens": 120,
    "output_tokens": 40,
    "input_token_details": {"cached_tokens": 64, "audio_tokens": 30, "text_tokens": 90},
    "output_token_details": {"audio_tokens": 35, "text_tokens": 5},
}


def done(rid: str, status: str = "completed", **extra: Any) -> dict[str, Any]:
    return rt(
        "response.done",
        response={"id": rid, "status": status, "usage": USAGE, "output": [], **extra},
    )


# -- the registry ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "transport", "subprotocol", "expected"),
    [
        ("wss://api.openai.com/v1/realtime?model=gpt-realtime", "websocket", None, "realtime"),
        ("wss://x.openai.azure.com/openai/realtime?api-version=1", "websocket", None, "realtime"),
        ("wss://api.x.ai/v1/realtime", "websocket", None, "realtime"),
        ("wss://api.openai.com/v1/responses", "websocket", None, "responses"),
        ("https://api.openai.com/v1/responses", "http", None, "responses"),
        ("ws://127.0.0.1:9/agent", "websocket", "realtime", "realtime"),
        ("ws://127.0.0.1:9/agent", "websocket", None, None),
        (
            "wss://generativelanguage.googleapis.com/ws/x.BidiGenerateContent",
            "websocket",
            None,
            "gemini-live",
        ),
    ],
)
def test_the_upgrade_claims_a_connection(url, transport, subprotocol, expected):
    protocol = claim_open(url, transport, subprotocol)
    assert (protocol.name if protocol else None) == expected


@pytest.mark.parametrize(
    ("client", "kind", "expected"),
    [
        (True, "response.create", "responses"),
        (True, "session.update", "realtime"),
        (True, "input_audio_buffer.append", "realtime"),
        (False, "session.created", "realtime"),
        (False, "response.created", None),  # a server event claims nothing on its own
        (True, "setup", "gemini-live"),
        (False, "setupComplete", "gemini-live"),
        (True, "hello", None),
    ],
)
def test_a_first_message_claims_a_connection(client, kind, expected):
    protocol = claim_message(client, kind)
    assert (protocol.name if protocol else None) == expected


# -- audio sizes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "rate"),
    [
        ({"type": "audio/pcm", "rate": 24000}, 48_000),
        ({"type": "audio/pcm", "rate": 16000}, 32_000),
        ({"type": "audio/pcmu"}, 8_000),
        ("pcm16", 48_000),
        ("g711_alaw", 8_000),
        ({"type": "audio/opus"}, 0),  # unknown: seconds are null, not wrong
        (None, 0),
    ],
)
def test_bytes_per_second_of_a_format(fmt, rate):
    assert bytes_per_second(fmt) == rate


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 959, 960, 961])
def test_decoded_size_without_decoding(size):
    data = base64.b64encode(bytes(size))
    assert decoded_size(data) == size == decoded_size(data.decode())


# -- Realtime turns -------------------------------------------------------------------------


def test_a_text_turn_the_client_asks_for():
    records = script(
        "wss://h/v1/realtime",
        [
            (0, S, SESSION),
            (
                10,
                C,
                rt(
                    "conversation.item.create",
                    item={
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": "hi"}],
                    },
                ),
            ),
            (11, C, rt("response.create")),
            (15, S, rt("response.created", response={"id": "r1", "status": "in_progress"})),
            (30, S, rt("response.output_text.delta", response_id="r1", delta="Hel")),
            (31, S, rt("response.output_text.delta", response_id="r1", delta="lo")),
            (40, S, done("r1")),
        ],
        close=(50, 1000),
    )
    events = list(Segmenter().feed(records))
    assert [type(e) for e in events] == [TurnStarted, TurnEnded]
    report = analyse(records)
    (t,) = report.turns
    assert (t.protocol, t.trigger, t.status, t.response_id) == (
        "realtime",
        "client",
        "completed",
        "r1",
    )
    assert (t.input_items, t.input_tokens, t.cached_tokens, t.output_tokens) == (1, 120, 64, 40)
    assert (t.input_audio_tokens, t.output_audio_tokens) == (30, 35)
    assert (t.ttfe_ms, t.ttft_ms, t.duration_ms) == (4.0, 19.0, 29.0)
    assert t.model == "gpt-realtime"
    assert report.connections[0].protocol == "realtime"
    assert report.summary.protocols == {"realtime": 1}


def test_a_turn_the_server_starts_after_speech_with_its_voice_figures():
    appended = [(i, C, rt("input_audio_buffer.append", audio=pcm(20))) for i in range(0, 60, 2)]
    records = script(
        "wss://h/v1/realtime",
        [
            (0, S, SESSION),
            *appended,  # 30 chunks of 20 ms: 600 ms appended
            (61, S, rt("input_audio_buffer.speech_started", audio_start_ms=0, item_id="u1")),
            (70, S, rt("input_audio_buffer.speech_stopped", audio_end_ms=500, item_id="u1")),
            (71, S, rt("input_audio_buffer.committed", item_id="u1")),
            (72, S, rt("conversation.item.added", item={"id": "u1", "type": "message"})),
            (80, S, rt("response.created", response={"id": "r1"})),
            (
                95,
                S,
                rt(
                    "conversation.item.input_audio_transcription.completed",
                    item_id="u1",
                    transcript="hi",
                ),
            ),
            (
                110,
                S,
                rt("response.output_audio.delta", response_id="r1", item_id="a1", delta=pcm(100)),
            ),
            (
                112,
                S,
                rt("response.output_audio.delta", response_id="r1", item_id="a1", delta=pcm(150)),
            ),
            (130, S, done("r1")),
        ],
        close=(140, 1000),
    )
    (t,) = analyse(records).turns
    v = t.voice
    assert (t.trigger, t.status) == ("vad", "completed")
    assert t.t_start_s == 0.07  # the turn starts when the speech was heard to end
    assert v.input_audio_s == 0.5  # up to the speech's end; the rest is the next turn's
    assert v.output_audio_s == 0.25
    assert (v.voice_latency_ms, v.ttfa_ms) == (40.0, 40.0)
    assert v.perceived_latency_ms == 440.0  # plus the 400 ms of silence the detection needs
    assert v.transcription_delay_ms == 25.0
    assert (v.interrupted, v.output_audio_cut_s) == (False, None)
    assert t.input_items == 1  # the committed audio


def test_an_interruption_the_client_truncates():
    records = script(
        "wss://h/v1/realtime",
        [
            (0, S, SESSION),
            (1, C, rt("response.create")),
            (2, S, rt("response.created", response={"id": "r1"})),
            (
                5,
                S,
                rt("response.output_audio.delta", response_id="r1", item_id="a1", delta=pcm(200)),
            ),
            (6, S, done("r1")),
            (300, S, rt("input_audio_buffer.speech_started", audio_start_ms=0, item_id="u2")),
            (
                301,
                C,
                rt("conversation.item.truncate", item_id="a1", content_index=0, audio_end_ms=50),
            ),
            (302, C, rt("response.create")),
            (303, S, rt("response.created", response={"id": "r2"})),
            (
                304,
                S,
                rt("response.output_audio.delta", response_id="r2", item_id="a2", delta=pcm(40)),
            ),
            (305, C, rt("response.cancel")),
            (
                306,
                S,
                done(
                    "r2",
                    "cancelled",
                    status_details={"type": "cancelled", "reason": "client_cancelled"},
                ),
            ),
        ],
    )
    a, b = analyse(records).turns
    assert a.status == "completed" and a.voice.interrupted
    assert a.voice.output_audio_cut_s == 0.15  # 200 ms streamed, 50 ms played
    assert (b.status, b.error_code, b.voice.interrupted) == ("cancelled", "client_cancelled", True)
    assert b.voice.output_audio_cut_s == 0.0  # cancelled, but nothing was truncated


def test_an_error_fails_the_create_it_answers_not_the_running_turn():
    records = script(
        "wss://h/v1/realtime",
        [
            (0, S, SESSION),
            (1, C, rt("response.create")),
            (2, S, rt("response.created", response={"id": "r1"})),
            (3, C, rt("response.create")),
            (4, S, rt("error", error={"code": "conversation_already_has_active_response"})),
            (5, S, rt("error", error={"code": "invalid_value"})),  # a bad item: no turn's
            (9, S, done("r1")),
        ],
        close=(10, 1011),
    )
    report = analyse(records)
    a, b = report.turns
    assert (a.status, a.response_id) == ("completed", "r1")
    assert (b.status, b.error_code, b.referenced_items) == (
        "error",
        "conversation_already_has_active_response",
        0,
    )
    assert report.summary.errors == 1


def test_a_close_1011_cuts_the_running_turn_short():
    records = script(
        "wss://h/v1/realtime",
        [
            (0, S, SESSION),
            (1, C, rt("response.create")),
            (2, S, rt("response.created", response={"id": "r1"})),
            (
                3,
                S,
                rt("response.output_audio.delta", response_id="r1", item_id="a1", delta=pcm(20)),
            ),
        ],
        close=(8, 1011),
    )
    (t,) = analyse(records).turns
    assert (t.status, t.error_code, t.duration_ms) == ("error", "websocket_close_1011", 7.0)
    assert t.voice.output_audio_s == 0.02


def test_beta_event_names_and_formats():
    session = rt(
        "session.updated",
        session={
            "model": "gpt-4o-realtime-preview",
            "input_audio_format": "g711_ulaw",
            "output_audio_format": "g711_ulaw",
            "turn_detection": {"type": "semantic_vad"},
        },
    )
    records = script(
        "wss://h/openai/realtime",
        [
            (0, S, session),
            (1, C, rt("input_audio_buffer.append", audio=pcm(500, rate=4000))),  # 4000 bytes
            (2, C, rt("input_audio_buffer.commit")),
            (3, S, rt("input_audio_buffer.committed", item_id="u1")),
            (4, S, rt("conversation.item.created", item={"id": "u1"})),
            (5, C, rt("response.create")),
            (6, S, rt("response.created", response={"id": "r1"})),
            (9, S, rt("response.audio.delta", response_id="r1", delta=pcm(1000, rate=4000))),
            (10, S, rt("response.audio_transcript.delta", response_id="r1", delta="ok")),
            (12, S, done("r1")),
        ],
    )
    (t,) = analyse(records).turns
    assert (t.model, t.trigger, t.voice.input_audio_s, t.voice.output_audio_s) == (
        "gpt-4o-realtime-preview",
        "client",
        0.5,
        1.0,
    )
    assert t.voice.ttfa_ms == 4.0
    assert t.voice.perceived_latency_ms is None  # semantic VAD: no silence duration


def test_a_session_resumed_on_a_new_connection_resends_its_history():
    user = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "7"}]}
    answer = {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Noted."}],
    }
    first = script(
        "wss://h/v1/realtime",
        [
            (0, S, SESSION),
            (1, C, rt("conversation.item.create", item=user)),
            (2, C, rt("response.create")),
            (3, S, rt("response.created", response={"id": "r1"})),
            (
                5,
                S,
                done(
                    "r1",
                    output=[
                        {"id": "i9", "object": "realtime.item", "status": "completed", **answer}
                    ],
                ),
            ),
        ],
        close=(6, 1011),
    )
    again = [
        Open(conn=2, t_ns=10 * MS, url="wss://h/v1/realtime"),
        *(
            Frame(
                2,
                (11 + i) * MS,
                C,
                Opcode.TEXT,
                json.dumps(rt("conversation.item.create", item=item)).encode(),
            )
            for i, item in enumerate([user, answer])
        ),
        Frame(2, 14 * MS, C, Opcode.TEXT, json.dumps(rt("response.create")).encode()),
        Frame(
            2,
            15 * MS,
            S,
            Opcode.TEXT,
            json.dumps(rt("response.created", response={"id": "r2"})).encode(),
        ),
        Frame(2, 16 * MS, S, Opcode.TEXT, json.dumps(done("r2")).encode()),
    ]
    report = analyse([*first, *again])
    a, b = report.turns
    assert (a.conn, b.conn, a.conversation) == (1, 2, b.conversation)
    assert (b.input_items, b.resent_items, b.resent_reason, b.cache_loss) == (
        2,
        2,
        "cache_loss",
        "reconnect",
    )
    assert report.connection_starts() == {2: "reconnect"}


# -- a protocol tracer does not know ----------------------------------------------------------


def test_an_unknown_protocol_gets_connection_figures_and_no_turns():
    records = script(
        "wss://h/v1/agents/stream",
        [
            (0, C, {"hello": {"model": "some-live-model"}}),
            (5, S, {"welcome": {}}),
            (6, C, {"type": "response.created"}),  # a lookalike a server could send: no claim
            (7, S, b"\x00not json"),
        ],
        close=(9, 1000),
    )
    report = analyse(records)
    assert report.turns == []
    (c,) = report.connections
    assert (c.protocol, c.turns, c.client_frames, c.server_frames) == (None, 0, 2, 2)
    assert report.summary.unknown_connections == 1 and report.summary.protocols == {}


# -- two voice sessions compared --------------------------------------------------------------


def _spoken(first_audio_ms: int) -> list[Record]:
    """One spoken turn whose first audio comes ``first_audio_ms`` after the speech end."""
    at = 100 + first_audio_ms
    return script(
        "wss://h/v1/realtime",
        [
            (0, S, SESSION),
            (1, C, rt("input_audio_buffer.append", audio=pcm(600))),
            (100, S, rt("input_audio_buffer.speech_stopped", audio_end_ms=500, item_id="u1")),
            (101, S, rt("input_audio_buffer.committed", item_id="u1")),
            (102, S, rt("response.created", response={"id": "r1"})),
            (
                at,
                S,
                rt("response.output_audio.delta", response_id="r1", item_id="a", delta=pcm(300)),
            ),
            (at + 5, S, done("r1")),
        ],
        close=(at + 10, 1000),
    )


def test_a_diff_of_two_voice_sessions_names_the_voice_latency():
    from tracer.analysis.diff import diff_sessions
    from tracer.analysis.session import Session

    def run(records: list[Record]) -> tuple[Any, Any]:
        session = Session(contents=True)
        session.feed(records)
        return session.finish(), session.contents()

    (a, ca), (b, cb) = run(_spoken(300)), run(_spoken(120))
    d = diff_sessions("a", a, ca, "b", b, cb)
    (row,) = d.turns
    assert row.deltas["voice_latency_ms"] == -180.0
    assert (
        d.totals_a["voice_latency_p50_ms"] == 300.0 and d.totals_b["voice_latency_p50_ms"] == 120.0
    )
    assert "voice latency p50 -180 ms (300 → 120 ms)" in d.headline


# -- identical items: copies, not identities ----------------------------------------------------


def test_a_resend_matches_copies_of_identical_items():
    """Two turns answer the same text; the third create resends the whole history, both
    identical answers in it: both are resent, and only the new question is new."""

    def user(text: str) -> dict[str, Any]:
        return {"role": "user", "content": text}

    ok = {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "OK."}],
    }

    def answer(rid: str) -> dict[str, Any]:
        return {
            "type": "response.completed",
            "response": {
                "id": rid,
                "status": "completed",
                "output": [{"id": f"m_{rid}", **ok}],
                "usage": {"input_tokens": 10, "output_tokens": 2},
            },
        }

    history = [user("a"), ok, user("b"), ok, user("c")]
    records = script(
        "wss://h/v1/responses",
        [
            (0, C, {"type": "response.create", "input": [user("a")]}),
            (5, S, answer("r1")),
            (10, C, {"type": "response.create", "input": [user("a"), ok, user("b")]}),
            (15, S, answer("r2")),
            (20, C, {"type": "response.create", "input": history}),
            (25, S, answer("r3")),
        ],
    )
    a, b, c = analyse(records).turns
    assert (b.input_items, b.resent_items) == (3, 2)
    assert (c.input_items, c.resent_items) == (5, 4)  # both copies of "OK." were received
    assert c.conversation == a.conversation == b.conversation


# -- the service's timing of a response ---------------------------------------------------------


@pytest.mark.parametrize("late", [True, False])
def test_server_timing_splits_the_time_to_first_token(late: bool):
    """The timing event before the response's end or after it (naming the response):
    either way the turn's report gets the split."""
    metrics = {
        "pre_inference_ms": 7,
        "engine_queue_max_ms": 3,
        "engine_service_ttft_total_ms": 20.5,
        "num_engine_calls": 2,
        "novel_ms": 1,
    }
    timing = {
        "type": "responsesapi.websocket_timing",
        "response_id": "r1",
        "timing_metrics": metrics,
    }
    frames = [
        (0, C, {"type": "response.create", "input": "hi"}),
        (2, S, {"type": "response.created", "response": {"id": "r1"}}),
        (40, S, {"type": "response.output_text.delta", "delta": "x"}),
        (45, S, {"type": "response.completed", "response": {"id": "r1", "output": []}}),
    ]
    frames.insert(4 if late else 3, (46 if late else 41, S, timing))
    (t,) = analyse(script("wss://h/v1/responses", frames)).turns
    assert t.server_timing == metrics  # every field kept by name, the unknown one too
    assert (t.ttft_ms, t.ttft_service_ms, t.ttft_engine_ms, t.ttft_outside_ms) == (
        40.0,
        10.0,
        20.5,
        9.5,
    )


def test_server_timing_without_the_figures_it_needs_splits_nothing():
    from tracer.responses.timing import split_ttft

    assert split_ttft(40.0, None) == (None, None, None)
    assert split_ttft(40.0, {"total_turn_time_s": 1.0}) == (None, None, None)
    assert split_ttft(None, {"pre_inference_ms": 5}) == (None, 5.0, None)
    assert split_ttft(40.0, {"first_sampled_message_ttft_ms": 30}) == (10.0, None, 30.0)
    assert split_ttft(40.0, {"pre_inference_ms": -1, "engine_queue_max_ms": True}) == (
        None,
        None,
        None,
    )


def test_a_multi_agent_turn_names_its_agents():
    def item(name: str, text: str) -> dict[str, Any]:
        return {
            "type": "message",
            "role": "assistant",
            "agent": {"agent_name": name},
            "content": [{"type": "output_text", "text": text}],
        }

    records = script(
        "wss://h/v1/responses",
        [
            (0, C, {"type": "response.create", "input": "plan", "multi_agent": {"enabled": True}}),
            (
                9,
                S,
                {
                    "type": "response.completed",
                    "response": {
                        "id": "r1",
                        "output": [
                            item("/root", "a"),
                            item("/root/tester", "b"),
                            item("/root", "c"),
                        ],
                    },
                },
            ),
        ],
    )
    (t,) = analyse(records).turns
    assert t.agents == ["/root", "/root/tester"]


def test_a_compaction_inside_a_response_comes_back_compacted():
    """``context_management``: a response's output holds a ``compaction`` item; the client
    starts a new chain with it: compacted, neither new nor resent, same conversation."""
    sealed = {"type": "compaction", "encrypted_content": "gAAAAABsealed"}
    records = script(
        "wss://h/v1/responses",
        [
            (
                0,
                C,
                {
                    "type": "response.create",
                    "input": "long work",
                    "context_management": [{"type": "compaction", "compact_threshold": 10}],
                },
            ),
            (
                5,
                S,
                {
                    "type": "response.completed",
                    "response": {
                        "id": "r1",
                        "output": [
                            {"id": "c1", **sealed},
                            {
                                "id": "m1",
                                "type": "message",
                                "role": "assistant",
                                "content": [{"type": "output_text", "text": "done"}],
                            },
                        ],
                    },
                },
            ),
            (
                9,
                C,
                {"type": "response.create", "input": [sealed, {"role": "user", "content": "on"}]},
            ),
            (12, S, {"type": "response.completed", "response": {"id": "r2", "output": []}}),
        ],
    )
    a, b = analyse(records).turns
    assert (b.input_items, b.compacted_items, b.resent_items) == (2, 1, 0)
    assert b.conversation == a.conversation and b.new_bytes < b.input_bytes
