from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from tests.conftest import assert_clean_error, run_tracer
from tracer.trace import Frame, TraceError, TraceReader
from tracer.trace.verify import verify_trace


def read_all(data: bytes):
    reader = TraceReader(io.BytesIO(data))
    return reader, list(reader)


def test_cut_at_every_offset_reads_a_prefix(small_trace: Path):
    data = small_trace.read_bytes()
    _, full = read_all(data)
    assert len(full) == 28
    seen_lengths = set()
    for cut in range(len(data)):
        try:
            reader, records = read_all(data[:cut])
        except TraceError as exc:
            # Only possible before the header record is complete.
            assert str(exc).startswith(("truncated", "not a tracer trace: the file is empty")), exc
            assert cut < 200
            continue
        assert reader.truncated is True, cut
        assert records == full[: len(records)], cut
        seen_lengths.add(len(records))
        report = verify_trace(io.BytesIO(data[:cut]))
        assert report.truncated and not report.ok and report.error is None
    # Frequent flushes mean a cut loses only the last block: many different prefixes appear.
    assert len(seen_lengths) > 10
    reader, records = read_all(data)
    assert reader.truncated is False and records == full


def test_every_flipped_byte_is_caught(small_trace: Path):
    data = small_trace.read_bytes()
    _, full = read_all(data)
    undetected = []
    for pos in range(len(data)):
        damaged = bytearray(data)
        damaged[pos] ^= 0x5A
        report = verify_trace(io.BytesIO(bytes(damaged)))
        if report.ok:
            # zstd's checksum covers the content, so a passing file must read the same.
            _, records = read_all(bytes(damaged))
            if records != full:
                undetected.append(pos)
    assert undetected == []


def test_oversized_record_is_refused(tmp_path: Path):
    from tracer.trace import Direction, Opcode, TraceWriter

    buf = io.BytesIO()
    with TraceWriter(buf) as w:
        w.write(Frame(1, 0, Direction.CLIENT, Opcode.BINARY, b"\0" * 200_000))
    with pytest.raises(TraceError, match="larger than the 65536-byte limit"):
        list(TraceReader(io.BytesIO(buf.getvalue()), max_record_size=65536))
    assert len(list(TraceReader(io.BytesIO(buf.getvalue()), max_record_size=300_000))) == 1


def test_newer_format_version_is_refused(small_trace: Path):
    data = bytearray(small_trace.read_bytes())
    data[14] = 99  # the version field of the preamble
    with pytest.raises(TraceError, match="version 99 is not supported"):
        read_all(bytes(data))


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"hello, I am not a trace\n",
        bytes(range(256)) * 4,
        b"\x5e\x2a\x4d\x18\x08\x00\x00\x00tracer\x01\x00" + b"\x00" * 64,  # preamble + garbage
        b"\x5e\x2a\x4d\x18\x08\x00\x00\x00tracer\x01\x00"
        + bytes.fromhex("28b52ffd0058"),  # preamble + the start of a zstd frame
    ],
)
def test_garbage_gives_one_line_error_through_the_cli(tmp_path: Path, content: bytes):
    path = tmp_path / "garbage.trace"
    path.write_bytes(content)
    for args in (["verify", str(path)], ["frames", str(path)], ["verify", "--json", str(path)]):
        proc = run_tracer(*args)
        assert proc.returncode != 0
        assert "Traceback" not in proc.stderr
        if "--json" not in args and args[0] != "verify":
            assert_clean_error(proc)


def test_flipped_bytes_through_the_cli(small_trace: Path, tmp_path: Path):
    data = small_trace.read_bytes()
    rng = random.Random(7)
    for i in range(8):
        damaged = bytearray(data)
        for _ in range(3):
            damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
        path = tmp_path / f"flip{i}.trace"
        path.write_bytes(bytes(damaged))
        proc = run_tracer("frames", str(path))
        assert "Traceback" not in proc.stderr
        verify = run_tracer("verify", str(path))
        assert verify.returncode != 0
        assert "Traceback" not in verify.stderr
        if proc.returncode != 0:
            assert_clean_error(proc)


def test_damage_and_truncation_are_typed(small_trace: Path):
    """What went wrong travels as a type with attributes, not as a prefix in a message."""
    from tracer.trace import TraceDamaged, TraceTruncated

    data = small_trace.read_bytes()
    with pytest.raises(TraceTruncated):
        TraceReader(io.BytesIO(data[:10]))
    damaged = bytearray(data)
    damaged[len(data) // 2] ^= 0xFF
    with pytest.raises(TraceDamaged) as info:
        list(TraceReader(io.BytesIO(bytes(damaged))))
    exc = info.value
    assert isinstance(exc, TraceError)
    assert isinstance(exc.offset, int) and 0 < exc.offset <= len(data)
    assert exc.records is not None and exc.what and str(exc).startswith("damaged at byte")
    report = verify_trace(io.BytesIO(bytes(damaged)))
    assert report.error_offset == exc.offset and not report.truncated
    assert verify_trace(io.BytesIO(data[:10])).truncated
