"""Property tests: any frames survive trace -> HAR -> trace; any JSON is imported or refused."""

from __future__ import annotations

import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracer.export.har import export_har, import_har
from tracer.trace import Direction, Frame, Opcode, Open, TraceError, TraceReader, TraceWriter

frames_st = st.lists(
    st.tuples(
        st.sampled_from(list(Direction)),
        st.sampled_from(list(Opcode)),
        st.one_of(st.binary(max_size=64), st.text(max_size=32).map(str.encode)),
        st.booleans(),
        st.integers(min_value=0, max_value=10**9),
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames_st, st.integers(min_value=1, max_value=3))
def test_any_frames_survive_a_har_round_trip(frames, conns):
    buf = io.BytesIO()
    w = TraceWriter(buf, flush_interval=None)
    for c in range(1, conns + 1):
        w.write(Open(conn=c, t_ns=0, url=f"/v1/responses?c={c}"))
    t = 0
    written = []
    for i, (d, op, payload, fin, gap) in enumerate(frames):
        t += gap
        f = Frame(i % conns + 1, t, d, op, payload, fin)
        written.append(f)
        w.write(f)
    w.close()
    reader = TraceReader(io.BytesIO(buf.getvalue()))
    har = json.loads(json.dumps(export_har(reader.header, reader)))  # through real JSON text
    back = import_har(har, source="test")
    got = [r for r in back.records if type(r) is Frame]
    key = lambda f: (f.direction, f.opcode, f.payload, f.fin)  # noqa: E731
    for c in range(1, conns + 1):
        assert [key(f) for f in got if f.conn == c] == [key(f) for f in written if f.conn == c]
    assert back.connections == conns


json_st = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=30,
)
entry_keys = st.sampled_from(
    ["request", "response", "_webSocketMessages", "startedDateTime", "timings", "time",
     "_sseMessages", "_close", "serverIPAddress"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        json_st,
        st.lists(st.dictionaries(entry_keys, json_st, max_size=6), max_size=3).map(
            lambda es: {"log": {"entries": es}}
        ),
    )
)
def test_any_json_is_imported_or_refused_with_one_line(doc):
    try:
        import_har(doc)
    except TraceError as exc:
        assert "\n" not in str(exc) and str(exc)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:4]):
            yield from _paths(v, (*prefix, i))


_FIXTURE = json.loads(
    (__import__("pathlib").Path(__file__).parent / "fixtures" / "devtools.har").read_text()
)
_FIXTURE_PATHS = list(_paths(_FIXTURE))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_FIXTURE_PATHS), json_st), min_size=1, max_size=3))
def test_a_mutated_devtools_har_is_imported_or_refused_with_one_line(mutations):
    doc = json.loads(json.dumps(_FIXTURE))
    for path, value in mutations:
        if not path:
            doc = value
            continue
        node = doc
        try:
            for k in path[:-1]:
                node = node[k]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed this path
    try:
        imported = import_har(doc)
    except TraceError as exc:
        assert "\n" not in str(exc) and str(exc)
    else:
        buf = io.BytesIO()  # what was imported must also write and read back
        w = TraceWriter(buf, header=imported.header, flush_interval=None)
        for r in imported.records:
            w.write(r)
        w.close()
        assert sum(1 for _ in TraceReader(io.BytesIO(buf.getvalue()))) >= len(imported.records)
