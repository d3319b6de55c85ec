"""The command ``tracer record -- CMD`` launches: stopped with tracer, and killed with it.

Without a terminal the command runs in a process group of its own, so that tracer's stop
(Ctrl-C, SIGTERM, the end of the recording) reaches everything it started, not only its
first process. A *reaper* watches that group from outside: a tiny process that holds the
read end of a pipe whose write end only tracer holds. However tracer ends, SIGKILL included,
the kernel closes the pipe, and the reaper stops the group (SIGTERM, then SIGKILL after a
grace period). The command's first process also gets SIGKILL from the kernel the moment
tracer dies (``PR_SET_PDEATHSIG``, Linux).

With a terminal the command stays in tracer's own process group, the terminal's foreground
one: an interactive agent keeps reading its keyboard, and the terminal's Ctrl-C reaches it
directly; its first process still dies with tracer.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
from collections.abc import Callable

__all__ = ["GRACE_S", "Reaper", "die_with_parent", "signal_group"]

GRACE_S = 3.0  # between SIGTERM and SIGKILL, when the group is stopped

_PR_SET_PDEATHSIG = 1


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn: Callable[..., int] = libc.prctl
    except (OSError, AttributeError):
        return None
    return fn


_PRCTL = _prctl()  # resolved here: the child, between fork and exec, only calls it


def die_with_parent() -> None:
    """``preexec_fn``: the kernel sends this process SIGKILL when its parent dies."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def signal_group(pgid: int, signum: int) -> bool:
    """Send ``signum`` to process group ``pgid``; False when the group is gone."""
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


_REAPER = """
import os, signal, sys, time
pgid = int(sys.argv[1]); grace = float(sys.argv[2])
def alive():
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False
while sys.stdin.buffer.read(4096):
    pass
if alive():
    os.killpg(pgid, signal.SIGTERM)
    end = time.monotonic() + grace
    while alive() and time.monotonic() < end:
        time.sleep(0.05)
    if alive():
        os.killpg(pgid, signal.SIGKILL)
"""


class Reaper:
    """Stops process group ``pgid`` once tracer ends, however it ends (see the module)."""

    def __init__(self, pgid: int, grace: float = GRACE_S) -> None:
        read, self._write = os.pipe()
        os.set_inheritable(self._write, False)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-S", "-c", _REAPER, str(pgid), str(grace)],
                stdin=read, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,  # the terminal's Ctrl-C is not for it
                close_fds=True,
            )  # fmt: skip
        finally:
            os.close(read)

    def close(self) -> None:
        """Tracer is done: the reaper stops what is left of the group, then exits."""
        with contextlib.suppress(OSError):
            os.close(self._write)
