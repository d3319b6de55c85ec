"""Hostile input: mutated traces for the reader, and weird events for the analysis."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.slowness import guard_s
from tracer.analysis import Session, analyse
from tracer.replay.recorded import load_connections
from tracer.trace import (
    Direction,
    Frame,
    Opcode,
    Open,
    TraceError,
    TraceReader,
    TraceWriter,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = (ROOT / "traces" / "error.trace").read_bytes()


def read_everything(data: bytes) -> None:
    """Everything a command does with a trace; only TraceError may come out."""
    try:
        reader = TraceReader(io.BytesIO(data), max_record_size=1 << 20)
        records = list(reader)
    except TraceError:
        return
    analyse(records)
    collect_contents(records)
    load_connections(records)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    flips=st.lists(st.tuples(st.integers(0, len(SAMPLE) - 1), st.integers(1, 255)), max_size=4),
    cut=st.integers(0, len(SAMPLE)),
)
def test_mutated_sample_traces(flips, cut):
    data = bytearray(SAMPLE[:cut])
    for pos, xor in flips:
        if pos < len(data):
            data[pos] ^= xor
    start = time.monotonic()
    read_everything(bytes(data))
    assert time.monotonic() - start < guard_s(5)  # a hang guard (reading it whole: 3 ms)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_after_a_valid_preamble(tail):
    read_everything(SAMPLE[:16] + tail)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
TYPES = [
    "response.create", "response.created", "response.in_progress", "response.completed",
    "response.failed", "response.output_text.delta", "error", "response.steer",
    "response.output_item.done", "something.else",
]  # fmt: skip
KEYS = ["input", "response", "usage", "output", "stream_id", "previous_response_id",
        "error", "delta", "generate", "tools", "instructions", "model", "id", "code",
        "input_tokens_details", "input_tokens", "content", "text", "call_id", "name",
        "arguments", "role", "type", "message"]  # fmt: skip


@st.composite
def events(draw):
    event = {"type": draw(st.sampled_from(TYPES))}
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=5)):
        event[key] = draw(json_values)

    def nested(depth: int) -> dict:
        obj = {k: draw(json_values) for k in draw(st.lists(st.sampled_from(KEYS), max_size=4))}
        if depth and draw(st.booleans()):
            obj[draw(st.sampled_from(KEYS))] = nested(depth - 1)
        if depth and draw(st.booleans()):
            obj[draw(st.sampled_from(KEYS))] = [nested(depth - 1)]
        return obj

    if draw(st.booleans()):
        event["response"] = nested(3)
    if draw(st.booleans()):
        event["input"] = [nested(2) for _ in range(draw(st.integers(0, 3)))]
    return json.dumps(event).encode()


@st.composite
def completions(draw):
    """A terminal event whose response holds odd usage and output shapes."""
    response = {
        "id": draw(st.text(max_size=6)),
        "usage": draw(
            st.dictionaries(
                st.sampled_from(["input_tokens", "output_tokens", "input_tokens_details"]),
                json_values,
                max_size=3,
            )
            | json_values
        ),
        "output": draw(
            st.lists(
                st.fixed_dictionaries(
                    {"type": st.sampled_from(["message", "function_call", "x"])},
                    optional={
                        "content": json_values,
                        "name": json_values,
                        "arguments": json_values,
                        "call_id": json_values,
                    },
                )
                | json_values,
                max_size=3,
            )
            | json_values
        ),
        "error": draw(json_values),
    }
    kind = draw(st.sampled_from(["response.completed", "response.failed", "response.created"]))
    return json.dumps({"type": kind, "response": response}).encode()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(Direction)),
            events() | completions() | st.binary(max_size=40),
        ),
        max_size=30,
    ),
    st.booleans(),
)
def test_weird_events_do_not_break_the_analysis(messages, http):
    buf = io.BytesIO()
    writer = TraceWriter(buf, flush_interval=None)
    writer.write(
        Open(conn=1, t_ns=0, url="/v1/responses", transport="http" if http else "websocket")
    )
    for i, (direction, payload) in enumerate(messages):
        writer.write(Frame(1, (i + 1) * 1000, direction, Opcode.TEXT, payload))
    writer.close()
    data = buf.getvalue()
    records = list(TraceReader(io.BytesIO(data)))
    report = analyse(records)
    json.dumps(report.to_json())  # the JSON view must serialise too
    collect_contents(records)
    load_connections(records)


def _analyse_messages(messages: list[tuple[Direction, bytes]], http: bool = False):
    buf = io.BytesIO()
    writer = TraceWriter(buf, flush_interval=None)
    transport = "http" if http else "websocket"
    writer.write(Open(conn=1, t_ns=0, url="/v1/responses", transport=transport))
    for i, (direction, payload) in enumerate(messages):
        writer.write(Frame(1, (i + 1) * 1000, direction, Opcode.TEXT, payload))
    writer.close()
    records = list(TraceReader(io.BytesIO(buf.getvalue())))
    report = analyse(records)
    json.dumps(report.to_json())
    collect_contents(records)
    load_connections(records)
    return report


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.dictionaries(st.sampled_from(KEYS), json_values, max_size=4),
            st.lists(events(), max_size=3),
            completions(),
        ),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
)
def test_turn_shaped_sessions_with_odd_fields(turns, http):
    messages = []
    for create_fields, middle, end in turns:
        create = {**create_fields, "type": "response.create"}
        create.pop("stream_id", None)
        messages.append((Direction.CLIENT, json.dumps(create).encode()))
        messages += [(Direction.SERVER, m) for m in middle]
        messages.append((Direction.SERVER, end))
    _analyse_messages(messages, http)


def test_malformed_usage_and_output_fields():
    """Found by hand while fuzzing: fields of the wrong type must not crash the analysis."""
    create = {"type": "response.create", "input": "x"}
    completed = {
        "type": "response.completed",
        "response": {
            "id": "r",
            "usage": {"input_tokens_details": [1], "input_tokens": "many"},
            "output": [{"type": "message", "content": "not a list"}, {"type": "function_call"}],
        },
    }
    report = _analyse_messages(
        [(Direction.CLIENT, json.dumps(create).encode()),
         (Direction.SERVER, json.dumps(completed).encode())]
    )  # fmt: skip
    (turn,) = report.turns
    assert turn.status == "completed"
    assert turn.input_tokens is None and turn.cached_tokens is None
    assert turn.output_items == 2


def collect_contents(records: list) -> None:
    """What a diff compares, from a Session of its own (as diff_files does)."""
    session = Session(contents=True)
    session.feed(records)
    session.finish()
    session.contents()
