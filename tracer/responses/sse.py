"""A sans-I/O decoder of server-sent event streams (``text/event-stream``)."""

from __future__ import annotations

__all__ = ["SSEDecoder", "encode_event"]


def encode_event(data: bytes, event_type: str | None = None) -> bytes:
    """One server-sent event: an ``event:`` line (when given), a ``data:`` line per line
    of ``data`` (one for compact JSON), then the blank line."""
    head = f"event: {event_type}\n".encode() if event_type is not None else b""
    return head + b"".join(b"data: " + line + b"\n" for line in data.split(b"\n")) + b"\n"


class SSEDecoder:
    """Feed it bytes as they arrive; it returns each completed event's ``data``.

    Lines end with LF, CRLF or CR; several ``data:`` lines of one event are joined with LF;
    comments and other fields (``event:``, ``id:``, ``retry:``) are skipped. ``max_event``
    bounds what one unfinished event may hold.
    """

    def __init__(self, max_event: int = 64 * 1024 * 1024) -> None:
        self._buf = b""
        self._data: list[bytes] = []
        self._size = 0
        self._max = max_event

    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            # A lone CR at the very end may be the first half of a CRLF: keep it for later.
            keep_cr = buf.endswith(b"\r")
            body = buf[:-1] if keep_cr else buf
            buf = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + (b"\r" if keep_cr else b"")
        events: list[bytes] = []
        *lines, rest = buf.split(b"\n")
        for line in lines:
            if not line:
                if self._data:
                    events.append(b"\n".join(self._data))
                    self._data = []
                    self._size = 0
                continue
            if line.startswith(b"data:"):
                value = line[5:]
                if value.startswith(b" "):
                    value = value[1:]
                self._data.append(value)
                self._size += len(value)
        self._buf = rest
        if self._size + len(rest) > self._max:
            raise ValueError(f"a server-sent event is larger than {self._max} bytes")
        return events

    def finish(self) -> list[bytes]:
        """The last event, when the stream ends without the blank line that ends it."""
        events = self.feed(b"\n\n") if self._buf or self._data else []
        return events
