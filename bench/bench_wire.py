"""The proxy's per-frame cost of WebSocket framing: small model-text deltas parsed from a
read buffer and framed again, by websockets' protocol alone and with tracer's PlainFrames
(tracer/wire/plain.py) in front of it, side by side in one run. No sockets: the CPU a relay
spends on frames, without the network's noise.

Run: python bench/bench_wire.py [--frames 20000] [--read 8192]
"""

from __future__ import annotations

import argparse
import json
import time

from bench_proxy import DELTA, WORDS
from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from tracer.wire.plain import PlainFrames


def deltas(n: int) -> list[bytes]:
    return [
        json.dumps({**DELTA, "delta": WORDS[i % len(WORDS)], "sequence_number": i}).encode()
        for i in range(n)
    ]


def wire(payloads: list[bytes], masked: bool) -> bytes:
    sender = (
        ClientProtocol(parse_uri("ws://x/"), state=State.OPEN)
        if masked
        else ServerProtocol(state=State.OPEN)
    )
    for p in payloads:
        sender.send_text(p)
    return b"".join(sender.data_to_send())


def parse(data: bytes, read: int, server: bool, plain: bool) -> tuple[float, int]:
    """Seconds to turn ``data``, arriving ``read`` bytes at a time, into frames; frames."""
    p = (
        ServerProtocol(state=State.OPEN, max_size=None)
        if server
        else ClientProtocol(parse_uri("ws://x/"), state=State.OPEN, max_size=None)
    )
    reader = PlainFrames(p) if plain else None
    n = 0
    start = time.perf_counter()
    for pos in range(0, len(data), read):
        chunk = data[pos : pos + read]
        if reader is not None:
            n += len(reader.receive(chunk))
        else:
            p.receive_data(chunk)
            n += len(p.events_received())
    return time.perf_counter() - start, n


def frame(payloads: list[bytes], client: bool, plain: bool) -> tuple[float, int]:
    """Seconds to frame every payload as a text frame (masked on the client side); frames."""
    p = (
        ClientProtocol(parse_uri("ws://x/"), state=State.OPEN)
        if client
        else ServerProtocol(state=State.OPEN)
    )
    maker = PlainFrames(p)
    start = time.perf_counter()
    if plain:
        out = [maker.frame(Opcode.TEXT, x, True) for x in payloads]
    else:
        for x in payloads:
            p.send_text(x)
        out = p.data_to_send()
    return time.perf_counter() - start, len(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--read", type=int, default=8192, help="bytes a read hands over")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    payloads = deltas(args.frames)
    from_server, from_client = wire(payloads, masked=False), wire(payloads, masked=True)
    cases = {
        "parse a server's frames": lambda plain: parse(from_server, args.read, False, plain),
        "parse a client's (masked)": lambda plain: parse(from_client, args.read, True, plain),
        "frame for a client": lambda plain: frame(payloads, False, plain),
        "frame for a server (masked)": lambda plain: frame(payloads, True, plain),
    }
    print(f"{args.frames} deltas of model text, reads of {args.read} bytes; best of "
          f"{args.rounds} interleaved rounds, us a frame")  # fmt: skip
    print(f"{'':30} {'websockets':>11} {'PlainFrames':>12} {'ratio':>7}")
    for name, run in cases.items():
        best = {False: float("inf"), True: float("inf")}
        for _ in range(args.rounds):
            for plain in (False, True):
                took, n = run(plain)
                assert n == args.frames, (name, plain, n)  # every frame, both ways
                best[plain] = min(best[plain], took)
        a, b = (best[k] / args.frames * 1e6 for k in (False, True))
        print(f"{name:30} {a:11.2f} {b:12.2f} {b / a:6.2f}x")


if __name__ == "__main__":
    main()
