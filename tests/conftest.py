from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tracer.trace import Close, Direction, Frame, Opcode, Open, create_trace

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent


def run_tracer(
    *args: str, timeout: float = 60, env_extra: dict[str, str] | None = None, **kwargs
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess, as a user would (``env_extra``: more variables)."""
    env = {**os.environ, "COLUMNS": "120", "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "tracer", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **kwargs,
    )


def assert_clean_error(proc: subprocess.CompletedProcess[str]) -> None:
    """A failed command: non-zero exit, one error line on stderr, no traceback."""
    assert proc.returncode != 0, proc
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("tracer: error: ")]
    assert len(errors) == 1, proc.stderr


@pytest.fixture
def small_trace(tmp_path: Path) -> Path:
    """A small two-connection trace written with frequent flushes (several zstd blocks)."""
    path = tmp_path / "small.trace"
    t = iter(range(0, 10**12, 1_000_000))
    with create_trace(path, metadata={"test": "small"}, flush_interval=0) as w:
        for conn in (1, 2):
            w.write(Open(conn=conn, t_ns=next(t), url=f"ws://127.0.0.1:1/v1/responses?c={conn}"))
        for i in range(12):
            conn = 1 + i % 2
            w.write(Frame(conn, next(t), Direction.CLIENT, Opcode.TEXT, b'{"type":"x","i":%d}' % i))
            w.write(Frame(conn, next(t), Direction.SERVER, Opcode.BINARY, bytes([i]) * (i + 1)))
        for conn in (1, 2):
            w.write(Close(conn=conn, t_ns=next(t), code=1000, reason="bye", by="client"))
    return path
