"""Writes the corpus of hostile trace files kept in tests/fuzz/corpus/ (run it to rebuild).

Each file aims at one way a reader or an analysis can be hurt: truncation, damage, bombs,
absurd sizes and nesting, odd but valid structure. Files that grew out of fuzzing crashes
are kept beside them under their own names.

    python tests/fuzz/make_corpus.py
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import msgpack
import zstandard as zstd

from tracer.trace import Close, Direction, Frame, Opcode, Open, TraceWriter
from tracer.trace.format import encode_preamble

HERE = Path(__file__).parent
CORPUS = HERE / "corpus"
SAMPLE = HERE.parents[1] / "traces" / "incremental.trace"


def written(records: list, **kwargs) -> bytes:
    buf = io.BytesIO()
    w = TraceWriter(buf, metadata={"corpus": True}, **kwargs)
    for r in records:
        w.write(r)
    w.close()
    return buf.getvalue()


def raw_stream(*objects: object, header: bool = True) -> bytes:
    """A preamble and one zstd frame holding these msgpack objects (after a real header)."""
    packed = b""
    if header:
        head = written([])
        plain = zstd.ZstdDecompressor().decompressobj().decompress(head[16:])
        packed = msgpack.Unpacker(io.BytesIO(plain), raw=False).unpack()
        packed = msgpack.packb(packed, use_bin_type=True)
    packed += b"".join(msgpack.packb(o, use_bin_type=True) for o in objects)
    return encode_preamble() + zstd.ZstdCompressor().compress(packed)


def create(text: object) -> bytes:
    return json.dumps({"type": "response.create", "input": text}).encode()


def corpus() -> dict[str, bytes]:
    sample = SAMPLE.read_bytes()
    out: dict[str, bytes] = {}
    out["empty.trace"] = b""
    out["preamble-only.trace"] = encode_preamble()
    out["half-sample.trace"] = sample[: len(sample) // 2]
    out["version-99.trace"] = encode_preamble(99) + sample[16:]
    flipped = bytearray(sample)
    for i in range(40, len(flipped), 997):
        flipped[i] ^= 0x5A
    out["flipped-bytes.trace"] = bytes(flipped)
    out["garbage.trace"] = bytes((i * 7919 + 13) % 251 for i in range(4096))
    # 64 MiB of zeros in a few kB: a decompression bomb after a valid preamble.
    out["zstd-bomb.trace"] = encode_preamble() + zstd.ZstdCompressor(level=19).compress(
        b"\0" * (64 << 20)
    )
    # A record that says it holds 2 GiB of payload (bin32) but ends at once.
    out["huge-declared-record.trace"] = encode_preamble() + zstd.ZstdCompressor().compress(
        b"\xc6\x7f\xff\xff\xff" + b"x" * 100
    )
    # Nested msgpack arrays, 100,000 deep.
    out["deep-msgpack.trace"] = encode_preamble() + zstd.ZstdCompressor().compress(
        b"\x91" * 100_000 + b"\xc0"
    )
    out["frame-with-string-conn.trace"] = raw_stream([2, "one", 5, 0, 1, b"{}"])
    out["frame-huge-time.trace"] = raw_stream(
        [2, 1, 2**63, 0, 1, b"{}"], [2, 1, -(2**63), 1, 1, b"x"]
    )
    out["unknown-record-kinds.trace"] = raw_stream([99, "future"], [7], [2, 1, 0, 0, 1, b"{}"])
    # Frame batches (format version 2) that lie about themselves.
    out["batch-mismatched-columns.trace"] = raw_stream(
        [6, 1, [1, 1], b"\x01\x11", None, b"ok\xffok"],
        [6, 1, [1, 2, 3], b"\x01\x11", None, b"a\xffb"],
    )
    out["batch-bad-time-planes.trace"] = raw_stream(
        [6, 1, b"\x01\x00\x00\x00", b"\x01", None, b"{}"],
        [6, 1, b"\x01\x02\x00\x00\x00", b"\x01\x11", None, b"{}\xff{}"],
    )
    n = (1 << 16) + 1
    out["batch-too-many-frames.trace"] = raw_stream(
        [6, 1, [0] * n, b"\x11" * n, None, b"\xff" * (n - 1)]
    )
    out["batch-hostile-sizes.trace"] = raw_stream(
        [6, [1, 2], [1, 1], b"\x12\x12", [2**40, -(2**40)], b""]
    )
    # Valid, at the edge: a one-second time unit and times 127 years in.
    edge = {"format": 2, "tracer": "corpus", "anchor_unix_ns": 0, "meta": {}, "time_unit_ns": 10**9}
    out["batch-second-unit.trace"] = raw_stream(
        [0, edge],
        [1, 1, 0, {"url": "/v1/responses"}],
        [6, 1, [4_000_000_000, 1, -1], b"\x01\x11\x11", None, create("x") + b"\xff{}\xff{"],
        header=False,
    )
    deep = "[" * 100_000 + "]" * 100_000
    out["deep-json-payloads.trace"] = written([
        Open(conn=1, t_ns=0, url="/v1/responses"),
        Frame(1, 1, Direction.CLIENT, Opcode.TEXT, deep.encode()),
        Frame(1, 2, Direction.CLIENT, Opcode.TEXT, create(json.loads("[" * 900 + "]" * 900))),
        Frame(1, 3, Direction.SERVER, Opcode.TEXT, b'{"type":"response.created","response":'
              + deep.encode() + b"}"),
        Frame(1, 4, Direction.SERVER, Opcode.TEXT, b'{"type":"response.output_text.delta",'
              b'"delta":' + b"[" * 5000 + b"]" * 5000 + b"}"),
        Close(conn=1, t_ns=5, code=1000, by="client"),
    ])  # fmt: skip
    out["many-connections.trace"] = written(
        [Open(conn=i, t_ns=i, url=f"/v1/responses?{i}") for i in range(1, 20_001)]
        + [Frame(i, 30_000 + i, Direction.CLIENT, Opcode.TEXT, create("x"))
           for i in range(1, 20_001)]
    )  # fmt: skip
    out["odd-events.trace"] = written([
        Open(conn=1, t_ns=0, url="/v1/responses"),
        Frame(1, 1, Direction.CLIENT, Opcode.TEXT, create({"not": "a list"})),
        Frame(1, 2, Direction.SERVER, Opcode.TEXT, b'{"type":"response.completed","response":'
              b'{"id":7,"usage":{"input_tokens":"many","input_tokens_details":[1]},'
              b'"output":[1,"two",{"type":"message","content":"not a list"}]}}'),
        Frame(1, 3, Direction.SERVER, Opcode.TEXT, b'{"type":"error","error":"just a string"}'),
        Frame(1, 4, Direction.SERVER, Opcode.BINARY, b"\xff\xfe\x00"),
        Frame(1, 5, Direction.SERVER, Opcode.TEXT, b"\xff\xfe not utf-8", fin=False),
        Frame(1, 6, Direction.CLIENT, Opcode.CONT, b"orphan continuation"),
        Frame(1, 7, Direction.CLIENT, Opcode.CLOSE, b"\x03"),
        Frame(7, 8, Direction.SERVER, Opcode.TEXT, b'{"type":"response.created"}'),
    ])  # fmt: skip
    out.update(claims())
    return out


def repeated_batches(conn: int, batch: list, times: int, opens: list | None = None) -> bytes:
    """A trace of one frame batch repeated ``times`` times, compressed as it is packed: a
    small file that claims a huge number of frames."""
    head = written([])
    plain = zstd.ZstdDecompressor().decompressobj().decompress(head[16:])
    header = msgpack.packb(msgpack.Unpacker(io.BytesIO(plain), raw=False).unpack())
    packed = msgpack.packb(batch, use_bin_type=True)
    c = zstd.ZstdCompressor(level=19).compressobj()
    parts = [encode_preamble(), c.compress(header)]
    parts += [c.compress(msgpack.packb(o, use_bin_type=True)) for o in opens or []]
    parts += [c.compress(packed) for _ in range(times)]
    return b"".join([*parts, c.flush()])


def claims() -> dict[str, bytes]:
    """The security review's small traces that claim huge sessions (docs/security.md)."""
    n = 1 << 16
    return {
        # 65 million empty frames in about 40 KB.
        "sixty-five-million-empty-frames.trace": repeated_batches(
            1, [6, 1, [0] * n, b"\x11" * n, None, b"\xff" * (n - 1)], 992,
            opens=[[1, 1, 0, {"url": "/v1/responses"}]],
        ),
        # A million turns: one create each, in a few kB.
        "a-million-turns.trace": repeated_batches(
            1, [6, 1, [1] * n, b"\x01" * n, None, b"\xff".join([create("x")] * n)], 16,
            opens=[[1, 1, 0, {"url": "/v1/responses"}]],
        ),
        **hostile_sizes(),
    }  # fmt: skip


def hostile_sizes() -> dict[str, bytes]:
    """Small files whose decompressed payloads or JSON items are huge (issue #26): every
    command must stay within the time and memory bounds on them."""
    opened = [1, 1, 0, {"url": "/v1/responses"}]
    ask = [2, 1, 1, 0, 1, create("hi")]  # a v1 frame: conn, dt, client, text, payload
    mib = 1 << 20
    delta = b'{"type":"response.output_text.delta","item_id":"m","delta":"'
    delta += b"a" * (mib - len(delta) - 2) + b'"}'
    items = [{"role": "user", "content": "x"}] * 1_000_000
    turns = []
    for k in range(2000):  # each turn resends the whole history so far
        history = [{"type": "message", "role": "user", "content": f"m{i}"} for i in range(k + 1)]
        turns.append([2, 1, 1, 0, 1, json.dumps({"type": "response.create", "input": history})])
        done = {"type": "response.completed", "response": {"id": f"r{k}", "output": []}}
        turns.append([2, 1, 1, 1, 1, json.dumps(done).encode()])
    for t in turns:
        t[5] = t[5].encode() if isinstance(t[5], str) else t[5]
    top = 2**64 - 1
    return {
        # 1,024 server frames of 1 MiB each: a gibibyte of payload in a few tens of kB.
        "a-gibibyte-of-deltas.trace": repeated_batches(
            1, [6, 1, [1], b"\x11", None, delta], 1024, opens=[opened, ask]
        ),
        # One create with a million input items.
        "a-million-input-items.trace": raw_stream(opened, [2, 1, 1, 0, 1, create(items)]),
        # 2,000 turns, each resending the whole history: two million items in all.
        "two-thousand-full-resends.trace": raw_stream(opened, *turns),
        # A connection id that fits no signed 64-bit column.
        "connection-id-2-64-minus-1.trace": raw_stream(
            [1, top, 0, {"url": "/v1/responses"}], [2, top, 1, 0, 1, create("hi")]
        ),
    }


def main() -> None:
    CORPUS.mkdir(exist_ok=True)
    for name, data in corpus().items():
        (CORPUS / name).write_bytes(data)
        print(f"{name}: {len(data):,} bytes")


if __name__ == "__main__":
    main()
