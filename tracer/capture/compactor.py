"""Recompress a finished trace in the background, after the recorder has exited.

``tracer record`` stops at once: it closes and verifies the live trace, then hands the
recompression to ``python -m tracer.capture.compactor TRACE`` in a process of its own
(a new session, niced, no terminal). That process rewrites the trace beside itself and
renames the copy over it only if the trace is still the one it read (same inode, size and
modification time): a new recording to the same path is never overwritten. Any failure
leaves the trace as recorded. Its memory is bounded by the compressor's capped tables and a
window no larger than the trace (``compact_trace``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

from tracer.files import atomic_write
from tracer.trace.compact import compact_trace

__all__ = ["compact_if_unchanged", "start_background_compaction"]


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class _Changed(Exception):
    """The trace changed while it was being recompressed."""


def compact_if_unchanged(
    path: str | os.PathLike[str], expected: tuple[int, int, int, int] | None = None
) -> str | None:
    """Recompress ``path`` in place unless it is not the file ``expected`` (its device,
    inode, size and modification time when the recorder closed it) or changed meanwhile;
    why not, or None."""
    try:
        with open(path, "rb") as src:
            before = _identity(os.fstat(src.fileno()))
            if expected is not None and before != expected:
                return "the trace is not the one recorded (a new recording?): kept as it is"
            with atomic_write(path) as dst:
                compact_trace(src, dst)
                if _identity(os.stat(path)) != before:
                    raise _Changed
    except _Changed:
        return "the trace changed while it was recompressed: kept as it is"
    except Exception as exc:  # any failure: the recorded trace is still whole
        return f"{type(exc).__name__}: {exc}"
    return None


def start_background_compaction(path: Path) -> int:
    """Start the recompression of ``path`` (as it is now) in a detached process; its pid."""
    identity = ":".join(str(x) for x in _identity(os.stat(path)))
    child = subprocess.Popen(
        [sys.executable, "-m", "tracer.capture.compactor", os.fspath(path), identity],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # not stopped by the terminal's Ctrl-C, not waited for
        close_fds=True,
    )
    return child.pid


def main() -> int:
    with contextlib.suppress(OSError):
        os.nice(10)  # after the agent's own work
    expected = None
    if len(sys.argv) > 2:
        dev, ino, size, mtime = (int(x) for x in sys.argv[2].split(":"))
        expected = (dev, ino, size, mtime)
    return 0 if compact_if_unchanged(sys.argv[1], expected) is None else 1


if __name__ == "__main__":
    sys.exit(main())
