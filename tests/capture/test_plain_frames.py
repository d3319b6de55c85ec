"""PlainFrames parses and frames the common frames itself and hands the rest to the
websockets protocol: whatever the frames and wherever the reads cut them, the frames out,
what the protocol answers (pongs, close replies), its state and its errors are the same as
when the protocol parses every byte itself."""

from __future__ import annotations

import itertools
import os
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from tracer.wire.plain import PlainFrames

LIMIT = 300


def _protocol(server: bool) -> ServerProtocol | ClientProtocol:
    if server:  # reads masked frames, as from a client
        return ServerProtocol(state=State.OPEN, max_size=LIMIT)
    return ClientProtocol(parse_uri("ws://127.0.0.1/"), state=State.OPEN, max_size=LIMIT)


def _wire(opcode: int, payload: bytes, fin: bool, rsv: int, masked: bool) -> bytes:
    """A frame's bytes, any of them wrong if asked (reserved bits, masking)."""
    b1 = (0x80 if fin else 0) | rsv << 4 | opcode
    bit = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        head = bytes((b1, bit | n))
    elif n < 65536:
        head = struct.pack("!BBH", b1, bit | 126, n)
    else:
        head = struct.pack("!BBQ", b1, bit | 127, n)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


frames = st.lists(
    st.tuples(
        st.sampled_from([1, 1, 1, 2, 0, 9, 10, 8, 3]),  # mostly text; fragments, controls, bad
        st.one_of(st.binary(max_size=20), st.binary(min_size=120, max_size=400)),
        st.booleans() | st.just(True),  # fin
        st.sampled_from([0, 0, 0, 0, 4, 2]),  # reserved bits, now and then
        st.sampled_from([True, True, True, False]),  # masked as it should be, mostly
    ),
    max_size=30,
)


def _stream(server: bool, items: list[tuple[int, bytes, bool, int, bool]]) -> bytes:
    out = []
    for opcode, payload, fin, rsv, right in items:
        if opcode == 8:
            payload = struct.pack("!H", 1000) + payload[:20].hex().encode()
        elif opcode in (9, 10):
            payload = payload[:125]
        out.append(_wire(opcode, payload, fin, rsv, masked=(server == right)))
    return b"".join(out)


def _cuts(data: bytes, points: list[int]) -> list[bytes]:
    marks = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(marks) if b > a]


def _run(server: bool, chunks: list[bytes], plain: bool, eof: bool) -> tuple[object, ...]:
    p = _protocol(server)
    got: list[tuple[Opcode, bytes, bool]] = []
    sent: list[bytes] = []
    reader = PlainFrames(p) if plain else None
    for chunk in chunks:
        if reader is not None:
            events = reader.receive(chunk)
        else:
            p.receive_data(chunk)
            events = p.events_received()  # type: ignore[assignment]
        got += [(f.opcode, bytes(f.data), f.fin) for f in events]
        sent += p.data_to_send()
        if p.parser_exc is not None:
            break
    if eof and p.parser_exc is None:
        if reader is not None:
            reader.eof()
        else:
            p.receive_eof()
        got += [(f.opcode, bytes(f.data), f.fin) for f in p.events_received()]  # type: ignore[attr-defined]
    sent += p.data_to_send()
    if not server:  # a client masks what it sends: compare the frames, not their masks
        sent = [_unmask(s) for s in sent]
    return got, sent, p.state, repr(p.parser_exc), p.cur_size


def _unmask(data: bytes) -> bytes:
    if len(data) < 2 or not data[1] & 0x80:
        return data
    n, h = data[1] & 0x7F, 2
    if n == 126:
        h = 4
    elif n == 127:
        h = 10
    mask = data[h : h + 4]
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(data[h + 4 :]))
    return data[:h] + body


@settings(max_examples=400, deadline=None)
@given(server=st.booleans(), items=frames, points=st.lists(st.integers(0, 10**6), max_size=12),
       eof=st.booleans())  # fmt: skip
def test_the_plain_way_reads_as_the_protocol_does(server, items, points, eof):
    data = _stream(server, items)
    chunks = _cuts(data, points)
    assert _run(server, chunks, True, eof) == _run(server, chunks, False, eof)


def test_plain_frames_are_parsed_here_and_the_rest_by_the_protocol():
    """The check above would pass with everything handed to the protocol: this one fails
    then. Three text frames, one cut across two reads, and a ping."""
    p = _protocol(server=True)
    reader = PlainFrames(p)
    data = b"".join(_wire(1, b"x" * k, True, 0, True) for k in (5, 130, 7))
    data += _wire(9, b"hi", True, 0, True)
    calls = []
    real = p.receive_data
    p.receive_data = lambda chunk: (calls.append(chunk), real(chunk))[1]  # type: ignore[method-assign]
    got = reader.receive(data[:20]) + reader.receive(data[20:])
    assert [(f.opcode, len(f.data)) for f in got] == [
        (Opcode.TEXT, 5), (Opcode.TEXT, 130), (Opcode.TEXT, 7), (Opcode.PING, 2)
    ]  # fmt: skip
    assert calls == [_wire_unmasked_len(data, 3)]  # the ping alone
    assert p.data_to_send() == [Frame(Opcode.PONG, b"hi").serialize(mask=False)]


def _wire_unmasked_len(data: bytes, index: int) -> bytes:
    """The bytes of frame ``index`` of ``data`` (whole frames, masked, short lengths)."""
    pos = 0
    for _ in range(index):
        n = data[pos + 1] & 0x7F
        h = pos + 2 + (2 if n == 126 else 0)
        n = struct.unpack("!H", data[pos + 2 : pos + 4])[0] if n == 126 else n
        pos = h + 4 + n
    n = data[pos + 1] & 0x7F
    return data[pos : pos + 2 + 4 + n]


@given(payload=st.binary(max_size=70000), text=st.booleans(), server=st.booleans())
@settings(max_examples=60, deadline=None)
def test_a_plain_frame_is_the_bytes_the_protocol_would_send(payload, text, server):
    p = _protocol(server)
    opcode = Opcode.TEXT if text else Opcode.BINARY
    raw = PlainFrames(p).frame(opcode, payload, True)
    assert raw is not None
    (p.send_text if text else p.send_binary)(payload)
    (expected,) = p.data_to_send()
    if server:
        assert raw == expected
    else:
        assert _unmask(raw) == _unmask(expected) and raw[1] & 0x80


def test_the_protocol_sends_what_is_not_a_whole_plain_message():
    p = _protocol(server=True)
    plain = PlainFrames(p)
    assert plain.frame(Opcode.TEXT, b"a", False) is None  # a fragment
    assert plain.frame(Opcode.PING, b"", True) is None
    p.send_text(b"a", False)
    assert plain.frame(Opcode.TEXT, b"b", True) is None  # inside a fragmented message
    p.send_continuation(b"b", True)
    assert plain.frame(Opcode.TEXT, b"c", True) is not None
    p.send_close(1000, "")
    assert plain.frame(Opcode.TEXT, b"c", True) is None  # closing


def test_frames_sent_with_the_upgrade_response_are_read(tmp_path):
    """A server may write its first frames in the same packet as its 101 response, the
    last of them cut short: the client side reads them all, in order, once."""
    import asyncio
    import base64
    import hashlib

    from tracer.wire.websocket import connect_websocket

    # The second looks like frames of its own wherever it is cut at an even byte.
    first, second = b'{"type":"session.created"}', b"\x81\x05" * 1500

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key"))  # fmt: skip
        accept = base64.b64encode(
            hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
        )
        frames = _wire(1, first, True, 0, False) + _wire(2, second, True, 0, False)
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            + frames[:100]
        )  # fmt: skip
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(frames[100:])
        await writer.drain()
        await reader.read()  # until the client goes

    async def main() -> list[tuple[Opcode, bytes]]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        ws = await connect_websocket(f"ws://127.0.0.1:{port}/")
        got = []
        for _ in range(2):
            frame = await ws.recv_frame()
            assert frame is not None
            got.append((frame.opcode, bytes(frame.data)))
        ws.abort()
        server.close()
        return got

    assert asyncio.run(main()) == [(Opcode.TEXT, first), (Opcode.BINARY, second)]
