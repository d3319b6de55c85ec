from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st

from tracer.trace import (
    Annotation,
    Close,
    Direction,
    Frame,
    Opcode,
    Open,
    TraceReader,
    TraceWriter,
)

ints = st.integers(min_value=0, max_value=2**62 - 1)  # the format's time range
text = st.text(max_size=40)
headers = st.lists(st.tuples(text, text), max_size=4)

frames = st.builds(
    Frame,
    conn=ints,
    t_ns=ints,
    direction=st.sampled_from(list(Direction)),
    opcode=st.sampled_from(list(Opcode)),
    payload=st.binary(max_size=300),
    fin=st.booleans(),
)
opens = st.builds(
    Open,
    conn=ints,
    t_ns=ints,
    url=text,
    request_headers=headers,
    response_headers=headers,
    status=st.integers(100, 599),
    subprotocol=st.none() | text,
    client_addr=st.none() | text,
    server_addr=st.none() | text,
    handshake_ns=st.none() | ints,
    transport=st.sampled_from(["websocket", "http"]),
)
closes = st.builds(
    Close,
    conn=ints,
    t_ns=ints,
    code=st.none() | st.integers(0, 4999),
    reason=text,
    by=st.none() | st.sampled_from(["client", "server", "recorder"]),
    error=st.none() | text,
)
annotations = st.builds(
    Annotation,
    t_ns=ints,
    label=text,
    note=text,
    conn=st.none() | ints,
    data=st.dictionaries(text, st.integers(-(2**63), 2**64 - 1) | text, max_size=3),
)
records = st.lists(st.one_of(frames, opens, closes, annotations), max_size=60)


@settings(max_examples=150, deadline=None)
@given(records=records, flush_every=st.integers(1, 10), meta=st.dictionaries(text, text))
def test_records_round_trip(records, flush_every, meta):
    buf = io.BytesIO()
    writer = TraceWriter(buf, metadata=meta, flush_interval=None)
    for i, record in enumerate(records):
        writer.write(record)
        if i % flush_every == 0:
            writer.flush()
    writer.close()

    reader = TraceReader(io.BytesIO(buf.getvalue()))
    assert reader.header.metadata == meta
    assert list(reader) == records
    assert reader.truncated is False
    assert reader.footer is not None
    assert reader.footer.frames == sum(type(r) is Frame for r in records)
    assert reader.footer.payload_bytes == sum(len(r.payload) for r in records if type(r) is Frame)


def test_unknown_record_kinds_are_skipped():
    """A newer minor version may add record kinds; this reader skips them."""
    import msgpack

    buf = io.BytesIO()
    writer = TraceWriter(buf, flush_interval=None)
    frame = Frame(1, 5, Direction.SERVER, Opcode.TEXT, b"{}")
    writer.write(frame)
    # Smuggle a record of kind 42 into the stream, as a future writer would.
    writer._cobj.compress(b"")  # keep the compressor's order
    raw = msgpack.packb([42, "future", {"x": 1}])
    buf.write(writer._cobj.compress(raw))
    writer.stats.records += 1
    writer.write(frame)
    writer.close()
    reader = TraceReader(io.BytesIO(buf.getvalue()))
    assert list(reader) == [frame, frame]
    assert reader.truncated is False


def test_the_writer_refuses_times_the_format_cannot_hold():
    import io

    import pytest

    from tracer.trace.format import T_LIMIT

    w = TraceWriter(io.BytesIO())
    for bad in (T_LIMIT, -T_LIMIT, 2**63):
        with pytest.raises(ValueError, match="time out of range"):
            w.write(Frame(1, bad, Direction.CLIENT, Opcode.TEXT, b"x"))
        with pytest.raises(ValueError, match="time out of range"):
            w.write_frames([(1, bad, 0, 1, b"x", True)])


def test_batches_of_large_payloads_round_trip_without_a_copy_in_the_writer():
    """Payloads of a mebibyte and more go to zstd beside their packed record (no copy):
    the file reads back the same, with and without 0xFF bytes (separators or sizes)."""
    import io
    import os

    from tracer.trace import Direction, Frame, Opcode, Open, TraceReader, TraceWriter

    buf = io.BytesIO()
    writer = TraceWriter(buf, flush_interval=None)
    writer.write(Open(conn=1, t_ns=0, url="/x"))
    payloads = [os.urandom(3 << 20), b"a" * (2 << 20), b"x", os.urandom(70_000) + b"\xff"]
    writer.write_frames(
        [(1, i + 1, Direction.SERVER, Opcode.BINARY, p, True) for i, p in enumerate(payloads)]
    )
    writer.write_frames([(1, 10, Direction.SERVER, Opcode.TEXT, b"b" * (5 << 20), True)])
    writer.close()
    got = [r.payload for r in TraceReader(io.BytesIO(buf.getvalue())) if type(r) is Frame]
    assert got == [*payloads, b"b" * (5 << 20)]
