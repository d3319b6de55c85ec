"""Terminal views at 80 and 160 columns, in a real pseudo-terminal of that size: no line
wider than the terminal, no truncated turn index, and the figures that must stay (the
index, sent, resent, ttft, the status) present. On the samples and a generated 150-turn
trace (three-digit indices)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tracer.trace import Close, Direction, Opcode, Open, create_trace

SAMPLES = ["incremental.trace", "reconnect.trace", "http-resend.trace", "codex.trace"]
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def _drain(master: int) -> bytes:
    """Everything the child writes to its pseudo-terminal, until it closes its side."""
    out = b""
    while True:
        try:
            data = os.read(master, 1 << 16)
        except OSError:  # the child closed its side
            break
        if not data:
            break
        out += data
    os.close(master)
    return out


def in_terminal(cols: int, *args: str) -> str:
    """Run `tracer ARGS` with a pseudo-terminal of ``cols`` columns as stdout and stderr;
    the screen text, colours stripped."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, cols, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracer", *args], stdin=slave, stdout=slave, stderr=slave,
        env=env, cwd=ROOT, close_fds=True,
    )  # fmt: skip
    os.close(slave)
    out = _drain(master)
    assert proc.wait(timeout=60) == 0, out.decode(errors="replace")[-2000:]
    return _ANSI.sub("", out.decode()).replace("\r", "")


@pytest.fixture(scope="module")
def long_trace(tmp_path_factory) -> Path:
    """150 turns on one connection: indices up to 149."""
    path = tmp_path_factory.mktemp("wide") / "long.trace"
    with create_trace(path, flush_interval=None) as w:
        w.write(Open(conn=1, t_ns=0, url="/v1/responses"))
        t = 1
        for i in range(150):
            create = {"type": "response.create", "input": [{"role": "user", "content": f"q{i}"}]}
            w.write_frames([(1, t, Direction.CLIENT, Opcode.TEXT, json.dumps(create).encode(),
                             True)])  # fmt: skip
            done = {"type": "response.completed", "response": {
                "id": f"resp_{i:04d}_{'x' * 40}", "status": "completed", "output": [],
                "usage": {"input_tokens": 10 * i, "output_tokens": 5,
                          "input_tokens_details": {"cached_tokens": 8 * i}}}}  # fmt: skip
            w.write_frames([(1, t + 20_000_000, Direction.SERVER, Opcode.TEXT,
                             json.dumps(done).encode(), True)])  # fmt: skip
            t += 40_000_000
        w.write(Close(conn=1, t_ns=t, code=1000, by="client"))
    return path


def _check(text: str, cols: int) -> None:
    lines = text.splitlines()
    widest = max(len(line) for line in lines)
    assert widest <= cols, f"{widest} > {cols}:\n" + "\n".join(
        line for line in lines if len(line) > cols
    )


@pytest.mark.parametrize("cols", [80, 160])
@pytest.mark.parametrize("sample", SAMPLES)
def test_views_fit_the_terminal(cols: int, sample: str):
    path = str(ROOT / "traces" / sample)
    for command in (["inspect"], ["cache"], ["latency"], ["frames", "--limit", "40"]):
        _check(in_terminal(cols, command[0], path, *command[1:]), cols)
    _check(in_terminal(cols, "diff", str(ROOT / "traces" / "full-resend.trace"), path), cols)
    _check(in_terminal(cols, "stats", *(str(ROOT / "traces" / s) for s in SAMPLES)), cols)


@pytest.mark.parametrize("cols", [80, 160])
def test_a_150_turn_trace_keeps_every_index_whole(cols: int, long_trace: Path):
    text = in_terminal(cols, "inspect", str(long_trace))
    _check(text, cols)
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.lstrip().startswith("#"))
    header = lines[at]
    rows = [line.split() for line in lines[at + 1 :] if re.match(r"^\s*\d+\s", line)]
    indices = [int(r[0]) for r in rows]
    assert indices[:3] == [0, 1, 2] and 149 in indices  # three digits, never "1…"
    for name in ("sent", "resent", "ttft", "total", "status"):
        assert name in header.split(), header
    for command in ("cache", "latency"):
        _check(in_terminal(cols, command, str(long_trace)), cols)
    diff = in_terminal(cols, "diff", str(long_trace), str(long_trace))
    _check(diff, cols)


def test_the_record_status_never_lands_between_a_launched_commands_lines(tmp_path: Path):
    """On a terminal, a launched command's output comes through whole: the status goes to
    the terminal's title (OSC 0) and the summary follows at the end."""
    from tracer.upstream import running_upstream

    child = (
        "import json, os, time\n"
        "from websockets.sync.client import connect\n"
        "url = os.environ['OPENAI_BASE_URL'].replace('http', 'ws', 1) + '/responses'\n"
        "with connect(url) as ws:\n"
        "    for i in range(6):\n"
        "        ws.send(json.dumps({'type': 'response.create', 'input': f'q{i}'}))\n"
        "        while json.loads(ws.recv())['type'] != 'response.completed':\n"
        "            pass\n"
        "        print(f'agent line {i} ok', flush=True)\n"
        "        time.sleep(0.3)\n"
    )
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 80, 0, 0))
    with running_upstream() as upstream:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tracer", "record", "--upstream",
             f"http://127.0.0.1:{upstream.port}", "-o", str(tmp_path / "t.trace"), "--",
             sys.executable, "-c", child],
            stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, close_fds=True,
        )  # fmt: skip
        os.close(slave)
        raw = _drain(master)
        assert proc.wait(timeout=60) == 0
    text = raw.decode()
    assert "\x1b]0;tracer record:" in text  # the status, in the title
    screen = _ANSI.sub("", text).replace("\r", "")
    lines = screen.splitlines()
    for i in range(6):
        assert f"agent line {i} ok" in lines, screen  # each line whole, on its own
    assert "● rec" not in screen
    summary = screen[screen.rindex("tracer record: ") :]
    assert summary.startswith("tracer record: 1 connection") and "6 turns" in summary
