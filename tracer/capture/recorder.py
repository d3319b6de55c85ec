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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tracer.capture.stats import RecorderStats, Unrecorded
from tracer.protocols.base import Protocol
from tracer.protocols.registry import claim_open
from tracer.responses.model import RESPONSES
from tracer.trace.format import RECORDER_TIME_UNIT_NS, TraceError
from tracer.trace.reader import TraceReader
from tracer.trace.records import Annotation, Close, Direction, Frame, Opcode, Open
from tracer.trace.redact import Redactor
from tracer.trace.scrub import redact_record, redact_tree
from tracer.trace.split import HOLD_S, SplitKeys
from tracer.trace.writer import DEFAULT_FLUSH_INTERVAL, TraceWriter

__all__ = ["Recorder", "RecorderStats", "Unrecorded"]

DEFAULT_MAX_QUEUE_BYTES = 256 * 1024 * 1024
_STOP = object()
_BATCH = 4096  # items the writer takes from its queue at most at once
_BURST = 64  # a batch this long: frames come faster than the writer wakes
BURST_PAUSE_S = 0.02
"""How long the writer lets a burst go by before its next batch: it holds the interpreter
lock for most of its work, which the proxy's event loop then waits for."""
GATHER_S = 0.005
"""Once woken by a frame, the writer lets the next ones gather this long before it takes
them: one wake-up for the frames of a few milliseconds, not one each (each is a thread
switch, and a turn of the interpreter's lock the event loop then waits to get back)."""


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
        time_unit_ns: int = RECORDER_TIME_UNIT_NS,
        on_write_error: Callable[[str], None] | None = None,
    ) -> None:
        self.path = Path(path)
        # Called once, from the writer thread, when writing fails (a full disk): from then
        # on traffic is still forwarded but its frames are not recorded.
        self.on_write_error = on_write_error
        self._seq: dict[int, int] = {}  # conn -> frames offered so far
        self._unflushed: list[tuple[Any, ...]] = []  # frames written but not yet flushed
        self._uncertain: list[tuple[Any, ...]] = []  # unflushed when a write failed
        self._handed: dict[int, int] = {}  # conn -> frames handed to the writer
        self.redactor = redactor or Redactor()
        self.stats = RecorderStats()
        self._max_queue = max_queue_bytes
        # Backlog = enqueued - written. Each counter has one kind of writer (producers under
        # the lock, the writer thread alone), so no update is ever lost between threads.
        self._enqueued = 0
        self._written = 0
        self._held = 0  # bytes the split-key joiner holds back (the writer thread sets it)
        self._lock = threading.Lock()
        self._next_conn = 0
        self._http: set[int] = set()  # connections of transport http (a request body each)
        self._protocols: dict[int, Protocol] = {}  # the protocol each connection's upgrade settled
        self._interval = flush_interval
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        self._file = os.fdopen(fd, "wb")
        # Metadata can hold secrets too (a command line with a key in it): redact it alike.
        self._writer = TraceWriter(
            self._file,
            metadata=redact_tree(metadata or {}, self.redactor),
            flush_interval=flush_interval,
            time_unit_ns=time_unit_ns,
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
        if transport == "http":
            self._http.add(conn)
        protocol = claim_open(url, transport, subprotocol)
        if protocol is not None:
            self._protocols[conn] = protocol
        record = Open(
            conn=conn,
            t_ns=self.now_ns() if t_ns is None else t_ns,
            url=url,
            request_headers=request_headers or [],
            response_headers=response_headers or [],
            status=status,
            subprotocol=subprotocol,
            client_addr=client_addr,
            server_addr=server_addr,
            handshake_ns=handshake_ns,
            transport=transport,
        )
        self._queue.put(redact_record(record, self.redactor))
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
        create = (
            opcode is Opcode.TEXT
            and fin
            and self._protocols.get(conn, RESPONSES).starts_turn(
                direction is Direction.CLIENT, payload, conn in self._http
            )
        )
        with self._lock:  # producers may run on several threads (a sync client's reader)
            seq = self._seq[conn] = self._seq.get(conn, 0) + 1
            if self._enqueued - self._written + self._held + size > self._max_queue:
                stats.dropped_frames += 1
                self._unrecorded(conn, seq)
                return
            self._enqueued += size
            stats.frames += 1
            stats.bytes += size
            if create:
                stats.creates += 1
        self._put((conn, t, direction, opcode, payload, fin, seq))  # a Frame's fields + number

    def _unrecorded(self, conn: int, seq: int) -> None:
        """Note frame ``seq`` of ``conn`` as not recorded (the caller holds the lock)."""
        gaps = self.stats.unrecorded.get(conn)
        if gaps is None:
            gaps = self.stats.unrecorded[conn] = Unrecorded(conn)
        gaps.add(seq)

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
        # A close reason or an error text can quote a secret too.
        close = Close(conn=conn, t_ns=self.now_ns(), code=code, reason=reason, by=by, error=error)
        self._queue.put(redact_record(close, self.redactor))

    def annotate(self, label: str, note: str = "", conn: int | None = None) -> None:
        """Record a mark; its text is redacted with every secret learned so far."""
        mark = Annotation(t_ns=self.now_ns(), label=label, note=note, conn=conn)
        self._queue.put(redact_record(mark, self.redactor))

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        """Finish the trace (footer included) also when the recorded code raised."""
        self.close()

    def close(self) -> None:
        """Write what is queued, finish the trace (footer) and close the file."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        writer = self._writer
        # Keys split across frames (fragments, streams of deltas) are cut out before the
        # per-frame pass; that can hold a frame back (its own connection's records behind
        # it) until the next piece of its stream, and at most HOLD_S.
        r = self.redactor
        split = SplitKeys(r.find, r.shortest, hold_s=HOLD_S) if r.enabled else None
        get, get_nowait = self._queue.get, self._queue.get_nowait
        interval = self._interval
        failed = False
        stopping = False
        while not stopping:
            deadline = split.deadline() if split is not None else None
            timeout = interval if writer.pending else None
            if deadline is not None:
                wait = max(0.0, deadline - time.monotonic())
                timeout = wait if timeout is None else min(timeout, wait)
            try:
                batch = [get(timeout=timeout) if timeout is not None else get()]
            except queue.Empty:
                batch = []
            if batch and batch[0] is not _STOP:
                time.sleep(GATHER_S)  # (releases the lock: the traffic goes on meanwhile)
            # Take everything already queued: fewer wake-ups, and the GIL changes hands less.
            with contextlib.suppress(queue.Empty):
                while batch and len(batch) < _BATCH:
                    batch.append(get_nowait())
            ready, stopping = self._take(batch, split, failed)
            if split is not None:
                if deadline is not None and time.monotonic() >= deadline:
                    ready += split.expire()
                self._held = split.held_bytes
            failed = self._write_items(ready, failed)
            if _BURST <= len(batch) < _BATCH and not stopping:
                # A burst the writer keeps up with: let the traffic have the interpreter
                # (the sleep releases its lock) while the next batch gathers. Behind (a full
                # batch), it does not wait.
                time.sleep(BURST_PAUSE_S)
            if not batch and not failed and writer.pending:
                failed = self._guard(writer.flush)  # the queue went quiet: flush
                self._flushed(failed)
        writer.dropped_frames = self.stats.dropped_frames
        if not failed:
            if self.stats.dropped_frames:
                lost = "; ".join(g.describe() for g in self.stats.unrecorded.values())
                self._guard(
                    writer.write,
                    Annotation(
                        t_ns=writer.now_ns(),
                        label="tracer.dropped_frames",
                        note=f"{self.stats.dropped_frames} frames were not recorded: {lost}",
                        data={"unrecorded": [g.to_json() for g in self.stats.unrecorded.values()]},
                    ),
                )
            self._guard(writer.close)
        try:
            self._file.close()
        except OSError as exc:
            self.stats.write_error = self.stats.write_error or str(exc)
        if self._uncertain:
            self._settle_uncertain()

    def _take(
        self, batch: list[Any], split: SplitKeys | None, failed: bool
    ) -> tuple[list[Any], bool]:
        """The items of a batch ready to write, through the split-key joiner (the batch at
        once); and whether the batch held the stop."""
        taken: list[Any] = []
        stopping = False
        for item in batch:
            if type(item) is tuple:  # a frame's fields and its number on its connection
                self._written += len(item[4])
                if failed:
                    self._lost([item])
                    continue
            if item is _STOP:
                stopping = True
                break
            taken.append(item)
        if split is None:
            return taken, stopping
        ready = split.push_many(taken) if taken else []
        if stopping:
            ready += split.release()
        return ready, stopping

    def _write_items(self, items: list[Any], failed: bool) -> bool:
        """Write frames (redacted, consecutive ones in one call) and records in order;
        return whether writing has failed."""
        handed = self._handed
        frames: list[tuple[Any, ...]] = []
        for item in items:
            if type(item) is tuple:
                if failed:
                    self._lost([item])
                    continue
                frames.append(item)
                handed[item[0]] = handed.get(item[0], 0) + 1
                continue
            if frames:
                failed = failed or self._write_frames(frames)
                frames = []
            if not failed:
                failed = self._guard(self._writer.write, item)
                self._flushed(failed, check=True)
        if frames and not failed:
            failed = self._write_frames(frames)
        return failed

    def _settle_uncertain(self) -> None:
        """After a failed write, read the file back: of the frames that were written but not
        yet flushed when it failed, those the file holds were recorded, the rest were not."""
        on_disk: dict[int, int] = {}
        try:
            with open(self.path, "rb") as src:
                for r in TraceReader(src):
                    if type(r) is Frame:
                        on_disk[r.conn] = on_disk.get(r.conn, 0) + 1
        except (OSError, TraceError):
            pass  # the frames counted before the damage are the ones a reader gets
        by_conn: dict[int, list[tuple[Any, ...]]] = {}
        for f in self._uncertain:
            by_conn.setdefault(f[0], []).append(f)
        for conn, frames in by_conn.items():
            before = self._handed.get(conn, 0) - len(frames)
            present = max(0, on_disk.get(conn, 0) - before)
            self._lost(sorted(frames, key=lambda f: f[6])[present:])
        self._uncertain = []

    def _write_frames(self, frames: list[tuple[Any, ...]]) -> bool:
        """Redact and write consecutive frames (conn, t, direction, opcode, payload, fin,
        number) in one call."""
        if self.redactor.enabled:
            given = [f[4] for f in frames]
            payloads = self.redactor.payloads(given)
            if payloads is not given:  # some may hold a secret
                frames = [(*f[:4], p, *f[5:]) if p is not f[4] else f
                          for f, p in zip(frames, payloads, strict=True)]  # fmt: skip
        failed = self._guard(self._writer.write_frames, [f[:6] for f in frames])
        # On a failure the batch may be partly in the file, but not in a readable block.
        self._unflushed.extend(frames)
        self._flushed(failed, check=True)
        return failed

    def _flushed(self, failed: bool, *, check: bool = False) -> None:
        """After a write or flush: forget the frames now on disk; on a failure, keep them to
        check against the file once it is closed (some blocks may have reached it)."""
        if failed:
            self._uncertain.extend(self._unflushed)
        elif check and self._writer.pending:
            return
        self._unflushed = []

    def _lost(self, frames: list[tuple[Any, ...]]) -> None:
        with self._lock:
            for f in frames:
                self.stats.dropped_frames += 1
                self.stats.frames -= 1
                self._unrecorded(f[0], f[6])

    def _guard(self, fn: Any, *args: Any) -> bool:
        """Run a write; on an I/O error (disk full) remember it, report it, return True."""
        try:
            fn(*args)
        except OSError as exc:
            first = self.stats.write_error is None
            self.stats.write_error = f"{exc.strerror or exc} ({self.path})"
            if first and self.on_write_error is not None:
                with contextlib.suppress(Exception):
                    self.on_write_error(self.stats.write_error)
            return True
        return False
