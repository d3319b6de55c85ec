"""The replay engine as a table: recordings and live messages in, plans or refusals out.
No sockets, no asyncio: what answers what is decided here, the servers only send."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tracer.replay.engine import MAX_MISMATCHES_KEPT, Forward, Plan, Refusal, ReplayEngine
from tracer.replay.recorded import (
    Exchange,
    RecordedConnection,
    RecordedRequest,
    load_connections,
    load_requests,
)
from tracer.trace.reader import open_trace
from tracer.trace.records import Direction, Frame, Opcode

MS = 1_000_000


def _create(n: int, **extra: object) -> bytes:
    return json.dumps({"type": "response.create", "input": [f"message {n}"], **extra}).encode()


def _server(conn: int, t_ms: int, text: str) -> Frame:
    payload = json.dumps({"type": "response.output_text.delta", "delta": text}).encode()
    return Frame(conn, t_ms * MS, Direction.SERVER, Opcode.TEXT, payload)


def _conn(conn: int, messages: int, *, path: str = "/v1/responses", **kw: object):
    """A recorded connection: ``messages`` client messages 100 ms apart, each answered by
    two frames 10 and 30 ms after it."""
    exchanges = [Exchange(None, None, 0)]
    for n in range(messages):
        t = 100 * (n + 1)
        answer = [_server(conn, t + 10, f"a{n}"), _server(conn, t + 30, f"b{n}")]
        exchanges.append(Exchange(_create(n), Opcode.TEXT, t * MS, answer))
    return RecordedConnection(conn, path, exchanges, **kw)  # type: ignore[arg-type]


def _plan(outcome: object) -> Plan:
    assert isinstance(outcome, Plan), outcome
    return outcome


def _refusal(outcome: object) -> Refusal:
    assert isinstance(outcome, Refusal), outcome
    return outcome


@pytest.mark.parametrize(("speed", "delays"), [(1.0, [0.01, 0.03]), (2.0, [0.005, 0.015]),
                                               (0.0, [0.0, 0.0])])  # fmt: skip
def test_each_message_gets_its_recorded_answer_at_the_recorded_pace(speed, delays):
    engine = ReplayEngine([_conn(1, 3)], speed=speed)
    live = engine.connect("/v1/responses")
    assert not isinstance(live, Refusal) and live.opening() is None
    for n in range(3):
        plan = _plan(live.message(_create(n)))
        assert [f.payload for _, f in plan.steps] == [
            json.dumps({"type": "response.output_text.delta", "delta": f"{k}{n}"}).encode()
            for k in "ab"
        ]
        assert [round(d, 6) for d, _ in plan.steps] == delays and plan.close is None
    assert engine.stats.turns == 3 and engine.stats.served == {1: 1} and engine.all_served()
    refusal = _refusal(live.message(_create(3)))
    assert refusal.status == 400 and refusal.code == "replay_mismatch"
    assert "has no more client messages" in refusal.message


def test_a_message_that_differs_is_refused_with_where_it_differs():
    engine = ReplayEngine([_conn(1, 2)])
    live = engine.connect("/v1/responses")
    assert not isinstance(live, Refusal)
    _plan(live.message(_create(0)))
    refusal = _refusal(live.message(_create(1, model="other")))
    assert "message 2 of recorded connection 1 does not match" in refusal.message
    assert "$.model" in refusal.message and refusal.log and refusal.log.startswith("mismatch: ")
    event = refusal.event()
    assert event["type"] == "error" and event["error"]["type"] == "tracer_replay_mismatch"
    assert engine.stats.mismatch_count == 1 and engine.stats.turns == 1
    # The live connection stays where it was: the right message is still answered.
    _plan(live.message(_create(1)))


def test_the_recording_is_quoted_only_when_asked():
    recorded = [_conn(1, 1)]
    quiet = _refusal(_live(ReplayEngine(recorded)).message(_create(0, model="x")))
    loud = _refusal(_live(ReplayEngine(recorded, verbose_mismatch=True)).message(
        _create(0, model="x")))  # fmt: skip
    assert quiet.message.endswith("$.model: received x, which is not what was recorded")
    assert loud.message.endswith("$.model: recorded nothing (key absent), received x")


def _live(engine: ReplayEngine, target: str = "/v1/responses"):
    live = engine.connect(target)
    assert not isinstance(live, Refusal), live
    return live


def test_nothing_recorded_on_the_path_is_a_404_or_goes_to_the_fallback():
    refusal = _refusal(ReplayEngine([_conn(1, 1)]).connect("/v1/realtime"))
    assert refusal.status == 404 and "no recorded WebSocket connection for /v1/realtime" in (
        refusal.message
    )
    engine = ReplayEngine([_conn(1, 1)], fallback=True)
    live = _live(engine, "/v1/realtime")
    assert isinstance(live.message(_create(0)), Forward)
    assert isinstance(_live(engine).message(_create(9)), Forward)
    assert engine.stats.mismatch_count == 0


def test_query_must_match_when_a_recording_has_one():
    engine = ReplayEngine([_conn(1, 1, path="/v1/realtime?model=a"),
                           _conn(2, 1, path="/v1/realtime?model=b")])  # fmt: skip
    live = _live(engine, "/v1/realtime?model=b")
    _plan(live.message(_create(0)))
    assert engine.stats.served == {2: 1}
    _plan(_live(engine, "/v1/realtime?model=c").message(_create(0)))  # by path: either
    assert sum(engine.stats.served.values()) == 2


def test_recordings_with_the_same_start_are_served_least_served_first():
    engine = ReplayEngine([_conn(1, 2), _conn(2, 2), _conn(3, 1, path="/other")])
    order = []
    for _ in range(4):
        live = _live(engine)
        _plan(live.message(_create(0)))
        assert live.chosen is not None
        order.append(live.chosen.conn)
    assert order == [1, 2, 1, 2] and not engine.all_served()  # conn 3 never asked for


def test_a_recording_whose_server_spoke_first_plays_that_at_once():
    hello = Frame(5, 3 * MS, Direction.SERVER, Opcode.TEXT, b'{"type":"session.created"}')
    rec = _conn(5, 1)
    rec.exchanges[0].server.append(hello)
    plan = _live(ReplayEngine([rec])).opening()
    assert plan is not None and plan.steps == [(0.003, hello)]


def test_a_server_close_ends_the_last_plan():
    engine = ReplayEngine([_conn(1, 2, close_code=4000, close_reason="bye", closed_by="server")])
    live = _live(engine)
    assert _plan(live.message(_create(0))).close is None
    assert _plan(live.message(_create(1))).close == (4000, "bye")


def test_a_flood_of_mismatches_keeps_and_logs_only_the_first():
    engine = ReplayEngine([_conn(1, 1)])
    logs = [_refusal(_live(engine).message(b"nope")).log for _ in range(MAX_MISMATCHES_KEPT + 5)]
    assert engine.stats.mismatch_count == MAX_MISMATCHES_KEPT + 5
    assert len(engine.stats.mismatches) == MAX_MISMATCHES_KEPT
    assert all(x and x.startswith("mismatch: ") for x in logs[:MAX_MISMATCHES_KEPT])
    assert (
        logs[MAX_MISMATCHES_KEPT] == f"more than {MAX_MISMATCHES_KEPT} mismatches: no longer logged"
    )
    assert logs[MAX_MISMATCHES_KEPT + 1 :] == [None] * 4


def _request(conn: int, n: int, *, status: int = 200, events: int = 2) -> RecordedRequest:
    answer = [_server(conn, 5 + 10 * k, f"r{n}.{k}") for k in range(events)]
    return RecordedRequest(conn, "/v1/responses", status, "text/event-stream", _create(n),
                           0, answer)  # fmt: skip


def test_http_requests_are_answered_least_served_first():
    engine = ReplayEngine(requests=[_request(1, 0), _request(2, 0), _request(3, 1, status=429)])
    first = _plan(engine.request("POST", "/v1/responses", _create(0)))
    second = _plan(engine.request("POST", "/v1/responses", _create(0)))
    assert [first.steps[0][1].conn, second.steps[0][1].conn] == [1, 2]
    assert [round(d, 6) for d, _ in first.steps] == [0.005, 0.015] and first.streamed
    limited = _plan(engine.request("POST", "/v1/responses", _create(1)))
    assert limited.status == 429 and engine.all_served() and engine.stats.turns == 3
    refusal = _refusal(engine.request("POST", "/v1/responses", _create(7)))
    assert refusal.status == 400 and "the closest is recorded connection 1" in refusal.message
    body = json.loads(refusal.body())
    assert body["error"]["code"] == "replay_mismatch"
    missing = _refusal(engine.request("GET", "/v1/models", b""))
    assert missing.status == 404 and missing.log == "no recorded request for GET /v1/models"
    fallback = ReplayEngine(requests=[_request(1, 0)], fallback=True)
    assert isinstance(fallback.request("POST", "/v1/responses", _create(7)), Forward)
    assert isinstance(fallback.request("GET", "/v1/models", b""), Forward)


def _recorded(path: Path):
    with open_trace(path) as reader:
        records = list(reader)
    return load_connections(records), load_requests(records)


@pytest.mark.parametrize("name", ["incremental", "reconnect", "http", "codex"])
def test_a_sample_trace_answers_its_own_client_side(name: str):
    """Every client message of a sample trace, sent again in order, is answered with
    exactly the server frames recorded after it: no mismatch, every recording served."""
    connections, requests = _recorded(ROOT / "traces" / f"{name}.trace")
    engine = ReplayEngine(connections, requests, speed=0)
    for rec in connections:
        live = _live(engine, rec.path)
        opening = live.opening()
        assert (opening.steps if opening else []) == [(0.0, f) for f in rec.exchanges[0].server]
        for ex in rec.exchanges[1:]:
            assert ex.client is not None
            plan = _plan(live.message(ex.client))
            assert [f for _, f in plan.steps] == ex.server
    for req in requests:
        plan = _plan(engine.request("POST", req.path.split("?")[0], req.body))
        assert [f for _, f in plan.steps] == req.answer
    assert engine.stats.mismatch_count == 0 and engine.all_served()


@pytest.mark.parametrize(
    ("live_audio", "mode", "matches"),
    [
        ("B" * 1280, "tolerant", True),  # other audio, as much of it: its place is kept
        ("A" * 1276, "tolerant", False),  # less audio
        ("B" * 1280, "strict", False),  # strict compares the audio too
        ("A" * 1280, "strict", True),
    ],
)
def test_appended_audio_is_matched_by_length_unless_strict(live_audio, mode, matches):
    from tracer.replay.recorded import match

    recorded = json.dumps({"type": "input_audio_buffer.append", "audio": "A" * 1280}).encode()
    live = json.dumps({"type": "input_audio_buffer.append", "audio": live_audio}).encode()
    assert (match(live, recorded, mode) is None) is matches
    # Another message's "audio" is content like any other field.
    kind = (b"input_audio_buffer.append", b"conversation.item.create")
    other = match(live.replace(*kind), recorded.replace(*kind), "tolerant")
    assert (other is None) is (live_audio == "A" * 1280)
