"""The batch path (a frame batch read at once, runs of deltas counted in bulk) gives the
same report as the frames read one by one: on the samples, and on generated sessions that
mix what the bulk count must step around."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.analysis.paths import assert_both_paths_agree, report_json
from tracer.responses.model import ResponsesReader
from tracer.trace import Close, Direction, Frame, Opcode, Open, create_trace

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "traces").glob("*.trace"))


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_the_samples_read_the_same_either_way(path: Path) -> None:
    assert_both_paths_agree(path)


# Server messages, as services and odd peers send them: the bulk count must match the
# ones the byte test of the frame-by-frame path takes for deltas, and no others.
DELTA_TYPES = [
    "response.output_text.delta",
    "response.function_call_arguments.delta",
    "response.reasoning_summary_text.delta",
    "response.custom.delta",
    "vendor.état.delta",
    "x" * 70 + ".delta",  # too long to be found in the first bytes
]


def _server(kind: str, n: int, rid: str) -> list[bytes]:
    """A server message of a few shapes for each kind."""
    if kind == "created":
        return [json.dumps({"type": "response.created", "response": {"id": rid}}).encode()]
    if kind == "completed":
        usage = {"input_tokens": 10 + n, "output_tokens": n, "input_tokens_details":
                 {"cached_tokens": n}}  # fmt: skip
        body = {"type": "response.completed", "response": {"id": rid, "usage": usage}}
        return [json.dumps(body, separators=(",", ":")).encode()]
    if kind == "error":
        return [b'{"type":"error","error":{"code":"server_error","message":"boom"}}']
    if kind == "odd":
        return [
            b"not json",
            b'{"type":"abc',  # cut short: must not join the next message
            b'{"sequence_number":3,"type":"response.output_text.delta","delta":"x"}',
            b'{"item":{"type":"response.output_text.delta"}}',
            b' \t{"type" :  "response.output_text.delta", "delta": "y"}',
            b'{"type":"response.output_text.delta","stream_id":"s1","delta":"z"}',
        ][n % 6 : n % 6 + 1]
    t = DELTA_TYPES[n % len(DELTA_TYPES)]
    compact = n % 3 != 0
    body = {"type": t, "delta": "w" * (n % 5), "output_index": 0}
    return [json.dumps(body, separators=(",", ":") if compact else None).encode()]


STEP = st.one_of(
    st.tuples(st.just("create"), st.integers(1, 3), st.booleans()),
    st.tuples(
        st.just("server"),
        st.integers(1, 3),
        st.sampled_from(["created", "delta", "delta", "delta", "completed", "error", "odd"]),
    ),
    st.tuples(st.just("deltas"), st.integers(1, 3), st.integers(1, 400)),
    st.tuples(st.just("binary"), st.integers(1, 3), st.booleans()),
    st.tuples(st.just("flush"), st.just(0), st.just(0)),
)


def write_session(path: Path, steps: list[tuple[str, int, object]]) -> None:
    """Three connections (two Responses sockets, one the registry must sniff) and the steps
    on them, written through the public writer; a flush ends a frame batch."""
    t = 1_000
    with create_trace(path, flush_interval=None) as w:
        for conn, url in ((1, "/v1/responses"), (2, "/v1/responses"), (3, "/ws")):
            w.write(Open(conn=conn, t_ns=t, url=url))
        for n, (what, conn, arg) in enumerate(steps):
            t += 1_000 + (n * 7919) % 5_000
            if what == "flush":
                w.flush()
            elif what == "create":
                body: dict[str, object] = {"type": "response.create", "model": "gpt-5.1"}
                body["input"] = [{"role": "user", "content": f"q{n}"}]
                if arg:
                    body["stream_id"] = f"s{n % 2}"
                w.write(Frame(conn, t, Direction.CLIENT, Opcode.TEXT, json.dumps(body).encode()))
            elif what == "binary":
                w.write(Frame(conn, t, Direction.SERVER, Opcode.BINARY, b"\xff\x00audio", True))
                w.write(Frame(conn, t + 1, Direction.SERVER, Opcode.TEXT, b'{"type":', bool(arg)))
            elif what == "deltas":
                for k in range(int(arg)):  # type: ignore[call-overload]
                    for payload in _server("delta", k + n, f"r{n}"):
                        w.write(Frame(conn, t + k, Direction.SERVER, Opcode.TEXT, payload))
                t += int(arg)  # type: ignore[call-overload]
            else:
                for payload in _server(str(arg), n, f"resp_{n}"):
                    w.write(Frame(conn, t, Direction.SERVER, Opcode.TEXT, payload))
        w.write(Close(conn=1, t_ns=t + 10, code=1000, by="client"))
        w.write(Close(conn=2, t_ns=t + 11, code=1006, by="server", error="dropped"))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(STEP, min_size=1, max_size=60))
def test_generated_sessions_read_the_same_either_way(
    tmp_path: Path, steps: list[tuple[str, int, object]]
) -> None:
    path = tmp_path / "generated.trace"
    write_session(path, steps)
    assert_both_paths_agree(path)


def test_the_bulk_count_is_taken_and_counts_what_the_frames_say(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Long runs of deltas are counted in bulk (seen by a spy on the reader's bulk count,
    which still does the work), and the turn's figures are those of the frames written."""
    path = tmp_path / "deltas.trace"
    steps: list[tuple[str, int, object]] = [("create", 1, False), ("server", 1, "created")]
    steps += [("deltas", 1, 300), ("flush", 0, 0), ("deltas", 1, 200), ("server", 1, "completed")]
    write_session(path, steps)
    counted: list[int] = []
    real = ResponsesReader.count_bulk

    def spy(self: ResponsesReader, kinds: list[bytes], *args: object) -> None:
        counted.append(len(kinds))
        real(self, kinds, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(ResponsesReader, "count_bulk", spy)
    report = json.loads(report_json(path, by_batch=True))
    # All but the escaped and the overlong types, which are read one by one.
    plain = {i for i, t in enumerate(DELTA_TYPES) if t.isascii() and len(t) < 64}
    expected = sum((k + n) % len(DELTA_TYPES) in plain for n, m in ((2, 300), (4, 200))
                   for k in range(m))  # fmt: skip
    assert sum(counted) == expected and len(counted) >= 2
    (turn,) = [t for t in report["turns"] if t["conn"] == 1]
    assert turn["events"] == 1 + 500 + 1  # created, the deltas, completed
    assert turn["output_tokens"] == 5  # the completed event's, step 5
