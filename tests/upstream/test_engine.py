"""The sans-I/O engine decides every protocol question: events in, events out, no sockets."""

from __future__ import annotations

from tracer.upstream.engine import MAX_LANES, Engine
from tracer.upstream.script import default_script


def create(**fields):
    return {"type": "response.create", "input": "hi", **fields}


def test_single_flight_refuses_a_second_create_until_the_first_ends():
    conn = Engine(default_script(), single_flight=True).connection()
    first = conn.receive(create())
    assert first.queue and first.reply is None
    second = conn.receive(create())
    assert not second.queue and second.reply["error"]["code"] == "response_already_in_flight"
    plan = conn.start(create())
    conn.ended_plan(plan)
    assert conn.receive(create()).queue


def test_the_pending_limit_counts_across_lanes():
    conn = Engine(default_script(), max_pending=3).connection()
    answers = [conn.receive(create(stream_id=f"l{i % 2}")) for i in range(5)]
    assert [a.queue for a in answers] == [True, True, True, False, False]
    assert answers[3].reply["error"]["code"] == "too_many_pending_responses"
    assert answers[3].reply["stream_id"] == "l1"


def test_one_lane_limit_with_one_error_code():
    """Lanes count from their first admitted create, before any response completes."""
    conn = Engine(default_script(), max_pending=1000).connection()
    for i in range(MAX_LANES):
        assert conn.receive(create(stream_id=f"lane{i}")).queue
    refused = conn.receive(create(stream_id="one-too-many"))
    assert refused.reply["error"]["code"] == "websocket_stream_limit_reached"
    assert conn.receive(create(stream_id="lane0")).queue  # a known lane is fine
    assert conn.receive(create()).queue  # so is the default lane
    bad = conn.receive(create(stream_id="no spaces"))
    assert bad.reply["error"]["code"] == "invalid_stream_id"


def test_steer_is_accepted_only_while_its_response_runs():
    conn = Engine(default_script()).connection()
    conn.receive(create())
    plan = conn.start(create())
    steer = {"type": "response.steer", "previous_response_id": plan.response_id, "input": []}
    assert conn.receive(steer).reply["type"] == "response.steer.failed"  # not started yet
    conn.running_plan(plan)
    assert conn.receive(steer).reply["type"] == "response.steer.accepted"
    conn.ended_plan(plan)
    assert conn.receive(steer).reply["error"]["code"] == "no_response_in_progress"


def test_unknown_client_events_get_an_error_not_a_queue():
    conn = Engine(default_script()).connection()
    answer = conn.receive({"type": "response.teleport"})
    assert not answer.queue and answer.reply["error"]["code"] == "unknown_event_type"
