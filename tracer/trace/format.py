"""Constants of the trace file format: the preamble, versions, and zstd settings."""

from __future__ import annotations

import struct
import sys
from array import array

import zstandard as zstd

from tracer.trace.errors import TraceDamaged, TraceError, TraceTruncated

__all__ = [
    "FORMAT_VERSION",
    "MAX_BATCH_FRAMES",
    "MAX_TIME_UNIT_NS",
    "PREAMBLE_SIZE",
    "RECORDER_TIME_UNIT_NS",
    "T_LIMIT",
    "TraceDamaged",
    "TraceError",
    "TraceTruncated",
    "compression_params",
    "encode_preamble",
    "join_times",
    "parse_preamble",
    "split_times",
    "time_bounds",
]

FORMAT_VERSION = 2
"""The format version this tracer writes. It reads every version up to this one."""

T_LIMIT = 1 << 62
"""Times (ns, after the anchor) lie strictly within ±T_LIMIT: 146 years, and every 64-bit
column of an export holds them."""

MAX_TIME_UNIT_NS = 1_000_000_000
"""The coarsest time unit a header may declare: one second."""

RECORDER_TIME_UNIT_NS = 1_000
"""The recorder's default time unit, a microsecond: finer than anything an event loop can
measure, as in pcap, and each frame's time then costs about 10 fewer bits of entropy than
in nanoseconds (see docs/format.md)."""

MAX_BATCH_FRAMES = 1 << 16
"""The most frames one frame-batch record may hold; readers call a larger batch damage,
which bounds the memory one record can expand to."""

# A zstd *skippable frame* (magic 0x184D2A5E) carrying b"tracer" and the format version.
# `zstd -d` skips it, so a trace still decompresses with the stock tool, while tracer
# can recognise a file and its version from its first 16 bytes without decompressing.
_SKIPPABLE_MAGIC = 0x184D2A5E
_TAG = b"tracer"
_PREAMBLE = struct.Struct("<II6sH")
PREAMBLE_SIZE = _PREAMBLE.size  # 16

LIVE_LEVEL = 3
"""zstd level while recording: fast enough to keep up with a busy proxy."""

COMPACT_LEVEL = 19
"""zstd level when a finished trace is recompressed (``tracer compact``)."""

COMPACT_LARGE = 32 * 1024 * 1024
COMPACT_LARGE_LEVEL = 9
"""``tracer compact``'s level for a trace of more than ``COMPACT_LARGE`` bytes of records:
level 19 runs at a few MB/s and needs hundreds of MB; level 9 keeps the cost linear."""

WINDOW_LOG = 25
"""A 32 MiB window with long-distance matching: a session that resends its history each
turn then compresses to barely more than an incremental one (see docs/format.md). The
window is also what every reader of the trace holds: 32 MiB, not the 128 MiB of traces
written before, for 0.1-0.5% more bytes (a 120-turn full-resend session; six such
sessions interleaved)."""

LIVE_WINDOW_LOG = 24
"""The recorder's window, 16 MiB: the window is memory the recorder holds for as long as it
runs, and a turn's resent history is most often within the last few MiB. On a 120-turn
full-resend session (68 MB of payload) the live trace is 1.3% larger than with 128 MiB,
and the recorder holds 19 MB instead of 75 (bench/bench_compact.py has the stop's figures);
the stop's recompression sizes its window to the trace, up to ``WINDOW_LOG``."""

MAX_WINDOW_LOG = 27
MAX_WINDOW_SIZE = 1 << MAX_WINDOW_LOG
"""The largest window the reader accepts, bounding a hostile file's decoder memory."""


_INT32 = 1 << 31
_ARRAY_CODES = {4: "i", 8: "q"}
assert array("i").itemsize == 4 and array("q").itemsize == 8


def split_times(values: list[int]) -> bytes:
    """A frame batch's time column: little-endian signed integers of 4 bytes (8 when one
    needs it), stored byte plane by byte plane (first the lowest byte of every value, then the
    next, ...), as Parquet's BYTE_STREAM_SPLIT. The planes of the high bytes are nearly
    constant, and zstd then codes each plane on its own statistics."""
    width = 4 if min(values) >= -_INT32 and max(values) < _INT32 else 8
    column = array(_ARRAY_CODES[width], values)
    if sys.byteorder == "big":
        column.byteswap()
    raw = column.tobytes()
    return b"".join([raw[k::width] for k in range(width)])


def join_times(column: bytes, n: int) -> list[int] | None:
    """The ``n`` values of a time column written by ``split_times``; None if it is not one."""
    width, rest = divmod(len(column), n)
    if rest or width not in _ARRAY_CODES:
        return None
    raw = bytearray(len(column))
    for k in range(width):
        raw[k::width] = column[k * n : (k + 1) * n]
    values = array(_ARRAY_CODES[width], raw)
    if sys.byteorder == "big":
        values.byteswap()
    return values.tolist()


def time_bounds(unit_ns: int) -> tuple[int, int]:
    """Exclusive bounds of a time stored in units of ``unit_ns`` (its ns value within ±T_LIMIT)."""
    hi = -(-T_LIMIT // unit_ns)
    return -hi, hi


def encode_preamble(version: int = FORMAT_VERSION) -> bytes:
    """The 16 bytes every trace file starts with."""
    return _PREAMBLE.pack(_SKIPPABLE_MAGIC, _PREAMBLE.size - 8, _TAG, version)


def _what_it_looks_like(head: bytes) -> str:
    """A hint for a file that is not a trace but one ``tracer import`` reads."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith((b"{", b"[")):
        return " (it looks like JSON: a HAR file? `tracer import FILE -o FILE.trace` converts one)"
    return ""


def parse_preamble(data: bytes) -> int:
    """Check a file's first bytes and return its format version."""
    if len(data) < PREAMBLE_SIZE:
        if not data:
            raise TraceError("not a tracer trace: the file is empty")
        if encode_preamble()[: PREAMBLE_SIZE - 2].startswith(data[: PREAMBLE_SIZE - 2]):
            raise TraceTruncated("truncated: the file ends inside its 16-byte preamble")
        raise TraceError(f"not a tracer trace: the file is only {len(data)} bytes long")
    magic, size, tag, version = _PREAMBLE.unpack_from(data)
    if magic != _SKIPPABLE_MAGIC or size != _PREAMBLE.size - 8 or tag != _TAG:
        raise TraceError(
            "not a tracer trace: the file does not start with the tracer preamble"
            + _what_it_looks_like(data)
        )
    if version < 1 or version > FORMAT_VERSION:
        raise TraceError(
            f"trace format version {version} is not supported by this tracer "
            f"(it reads versions 1 to {FORMAT_VERSION}); upgrade tracer"
        )
    return int(version)


COMPACT_TABLE_LOG = 22
"""The compressor's match tables when a trace is recompressed: 4 MiB entries each at most.
Level 19's own (2^22 and 2^24 entries, 80 MiB) cost a recorder's stop most of its memory
for about 1% of the size (bench/bench_compact.py)."""


def compression_params(
    level: int, window_log: int = WINDOW_LOG, *, table_log: int | None = None
) -> zstd.ZstdCompressionParameters:
    """zstd parameters for a trace written at ``level``: large window, long-distance matching;
    ``table_log`` caps the match tables (hash and chain) at 2**table_log entries."""
    caps = {}
    if table_log is not None:
        own = zstd.ZstdCompressionParameters.from_level(level, window_log=window_log)
        caps = {
            "hash_log": min(own.hash_log, table_log),
            "chain_log": min(own.chain_log, table_log),
        }
    return zstd.ZstdCompressionParameters.from_level(
        level,
        window_log=window_log,
        enable_ldm=True,
        write_checksum=True,
        **caps,
    )
