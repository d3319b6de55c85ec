"""``tracer tui`` in a real pseudo-terminal of 80x24, its screen read by a terminal
emulator (pyte): a long error message in the frame view is shown whole, and q quits from
there (it meant "back", so a user's next shell command was typed into the inspector)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import select
import struct
import sys
import termios
import time
from pathlib import Path

import pytest

from tracer.trace.records import Close, Direction, Frame, Opcode, Open
from tracer.trace.writer import create_trace

pyte = pytest.importorskip("pyte", reason="pyte is installed by the test extra")

MESSAGE = (
    "The upstream could not serve this request: "
    + " ".join(f"reason{i}" for i in range(22))
    + " THE-END"
)


def _trace(path: Path) -> None:
    """One turn that fails with an error message longer than two lines of 80 columns."""
    create = {"type": "response.create", "model": "m", "input": "hi"}
    failure = {"type": "server_error", "code": "server_error", "message": MESSAGE}
    error = {"type": "error", "status": 500, "error": failure}
    with create_trace(path) as w:
        w.write(Open(1, 1_000_000, "ws://127.0.0.1:1/v1/responses", handshake_ns=500_000))
        w.write(Frame(1, 2_000_000, Direction.CLIENT, Opcode.TEXT, json.dumps(create).encode()))
        w.write(Frame(1, 3_000_000, Direction.SERVER, Opcode.TEXT, json.dumps(error).encode()))
        w.write(Close(1, 4_000_000, 1000, "", "client"))


class Terminal:
    """A child process in a pty of ``cols`` x ``rows`` and the screen it draws."""

    def __init__(self, argv: list[str], cols: int = 80, rows: int = 24) -> None:
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            os.execvpe(argv[0], argv, {**os.environ, "TERM": "xterm-256color", "COLUMNS": "",
                                       "LINES": ""})  # fmt: skip

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if ready:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:
                    return
                if not data:
                    return
                self.stream.feed(data)

    def wait_for(self, needle: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump(0.2)
            if needle in self.text():
                return self.text()
        raise AssertionError(f"never saw {needle!r}; the screen:\n{self.text()}")

    def send(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def exited(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            self.pump(0.1)
        return None

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


def test_frame_view_at_80x24_shows_a_long_error_whole_and_q_quits(tmp_path: Path):
    trace = tmp_path / "long.trace"
    _trace(trace)
    term = Terminal([sys.executable, "-m", "tracer", "tui", str(trace)])
    try:
        term.wait_for("1 turn")
        term.send(b"f")
        term.wait_for("2 of 2 frames")
        term.send(b"\x1b[B")  # down: the error frame
        screen = term.wait_for("THE-END")
        lines = screen.splitlines()
        assert len(lines) == 24 and max(len(line) for line in lines) <= 80
        # The message, wrapped over lines: every word of it is on the screen, in order.
        shown = " ".join(" ".join(lines).split())
        at = [shown.find(f"reason{i} ") for i in range(22)]
        assert -1 not in at and at == sorted(at), screen
        assert "q Quit" in screen
        term.send(b"q")
        assert term.exited(timeout=15) == 0, "q in the frame view did not quit"
    finally:
        term.close()
