"""Format version 2: frame batches, the header's time unit, and reading version 1 files."""

from __future__ import annotations

import io
import json
from pathlib import Path

import msgpack
import pytest
import zstandard as zstd
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import assert_clean_error, run_tracer
from tracer.trace import Direction, Frame, Opcode, Open, TraceError, TraceReader, TraceWriter
from tracer.trace.compact import compact_trace
from tracer.trace.format import MAX_BATCH_FRAMES, T_LIMIT, encode_preamble

DATA = Path(__file__).parent / "data"


def raw_records(data: bytes) -> list:
    """The msgpack records of a trace, decoded by zstd and msgpack alone (the spec's view)."""
    body = zstd.ZstdDecompressor(max_window_size=1 << 27).stream_reader(io.BytesIO(data[16:]))
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(body.read())
    return list(unpacker)


def handmade(*records: list, unit: int | None = None) -> bytes:
    """A version 2 trace of raw records after a header, as any writer could produce."""
    fields = {"format": 2, "tracer": "test", "anchor_unix_ns": 0, "meta": {}}
    if unit is not None:
        fields["time_unit_ns"] = unit
    body = b"".join(msgpack.packb(r, use_bin_type=True) for r in ([0, fields], *records))
    return encode_preamble() + zstd.ZstdCompressor(write_checksum=True).compress(body)


TEXT = Opcode.TEXT, Direction.SERVER


# -- the layout, as docs/format.md gives it -----------------------------------------------------


def test_text_frames_are_one_batch_joined_by_ff_bytes():
    buf = io.BytesIO()
    with TraceWriter(buf, flush_interval=None, time_unit_ns=1000) as w:
        w.write(Frame(7, 1_500, Direction.CLIENT, Opcode.TEXT, b'{"a":1}'))
        w.write(Frame(7, 4_999, Direction.SERVER, Opcode.TEXT, "h\u00e9".encode()))
        w.write(Frame(7, 5_000, Direction.SERVER, Opcode.TEXT, b"", fin=False))
    header, batch, footer = raw_records(buf.getvalue())
    assert header[1]["time_unit_ns"] == 1000 and header[1]["format"] == 2
    # [6, conn, [dt...], kinds, sizes, payloads]: times in microseconds, as differences.
    assert batch == [6, 7, [1, 3, 1], bytes([0x01, 0x11, 0x31]), None, b'{"a":1}\xffh\xc3\xa9\xff']
    assert footer[0] == 5 and footer[2]["records"] == 4  # the header and three frames
    frames = list(TraceReader(io.BytesIO(buf.getvalue())))
    assert [f.t_ns for f in frames] == [1_000, 4_000, 5_000]  # floored to the unit
    assert [f.fin for f in frames] == [True, True, False]


def test_a_payload_holding_ff_makes_the_batch_list_sizes():
    buf = io.BytesIO()
    with TraceWriter(buf, flush_interval=None) as w:
        w.write(Frame(1, 1, Direction.CLIENT, Opcode.TEXT, b"ab"))
        w.write(Frame(2, 2, Direction.SERVER, Opcode.BINARY, b"\xff\x00\xff"))
    _, batch, _ = raw_records(buf.getvalue())
    assert batch == [6, [1, 2], [1, 1], bytes([0x01, 0x12]), [2, 3], b"ab\xff\x00\xff"]


def test_long_batches_store_their_times_in_byte_planes():
    buf = io.BytesIO()
    dts = [20_000 + 7 * i for i in range(40)]
    with TraceWriter(buf, flush_interval=None) as w:
        t = 0
        for dt in dts:
            t += dt
            w.write(Frame(1, t, Direction.SERVER, Opcode.TEXT, b"{}"))
        w.write(Frame(1, t + 2**40, Direction.SERVER, Opcode.TEXT, b"{}"))  # needs 8 bytes
    _, batch, _ = raw_records(buf.getvalue())
    values = [*dts, 2**40]
    # 8-byte little-endian values, all first bytes, then all second bytes, ...
    planes = [bytes((v >> (8 * k)) & 0xFF for v in values) for k in range(8)]
    assert batch[2] == b"".join(planes)
    assert [f.t_ns for f in TraceReader(io.BytesIO(buf.getvalue()))] == [
        sum(values[: i + 1]) for i in range(len(values))
    ]
    buf = io.BytesIO()
    with TraceWriter(buf, flush_interval=None) as w:
        for i in range(40):
            w.write(Frame(1, -i, Direction.SERVER, Opcode.TEXT, b""))  # negative differences
    _, batch, _ = raw_records(buf.getvalue())
    assert len(batch[2]) == 4 * 40 and batch[2][:2] == b"\x00\xff"  # 4 bytes: 0, then -1
    assert [f.t_ns for f in TraceReader(io.BytesIO(buf.getvalue()))] == [-i for i in range(40)]


def test_batches_end_at_flushes_other_records_and_the_size_limit():
    buf = io.BytesIO()
    w = TraceWriter(buf, flush_interval=None, batch_bytes=10)
    for i in range(4):
        w.write(Frame(1, i, *reversed(TEXT), b"12345"))  # two fit in 10 bytes
    w.flush()
    w.write(Frame(1, 9, *reversed(TEXT), b"x"))
    w.write(Open(conn=2, t_ns=10, url="/"))
    w.write(Frame(1, 11, *reversed(TEXT), b"y"))
    w.close()
    kinds = [(r[0], len(r[3]) if r[0] == 6 else None) for r in raw_records(buf.getvalue())]
    assert kinds == [(0, None), (6, 2), (6, 2), (6, 1), (1, None), (6, 1), (5, None)]


# -- round trips --------------------------------------------------------------------------------

payloads = st.binary(max_size=80) | st.text(max_size=40).map(str.encode)
frames = st.builds(
    Frame,
    conn=st.integers(0, 3),
    t_ns=st.integers(-(2**40), 2**40),
    direction=st.sampled_from(list(Direction)),
    opcode=st.sampled_from(list(Opcode)),
    payload=payloads,
    fin=st.booleans(),
)


@settings(max_examples=150, deadline=None)
@given(
    frames=st.lists(frames, max_size=80),
    unit=st.sampled_from([1, 7, 1000, 1_000_000]),
    batch_bytes=st.integers(1, 400),
    flush_every=st.integers(1, 30),
)
def test_frames_round_trip_to_the_unit(frames, unit, batch_bytes, flush_every):
    buf = io.BytesIO()
    w = TraceWriter(buf, flush_interval=None, time_unit_ns=unit, batch_bytes=batch_bytes)
    for i, f in enumerate(frames):
        w.write_frames([f])
        if i % flush_every == 0:
            w.flush()
    w.close()
    reader = TraceReader(io.BytesIO(buf.getvalue()))
    assert reader.header.time_unit_ns == unit
    assert list(reader) == [f._replace(t_ns=f.t_ns // unit * unit) for f in frames]
    assert reader.footer is not None and reader.footer.frames == len(frames)
    assert reader.records == len(frames) + 2  # and the header and the footer


def test_a_version_1_trace_still_reads_and_compacts_to_the_same_records():
    v1 = (DATA / "v1-incremental.trace").read_bytes()
    assert v1[14] == 1  # the fixture really is version 1 (one kind-2 record per frame)
    assert {r[0] for r in raw_records(v1)} == {0, 1, 2, 3, 5}
    old = TraceReader(io.BytesIO(v1))
    records = list(old)
    assert old.version == 1 and old.header.time_unit_ns == 1 and old.truncated is False
    out = io.BytesIO()
    compact_trace(io.BytesIO(v1), out)
    new = TraceReader(io.BytesIO(out.getvalue()))
    assert new.version == 2 and list(new) == records
    assert {r[0] for r in raw_records(out.getvalue())} == {0, 1, 3, 5, 6}
    assert new.footer.records == old.footer.records


def test_compact_can_coarsen_the_time_unit(tmp_path: Path):
    src = tmp_path / "v1.trace"
    src.write_bytes((DATA / "v1-incremental.trace").read_bytes())
    before = list(TraceReader(io.BytesIO(src.read_bytes())))
    proc = run_tracer("compact", str(src), "--time-resolution", "ms", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["records"] == len(before) + 2
    reader = TraceReader(io.BytesIO(src.read_bytes()))
    after = list(reader)
    assert reader.header.time_unit_ns == 1_000_000
    assert [r.t_ns for r in after] == [r.t_ns // 1_000_000 * 1_000_000 for r in before]
    bad = run_tracer("compact", str(src), "--time-resolution", "fortnights")
    assert bad.returncode == 2 and "fortnights" in bad.stderr


# -- hostile batches ----------------------------------------------------------------------------

GOOD = [6, 1, [5, 5], bytes([0x01, 0x11]), None, b"a\xffb"]


@pytest.mark.parametrize(
    "times",
    [
        [5, 5],
        b"\x05\x05" + b"\x00" * 6,  # two 4-byte values, byte plane by byte plane
        b"\x05\x05" + b"\x00" * 14,  # two 8-byte values
    ],
)
def test_a_handmade_batch_reads(times: object):
    frames = list(TraceReader(io.BytesIO(handmade(_with(2, times), unit=1000))))
    assert frames == [
        Frame(1, 5_000, Direction.CLIENT, Opcode.TEXT, b"a"),
        Frame(1, 10_000, Direction.SERVER, Opcode.TEXT, b"b"),
    ]


def _with(index: int, value: object) -> list:
    bad = list(GOOD)
    bad[index] = value
    return bad


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (_with(3, "\x01\x11"), "wrong type"),
        (_with(5, "a\xffb"), "wrong type"),
        (_with(2, [5]), "disagree on the number"),
        (_with(3, b""), "disagree on the number"),
        (_with(3, bytes([0x01, 0x03])), "invalid direction or opcode"),  # opcode 3
        (_with(3, bytes([0x01, 0x41])), "invalid direction or opcode"),  # an unknown bit
        (_with(1, [1]), "connection column"),
        (_with(1, [1, "2"]), "connection column"),
        (_with(1, "1"), "connection column"),
        (_with(2, b"\x05\x05\x00\x00\x00\x00"), "disagree on the number"),  # 3 bytes each
        (_with(2, b"\x05\x05\x00\x00\x00\x00\x00"), "disagree on the number"),
        (_with(2, {"dt": 5}), "wrong type"),
        (_with(2, [5, 0.5]), "times are malformed"),
        (_with(2, ["5", 5]), "times are malformed"),
        (_with(2, [5, None]), "times are malformed"),
        (_with(2, [T_LIMIT, 0]), "out of range"),
        (_with(2, [T_LIMIT - 1, 1]), "out of range"),
        (_with(5, b"ab"), "payloads do not match"),
        (_with(5, b"a\xffb\xffc"), "payloads do not match"),
        (_with(4, [1, 1]), "sizes do not match"),
        (_with(4, [3, -1]), "sizes do not match"),
        (_with(4, [1]), "sizes do not match"),
        (_with(4, "1,2"), "sizes do not match"),
    ],
)
def test_a_malformed_batch_is_damage(batch: list, message: str):
    data = handmade([6, 1, [1], b"\x01", None, b"ok"], batch)
    reader = TraceReader(io.BytesIO(data))
    got = []
    with pytest.raises(TraceError, match=message) as exc:
        got.extend(reader)
    assert str(exc.value).startswith("damaged at byte")
    assert got == [Frame(1, 1, Direction.CLIENT, Opcode.TEXT, b"ok")]  # what came before


def test_a_batch_past_the_frame_limit_is_damage_before_it_expands():
    n = MAX_BATCH_FRAMES + 1
    batch = [6, 1, [0] * n, b"\x01" * n, None, b"\xff" * (n - 1)]
    with pytest.raises(TraceError, match="disagree on the number"):
        list(TraceReader(io.BytesIO(handmade(batch))))


def test_a_batch_after_the_footer_is_damage():
    footer = [5, 0, {"records": 1, "connections": 0, "frames": 0, "payload_bytes": 0}]
    with pytest.raises(TraceError, match="after the footer"):
        list(TraceReader(io.BytesIO(handmade(footer, GOOD))))


@pytest.mark.parametrize("unit", [0, -1, 10**9 + 1, "1000", 1.5])
def test_a_header_with_an_invalid_time_unit_is_damage(tmp_path: Path, unit: object):
    path = tmp_path / "unit.trace"
    path.write_bytes(handmade(GOOD, unit=unit))  # type: ignore[arg-type]
    with pytest.raises(TraceError, match="time unit"):
        list(TraceReader(io.BytesIO(path.read_bytes())))
    proc = run_tracer("frames", str(path))
    assert_clean_error(proc)
    assert "time unit" in proc.stderr


def test_the_writer_refuses_what_a_batch_cannot_hold():
    w = TraceWriter(io.BytesIO())
    with pytest.raises(ValueError, match="not a frame"):
        w.write_frames([(1, 0, 2, 1, b"x", True)])  # direction 2
    with pytest.raises(ValueError, match="not a frame"):
        w.write_frames([(1, 0, 0, 3, b"x", True)])  # opcode 3
    with pytest.raises(ValueError, match="not a frame"):
        w.write_frames([("1", 0, 0, 1, b"x", True)])
    with pytest.raises(ValueError, match="time unit"):
        TraceWriter(io.BytesIO(), time_unit_ns=0)
