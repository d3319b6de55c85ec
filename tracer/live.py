"""Follow a trace while it is being written (the I/O shell of the live views).

The recorder flushes a complete zstd block whenever its queue goes quiet, so every record
written so far can be read from the file at any moment. ``follow`` reads a trace the way
``tail -f`` reads a log: when the reader reaches the end of what is on disk, the records
decoded so far are handed over as one batch, and it waits for more. It ends when the trace's
footer has been read (the recording finished), when ``stop`` is set, or after ``idle``
seconds without new data.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tracer.trace.format import PREAMBLE_SIZE, TraceError, parse_preamble
from tracer.trace.reader import TraceReader
from tracer.trace.records import Frame, Record

__all__ = ["FollowResult", "check_followable", "follow"]

Batch = Callable[[list[Record]], None]


class FollowResult:
    """How following ended: ``finished`` (footer read), ``stopped``, ``idle`` or ``truncated``."""

    def __init__(self, how: str, records: int) -> None:
        self.how = how
        self.records = records


class _GrowingFile:
    """A read-only file whose ``read`` waits for data instead of returning end of file."""

    def __init__(self, f: object, wait: Callable[[], bool]) -> None:
        self._f = f
        self._wait = wait  # flushes the batch, sleeps; False: give up (end of file)
        self._pos = 0
        self.last_data = time.monotonic()

    def read(self, n: int = -1) -> bytes:
        # The preamble is parsed from one read: insist on all of it; later, any data will do.
        want = max(1, min(n, PREAMBLE_SIZE - self._pos)) if n > 0 else 1
        out = b""
        while True:
            data = self._f.read(n - len(out) if n > 0 else -1)  # type: ignore[attr-defined]
            if data:
                out += data
                self.last_data = time.monotonic()
            if len(out) >= want:
                self._pos += len(out)
                return out
            if not self._wait():
                self._pos += len(out)
                return out


def check_followable(path: str | os.PathLike[str], appear_timeout: float = 10.0) -> None:
    """Raise ``TraceError`` when ``path`` does not appear within ``appear_timeout`` seconds,
    is not a readable file, or already holds bytes that are not a trace's preamble: before
    a live view opens on it (a recording may not have created it yet)."""
    deadline = time.monotonic() + appear_timeout
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TraceError(f"cannot open {os.fspath(path)!r}: it did not appear")
        time.sleep(0.05)
    try:
        with open(path, "rb") as f:
            head = f.read(PREAMBLE_SIZE)
    except OSError as exc:
        raise TraceError(f"cannot open {os.fspath(path)!r}: {exc.strerror or exc}") from None
    if len(head) == PREAMBLE_SIZE:
        parse_preamble(head)  # a file that is something else entirely


# Over 60 lines: the follow loop and its end conditions read best together.
_BATCH_BYTES = 4 * 1024 * 1024


def _appeared(
    path: str | os.PathLike[str], stop: threading.Event, poll: float, timeout: float
) -> bool:
    """Wait for ``path`` to exist: True once it does, False when ``stop`` is set first;
    ``TraceError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not Path(path).exists():
        if stop.is_set():
            return False
        if time.monotonic() > deadline:
            raise TraceError(f"cannot open {os.fspath(path)!r}: it did not appear")
        stop.wait(poll)
    return True


def follow(
    path: str | os.PathLike[str],
    on_batch: Batch,
    *,
    stop: threading.Event | None = None,
    poll: float = 0.05,
    idle: float | None = None,
    appear_timeout: float = 10.0,
) -> FollowResult:
    """Read ``path`` as it grows, calling ``on_batch`` with each run of new records.

    Raises ``TraceError`` for a damaged trace (after handing over the records before the
    damage) or for a file that does not appear within ``appear_timeout`` seconds.
    """
    stop = stop or threading.Event()
    if not _appeared(path, stop, poll, appear_timeout):
        return FollowResult("stopped", 0)
    pending: list[Record] = []
    how = ["truncated"]
    reader: TraceReader | None = None
    growing: _GrowingFile | None = None

    def flush() -> None:
        if pending:
            on_batch(list(pending))
            pending.clear()

    def wait() -> bool:
        flush()
        if reader is not None and reader.footer is not None:
            return False
        if stop.is_set():
            how[0] = "stopped"
            return False
        if idle is not None and growing and time.monotonic() - growing.last_data > idle:
            how[0] = "idle"
            return False
        stop.wait(poll)
        return True

    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise TraceError(f"cannot open {os.fspath(path)!r}: {exc.strerror or exc}") from None
    count = 0
    held = 0  # payload bytes pending: a batch of huge frames is handed over early
    with f:
        growing = _GrowingFile(f, wait)
        reader = TraceReader(growing)  # type: ignore[arg-type]
        try:
            for record in reader:
                pending.append(record)
                count += 1
                if type(record) is Frame:
                    held += len(record.payload)
                if len(pending) >= 4096 or held >= _BATCH_BYTES:
                    flush()
                    held = 0
        finally:
            flush()
    if reader.footer is not None:
        return FollowResult("finished", count)
    return FollowResult(how[0], count)
