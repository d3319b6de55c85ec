"""The common frames of a relay, framed and parsed without websockets' generators.

A relay spends most of its time on one kind of frame: a whole text or binary message in one
frame, with no extension. websockets parses each through a chain of generator coroutines and
builds it again the same way (about 6 us and 3 us a frame); :class:`PlainFrames` parses and
frames those itself, and hands every other frame (control frames, fragments, reserved bits,
compressed or malformed frames, anything too large) to the websockets protocol whole, so that
the protocol is at a frame boundary whenever this class reads a header, and keeps its state
(fragments, the closing handshake, pings answered, errors) as if it had parsed every frame.
"""

from __future__ import annotations

import os
import struct

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import Side, State
from websockets.server import ServerProtocol

try:  # websockets' C mask, as its own parser uses
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover (a build without the extension)
    from websockets.utils import apply_mask

__all__ = ["PlainFrames", "limit_attribute"]

_OPCODES = {1: Opcode.TEXT, 2: Opcode.BINARY}
_HEAD_16 = struct.Struct("!BBH")
_HEAD_64 = struct.Struct("!BBQ")


def limit_attribute(protocol: ServerProtocol | ClientProtocol) -> str:
    """The protocol's attribute that holds the largest payload it accepts: websockets up to
    15 calls it ``max_size``, 16 ``max_message_size``."""
    return "max_message_size" if hasattr(protocol, "max_message_size") else "max_size"


class PlainFrames:
    """Incoming bytes to frames, and outgoing data frames to bytes, for ``protocol``.

    ``receive(data)`` returns the frames ``data`` completes, in order: plain ones parsed
    here, the others as the protocol parsed them (its ``events_received``). ``frame(...)``
    returns a plain frame's bytes, or None when the protocol must send it (a fragment, a
    control frame, an extension, a connection not open). Without extensions only: with
    permessage-deflate every frame takes the protocol's way.
    """

    __slots__ = ("_buf", "_limit", "_mask_out", "_masked_in", "_on", "_rest", "protocol")

    def __init__(self, protocol: ServerProtocol | ClientProtocol) -> None:
        self.protocol = protocol
        self._on = not protocol.extensions  # False: every byte goes to the protocol
        self._buf = bytearray()  # the start of a plain frame not yet complete
        self._rest = 0  # bytes the protocol still needs to finish the frame it is parsing
        self._masked_in = protocol.side is Side.SERVER  # a server reads masked frames
        self._mask_out = protocol.side is Side.CLIENT
        self._limit = limit_attribute(protocol)  # a frame over the protocol's limit is its own

    # Over 60 lines: one pass over a read's frames, each header step inline (no call a frame).
    def receive(self, data: bytes) -> list[Frame]:
        p = self.protocol
        if not self._on:
            p.receive_data(data)
            return p.events_received()  # type: ignore[return-value]
        out: list[Frame] = []
        if self._rest:  # the rest of a frame the protocol is parsing
            k = min(self._rest, len(data))
            p.receive_data(data[:k])
            self._rest -= k
            out += p.events_received()  # type: ignore[arg-type]
            if self._rest or k == len(data):
                return out
            data = data[k:]
        buf: bytes | bytearray = data
        if self._buf:
            self._buf += data
            buf = self._buf
        pos, end = 0, len(buf)
        limit, masked_in = getattr(p, self._limit), self._masked_in
        while end - pos >= 2:
            if p.state is not State.OPEN or p.parser_exc is not None:
                self._on = False  # closing or failed: the protocol has the rest, for good
                p.receive_data(bytes(buf[pos:]))
                out += p.events_received()  # type: ignore[arg-type]
                pos = end
                break
            b1, b2 = buf[pos], buf[pos + 1]
            n, h = b2 & 0x7F, pos + 2
            if n == 126:
                if end - h < 2:
                    break
                n = (buf[h] << 8) | buf[h + 1]
                h += 2
            elif n == 127:
                if end - h < 8:
                    break
                n = int.from_bytes(buf[h : h + 8], "big")
                h += 8
            masked = bool(b2 & 0x80)
            if masked:
                h += 4
                if end - h < 0:
                    break
            opcode = b1 & 0x0F
            if (
                b1 & 0xF0 != 0x80  # a fragment, or reserved bits
                or (opcode != 1 and opcode != 2)
                or masked is not masked_in
                or (limit is not None and n > limit)
                or p.cur_size is not None  # inside a fragmented message
            ):
                # The protocol parses this frame (and fails the connection if it is invalid).
                take = min(end - pos, h + n - pos)
                p.receive_data(bytes(buf[pos : pos + take]))
                self._rest = h + n - pos - take
                pos += take
                out += p.events_received()  # type: ignore[arg-type]
                continue
            if end - h < n:
                break
            payload = bytes(buf[h : h + n])
            if masked:
                payload = apply_mask(payload, bytes(buf[h - 4 : h]))
            out.append(Frame(_OPCODES[opcode], payload, True))
            pos = h + n
        if buf is self._buf:
            del self._buf[:pos]
        elif pos < end:
            self._buf += buf[pos:]
        return out

    def eof(self) -> None:
        """The peer's stream has ended: the protocol gets what is held (a frame cut short,
        which it reports as such), then the end."""
        p = self.protocol
        if self._buf:
            p.receive_data(bytes(self._buf))
            self._buf.clear()
        p.receive_eof()

    def frame(self, opcode: Opcode, payload: bytes, fin: bool) -> bytes | None:
        """The bytes of a whole text or binary message sent as one frame, masked as the side
        requires; None when the protocol must send it. Frames the protocol has queued go
        first: take its ``data_to_send`` before these bytes."""
        p = self.protocol
        if (
            not self._on
            or not fin
            or (opcode is not Opcode.TEXT and opcode is not Opcode.BINARY)
            or p.state is not State.OPEN
            or p.expect_continuation_frame
        ):
            return None
        n = len(payload)
        b1 = 0x80 | opcode.value
        bit = 0x80 if self._mask_out else 0
        if n < 126:
            head = bytes((b1, bit | n))
        elif n < 65536:
            head = _HEAD_16.pack(b1, bit | 126, n)
        else:
            head = _HEAD_64.pack(b1, bit | 127, n)
        if bit:
            mask = os.urandom(4)
            return b"".join((head, mask, apply_mask(payload, mask)))
        return head + payload
