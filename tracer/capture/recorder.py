"""The recorder: hands captured frames to a trace writer running off the forwarding path.

Capture layers call ``open_connection``, ``frame`` and ``close_connection`` from their own
thread or event loop; those calls only time-stamp and enqueue. A writer thread redacts,
encodes, compresses and writes, and flushes a zstd block whenever the queue goes quiet, so a
killed recorder loses at most ``flush_interval``. Memory is bounded: past ``max_queue_bytes``
of pending payload the recorder drops frames (never blocking the traffic), counts them and
says so in the trace.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracer.trace.records import Annotation, Close, Direction, Opcode, Open
from tracer.trace.redact import Redactor
from tracer.trace.writer import DEFAULT_FLUSH_INTERVAL, TraceWriter

__all__ = ["Recorder", "RecorderStats"]

DEFAULT_MAX_QUEUE_BYTES = 256 * 1024 * 1024
_STOP = object()


@dataclass(slots=True)
class RecorderStats:
    """Live counts for status lines; read from any thread."""

    connections: int = 0
    open_connections: int = 0
    frames: int = 0
    bytes: int = 0
    creates: int = 0  # client frames that look like a response.create
    dropped_frames: int = 0
    write_error: str | None = None


class Recorder:
    """Records connections and frames into one trace file, writing on a background thread."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        metadata: dict[str, Any] | None = None,
        redactor: Redactor | None = None,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
    ) -> None:
        self.path = Path(path)
        self.redactor = redactor or Redactor()
        self.stats = RecorderStats()
        self._max_queue = max_queue_bytes
        # Backlog = enqueued - written. Each counter has one kind of writer (producers under
        # the lock, the writer thread alone), so no update is ever lost between threads.
        self._enqueued = 0
        self._written = 0
        self._lock = threading.Lock()
        self._next_conn = 0
        self._interval = flush_interval
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        self._file = os.fdopen(fd, "wb")
        # Metadata can hold secrets too (a command line with a key in it): redact it alike.
        self._writer = TraceWriter(
            self._file,
            metadata=_redact_tree(metadata or {}, self.redactor),
            flush_interval=flush_interval,
        )
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._put = self._queue.put
        self._clock = time.monotonic_ns
        self._anchor = self._clock() - self._writer.now_ns()
        self._thread = threading.Thread(target=self._run, name="tracer-writer", daemon=True)
        self._closed = False
        self._thread.start()

    def now_ns(self) -> int:
        """The trace's clock: nanoseconds since the trace's anchor."""
        return self._writer.now_ns()

    def open_connection(
        self,
        url: str,
        *,
        request_headers: list[tuple[str, str]] | None = None,
        response_headers: list[tuple[str, str]] | None = None,
        status: int = 101,
        subprotocol: str | None = None,
        client_addr: str | None = None,
        server_addr: str | None = None,
        handshake_ns: int | None = None,
        transport: str = "websocket",
        t_ns: int | None = None,
    ) -> int:
        """Record a new connection and return its id."""
        with self._lock:
            self._next_conn += 1
            conn = self._next_conn
        self.stats.connections += 1
        self.stats.open_connections += 1
        r = self.redactor
        record = Open(
            conn=conn,
            t_ns=self.now_ns() if t_ns is None else t_ns,
            url=r.url(url),
            request_headers=r.headers(request_headers or []),
            response_headers=r.headers(response_headers or []),
            status=status,
            subprotocol=subprotocol,
            client_addr=client_addr,
            server_addr=server_addr,
            handshake_ns=handshake_ns,
            transport=transport,
        )
        self._queue.put(record)
        return conn

    def frame(
        self,
        conn: int,
        direction: Direction,
        opcode: Opcode,
        payload: bytes,
        fin: bool = True,
        t_ns: int | None = None,
    ) -> None:
        """Record one frame; never blocks. Redaction happens on the writer thread."""
        t = self._clock() - self._anchor if t_ns is None else t_ns
        size = len(payload)
        stats = self.stats
        with self._lock:  # producers may run on several threads (a sync client's reader)
            if self._enqueued - self._written + size > self._max_queue:
                stats.dropped_frames += 1
                return
            self._enqueued += size
            stats.frames += 1
            stats.bytes += size
            if direction is Direction.CLIENT and payload.find(b'"response.create"', 0, 200) >= 0:
                stats.creates += 1
        self._put((conn, t, direction, opcode, payload, fin))  # a Frame's fields, unwrapped

    def close_connection(
        self,
        conn: int,
        *,
        code: int | None = None,
        reason: str = "",
        by: str | None = None,
        error: str | None = None,
    ) -> None:
        self.stats.open_connections -= 1
        self._queue.put(
            Close(conn=conn, t_ns=self.now_ns(), code=code, reason=reason, by=by, error=error)
        )

    def annotate(self, label: str, note: str = "", conn: int | None = None) -> None:
        self._queue.put(Annotation(t_ns=self.now_ns(), label=label, note=note, conn=conn))

    def close(self) -> None:
        """Write what is queued, finish the trace (footer) and close the file."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        writer = self._writer
        redact = self.redactor.payload if self.redactor.enabled else None
        get, get_nowait = self._queue.get, self._queue.get_nowait
        interval = self._interval
        failed = False
        stopping = False
        while not stopping:
            try:
                batch = [get(timeout=interval) if writer.pending else get()]
            except queue.Empty:
                if not failed:
                    failed = self._guard(writer.flush)
                continue
            # Take everything already queued: fewer wake-ups, and the GIL changes hands less.
            with contextlib.suppress(queue.Empty):
                while len(batch) < 4096:
                    batch.append(get_nowait())
            frames = []  # consecutive frames go to the writer in one call
            for item in batch:
                if type(item) is tuple:  # a frame's fields
                    payload = item[4]
                    self._written += len(payload)
                    if failed:
                        with self._lock:
                            self.stats.dropped_frames += 1
                        continue
                    if redact is not None:
                        conn, t, direction, opcode, _, fin = item
                        item = (conn, t, direction, opcode, redact(payload), fin)
                    frames.append(item)
                    continue
                if frames:
                    failed = failed or self._guard(writer.write_frames, frames)
                    frames = []
                if item is _STOP:
                    stopping = True
                    break
                if not failed:
                    failed = self._guard(writer.write, item)
            if frames and not failed:
                failed = self._guard(writer.write_frames, frames)
        writer.dropped_frames = self.stats.dropped_frames
        if not failed:
            if self.stats.dropped_frames:
                self._guard(
                    writer.write,
                    Annotation(
                        t_ns=writer.now_ns(),
                        label="tracer.dropped_frames",
                        note=f"{self.stats.dropped_frames} frames were not recorded",
                    ),
                )
            self._guard(writer.close)
        try:
            self._file.close()
        except OSError as exc:
            self.stats.write_error = self.stats.write_error or str(exc)

    def _guard(self, fn: Any, *args: Any) -> bool:
        """Run a write; on an I/O error (disk full) remember it and return True."""
        try:
            fn(*args)
        except OSError as exc:
            self.stats.write_error = f"{exc.strerror or exc} ({self.path})"
            return True
        return False


def _redact_tree(value: Any, redactor: Redactor) -> Any:
    """A copy of a JSON-like value with every string redacted."""
    if isinstance(value, str):
        return redactor.text(value)
    if isinstance(value, dict):
        return {k: _redact_tree(v, redactor) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_tree(v, redactor) for v in value]
    return value
