"""Trace format benchmark: write and read speed, and size against gzip and zstd --long -19.

Run: python bench/bench_trace.py [--turns 40]
Everything is measured in one run, side by side, so the ratios hold on a noisy machine.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import zstandard as zstd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from session import session_frames

from tracer.trace import Frame, Open, TraceReader, TraceWriter
from tracer.trace.compact import compact_trace
from tracer.trace.format import RECORDER_TIME_UNIT_NS, compression_params
from tracer.views.frames import frame_json


def zstd19_long(raw: bytes) -> int:
    """Size of `zstd --long=27 -19` of the raw payloads (the CLI if present)."""
    if shutil.which("zstd"):
        out = subprocess.run(
            ["zstd", "--long=27", "-19", "-q", "-c"], input=raw, capture_output=True, check=True
        ).stdout
        return len(out)
    params = zstd.ZstdCompressionParameters.from_level(19, window_log=27, enable_ldm=True)
    return len(zstd.ZstdCompressor(compression_params=params).compress(raw))


def write_live(
    frames: list[Frame],
    *,
    flush_interval: float | None = 0.1,
    level: int = 3,
    time_unit_ns: int = RECORDER_TIME_UNIT_NS,
) -> bytes:
    """Write as the recorder does live: level 3, a block flush each 100 ms of *trace* time.

    The clock follows the frames' timestamps, so the file has as many flushed blocks as a
    recording of this session made in real time would have.
    """
    clock_now = [0]
    buf = io.BytesIO()
    w = TraceWriter(
        buf,
        clock=lambda: clock_now[0],
        flush_interval=flush_interval,
        level=level,
        time_unit_ns=time_unit_ns,
    )
    w.write(Open(conn=1, t_ns=0, url="ws://127.0.0.1/v1/responses"))
    for f in frames:
        clock_now[0] = f.t_ns
        w.write(f)
    w.close()
    return buf.getvalue()


def write_speed(frames: list[Frame]) -> float:
    """Seconds to write the frames as fast as they come, flushing each 100 ms of wall time."""
    buf = io.BytesIO()
    start = time.perf_counter()
    w = TraceWriter(buf, flush_interval=0.1, time_unit_ns=RECORDER_TIME_UNIT_NS)
    for f in frames:
        w.write(f)
    w.close()
    return time.perf_counter() - start


def best_of(n: int, fn):
    best = None
    for _ in range(n):
        t0 = time.perf_counter()
        result = fn()
        dt = time.perf_counter() - t0
        best = dt if best is None or dt < best else best
    return best, result


def read_records(data: bytes) -> int:
    n = 0
    for _ in TraceReader(io.BytesIO(data)):
        n += 1
    return n


def read_unpacked(data: bytes) -> int:
    """Decompress and msgpack-unpack only, building no record objects: the issue's measure."""
    body = zstd.ZstdDecompressor(max_window_size=1 << 27).stream_reader(io.BytesIO(data[16:]))
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    n = 0
    while chunk := body.read(1 << 20):
        unpacker.feed(chunk)
        for _ in unpacker:
            n += 1
    return n


def read_json(data: bytes, loads) -> int:
    n = 0
    for r in TraceReader(io.BytesIO(data)):
        if type(r) is Frame:
            loads(r.payload)
            n += 1
    return n


def run(style: str, turns: int) -> dict:
    frames = list(session_frames(turns=turns, full_resend=(style == "full-resend")))
    raw = b"".join(f.payload for f in frames)
    mb = len(raw) / 1e6
    live = write_live(frames)
    write_s, _ = best_of(3, lambda: write_speed(frames))
    compacted = io.BytesIO()
    compact_trace(io.BytesIO(live), compacted)
    compacted_b = compacted.getvalue()
    jsonl = b"".join(json.dumps(frame_json(f, payload=True)).encode() + b"\n" for f in frames)
    gz = len(gzip.compress(jsonl, 6))
    z19 = zstd19_long(raw)
    read_s, _ = best_of(5, lambda: read_records(live))
    read_c_s, _ = best_of(5, lambda: read_records(compacted_b))
    unpack_s, _ = best_of(5, lambda: read_unpacked(live))
    json_s, _ = best_of(3, lambda: read_json(live, json.loads))
    row = {
        "style": style,
        "frames": len(frames),
        "raw_bytes": len(raw),
        "gzip_jsonl_bytes": gz,
        "zstd19_long_bytes": z19,
        "live_trace_bytes": len(live),
        "compact_trace_bytes": len(compacted_b),
        "live_vs_zstd19": len(live) / z19,
        "compact_vs_zstd19": len(compacted_b) / z19,
        "write_mb_s": mb / write_s,
        "write_frames_s": len(frames) / write_s,
        "read_mb_s": mb / read_s,
        "read_frames_s": len(frames) / read_s,
        "read_compacted_mb_s": mb / read_c_s,
        "unpack_mb_s": mb / unpack_s,
        "read_json_mb_s": mb / json_s,
    }
    try:
        import orjson

        orjson_s, _ = best_of(3, lambda: read_json(live, orjson.loads))
        row["read_orjson_mb_s"] = mb / orjson_s
    except ImportError:
        pass
    return row


def compacted(data: bytes, **kwargs) -> int:
    out = io.BytesIO()
    compact_trace(io.BytesIO(data), out, **kwargs)
    return len(out.getvalue())


def breakdown(style: str, turns: int) -> None:
    """What separates a trace from zstd -19 of the bare payloads: each part removed in turn."""
    frames = list(session_frames(turns=turns, full_resend=(style == "full-resend")))
    raw = b"".join(f.payload for f in frames)
    z19 = zstd19_long(raw)
    zero = [f._replace(t_ns=0) for f in frames]
    level3 = zstd.ZstdCompressor(compression_params=compression_params(3)).compress(raw)
    live = write_live(frames)
    rows = [
        ("zstd --long=27 -3 of the bare payloads", len(level3)),
        ("live trace", len(live)),
        ("live, no flushes", len(write_live(frames, flush_interval=None))),
        ("live, no flushes, times all 0", len(write_live(zero, flush_interval=None))),
        ("compacted", compacted(live)),
        ("compacted, times all 0", compacted(write_live(zero))),
        ("compacted, times in ns", compacted(write_live(frames, time_unit_ns=1))),
        ("compacted, times in ms", compacted(live, time_unit_ns=1_000_000)),
    ]
    print(f"== {style}: zstd --long=27 -19 of the bare payloads {z19 / 1e3:.1f} KB")
    for name, size in rows:
        print(f"   {name:40} {size / 1e3:8.1f} KB  {size / z19:.3f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--turns", type=int, default=40)
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    ap.add_argument("--breakdown", action="store_true", help="print where the bytes go")
    args = ap.parse_args()
    if args.breakdown:
        for style in ("incremental", "full-resend"):
            breakdown(style, args.turns)
        return
    rows = [run(style, args.turns) for style in ("incremental", "full-resend")]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        print(f"== {r['style']}: {r['frames']} frames, {r['raw_bytes'] / 1e6:.2f} MB raw payload")
        print(f"   gzip -6 of JSONL       {r['gzip_jsonl_bytes'] / 1e3:10.1f} KB")
        print(f"   zstd --long=27 -19     {r['zstd19_long_bytes'] / 1e3:10.1f} KB")
        print(
            f"   trace, live (lvl 3)    {r['live_trace_bytes'] / 1e3:10.1f} KB"
            f"   {r['live_vs_zstd19']:.2f}x zstd-19  (target <= 1.5x)"
        )
        print(
            f"   trace, compacted (19)  {r['compact_trace_bytes'] / 1e3:10.1f} KB"
            f"   {r['compact_vs_zstd19']:.2f}x zstd-19  (target <= 1.1x)"
        )
        print(
            f"   write                  {r['write_mb_s']:10.0f} MB/s of raw payload,"
            f" {r['write_frames_s']:,.0f} frames/s"
        )
        print(
            f"   read, records only     {r['read_mb_s']:10.0f} MB/s  (target >= 400),"
            f" {r['read_frames_s']:,.0f} frames/s"
        )
        print(f"   ... of the compacted   {r['read_compacted_mb_s']:10.0f} MB/s")
        print(f"   zstd + msgpack only    {r['unpack_mb_s']:10.0f} MB/s  (no record objects)")
        print(f"   read + json.loads      {r['read_json_mb_s']:10.0f} MB/s")
        if "read_orjson_mb_s" in r:
            print(f"   read + orjson.loads    {r['read_orjson_mb_s']:10.0f} MB/s")


if __name__ == "__main__":
    main()
