"""``tracer record --tui -- COMMAND`` in a real pseudo-terminal: the live inspector shows the
launched agent's turns while it runs, and q stops the recording with a valid trace."""

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
import textwrap
import time
from pathlib import Path

from tests.conftest import assert_clean_error, run_tracer
from tracer.upstream import running_upstream

AGENT = textwrap.dedent(
    """
    import json, os
    from websockets.sync.client import connect

    url = os.environ["OPENAI_BASE_URL"].replace("http", "ws", 1) + "/responses"
    previous = None
    with connect(url) as ws:
        for k in range(3):
            body = {"type": "response.create", "model": "m", "input": f"step {k}"}
            if previous:
                body["previous_response_id"] = previous
            ws.send(json.dumps(body))
            while (event := json.loads(ws.recv()))["type"] != "response.completed":
                pass
            previous = event["response"]["id"]
    print("agent done")
    """
)


def read_until(fd: int, needles: list[bytes], timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the terminal closed
                break
            if not chunk:
                break
            seen += chunk
            if all(n in seen for n in needles):
                return seen
    raise AssertionError(f"never saw {needles}; last output: {seen[-2000:]!r}")


def test_record_tui_follows_the_launched_agent_and_q_stops(tmp_path: Path):
    out = tmp_path / "live.trace"
    agent = tmp_path / "agent.py"
    agent.write_text(AGENT)
    with running_upstream() as upstream:
        argv = [sys.executable, "-m", "tracer", "record", "--upstream",
                f"ws://127.0.0.1:{upstream.port}", "-o", str(out), "--tui", "--",
                sys.executable, str(agent)]  # fmt: skip
        pid, fd = pty.fork()
        if pid == 0:  # the child: a terminal of 100x30
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
            os.execvpe(argv[0], argv, {**os.environ, "TERM": "xterm-256color"})
        try:
            screen = read_until(fd, [b"recording finished", b"3 turns"], timeout=60)
            assert b"recording http://127.0.0.1:" in screen
            os.write(fd, b"q")
            deadline = time.monotonic() + 30
            status = None
            while time.monotonic() < deadline:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                select.select([fd], [], [], 0.1)
                with contextlib.suppress(OSError):
                    os.read(fd, 65536)  # keep the terminal drained
            assert status is not None and os.WIFEXITED(status), "record did not stop on q"
            assert os.WEXITSTATUS(status) == 0  # the agent's exit code
        finally:
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            os.close(fd)
    report = json.loads(run_tracer("inspect", str(out), "--json").stdout)
    assert [t["status"] for t in report["turns"]] == ["completed"] * 3
    assert json.loads(run_tracer("verify", str(out), "--json").stdout)["ok"] is True
    assert "agent done" in (tmp_path / "live.trace.log").read_text()
    assert (tmp_path / "live.trace.log").stat().st_mode & 0o777 == 0o600  # as the trace


def test_record_tui_needs_a_terminal_and_no_json(tmp_path: Path):
    args = ["record", "--upstream", "ws://127.0.0.1:9", "-o", str(tmp_path / "t.trace"), "--tui"]
    assert_clean_error(run_tracer(*args))  # stdout is a pipe here
    assert_clean_error(run_tracer(*args, "--json"))
