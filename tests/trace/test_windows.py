"""The zstd window a trace declares is memory: the recorder holds it while it runs, and every
reader holds it while it reads. Live traces declare 16 MiB, finished ones 32 MiB at most;
traces of earlier versions (128 MiB) still read."""

from __future__ import annotations

import io

import zstandard as zstd

from tracer.capture.recorder import Recorder
from tracer.trace import Direction, Frame, Opcode, Open, TraceReader, TraceWriter
from tracer.trace.compact import compact_trace
from tracer.trace.format import PREAMBLE_SIZE, compression_params

MiB = 1 << 20


def _window(data: bytes) -> int:
    return zstd.get_frame_parameters(data[PREAMBLE_SIZE:]).window_size


def _frames(writer: TraceWriter) -> None:
    writer.write(Open(conn=1, t_ns=0, url="/v1/responses"))
    for i in range(50):
        writer.write(Frame(1, i, Direction.SERVER, Opcode.TEXT, b'{"type":"x","n":%d}' % i))


def test_a_recording_declares_a_16_mib_window(tmp_path) -> None:
    path = tmp_path / "live.trace"
    with Recorder(path) as recorder:
        conn = recorder.open_connection("/v1/responses")
        recorder.frame(conn, Direction.SERVER, Opcode.TEXT, b'{"type":"x"}')
    assert _window(path.read_bytes()) == 16 * MiB


def test_a_finished_trace_declares_32_mib_at_most() -> None:
    out = io.BytesIO()
    writer = TraceWriter(out, flush_interval=None)
    _frames(writer)
    writer.close()
    assert _window(out.getvalue()) == 32 * MiB
    compacted = io.BytesIO()
    compact_trace(io.BytesIO(out.getvalue()), compacted)
    assert _window(compacted.getvalue()) <= 32 * MiB


def test_a_trace_with_the_old_128_mib_window_still_reads() -> None:
    out = io.BytesIO()
    writer = TraceWriter(out, flush_interval=None, window_log=27)
    _frames(writer)
    writer.close()
    data = out.getvalue()
    assert _window(data) == 128 * MiB
    assert compression_params(3, 27).window_log == 27
    frames = [r for r in TraceReader(io.BytesIO(data)) if type(r) is Frame]
    assert len(frames) == 50
