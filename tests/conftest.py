from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tracer.trace import Close, Direction, Frame, Opcode, Open, create_trace

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
NODE = ROOT / ".tools" / "node"  # the pinned Node clients, installed by node_tools
NODE_CLIENTS = ROOT / "tests" / "clients" / "node"


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


def record_client(
    upstream: str, out: Path, argv: list[str], *options: str, key: str = "sk-test-client"
) -> tuple[subprocess.CompletedProcess[str], Any]:
    """``tracer record --upstream UPSTREAM -o OUT [options] -- ARGV`` with a fake key; the
    run, and the JSON the client printed last (its own account). Fails on a failed run."""
    proc = run_tracer(
        "record", "--upstream", upstream, "-o", str(out), *options, "--", *argv,
        env_extra={"OPENAI_API_KEY": key}, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads(proc.stdout.strip().splitlines()[-1])


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


@pytest.fixture(scope="session")
def node_tools() -> Path:
    """The pinned Node clients, installed into .tools/node from tests/clients/node."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if not npm or not node:
        pytest.skip("Node.js and npm are not on this machine")
    NODE.mkdir(parents=True, exist_ok=True)
    wanted = (NODE_CLIENTS / "package.json").read_text()
    installed = NODE / "package.json"
    if (
        not (NODE / "node_modules").exists()
        or not installed.exists()
        or (installed.read_text() != wanted)
    ):
        installed.write_text(wanted)
        proc = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        if proc.returncode != 0:
            pytest.skip(f"npm could not install the Node clients: {proc.stderr[-300:]}")
    for script in NODE_CLIENTS.glob("*.mjs"):  # ES modules resolve beside node_modules
        shutil.copy(script, NODE / script.name)
    return NODE


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    """The client conformance matrix as a table, when its tests ran (tests/clients)."""
    reports = [
        r
        for outcome in ("passed", "failed", "skipped", "error")
        for r in terminalreporter.stats.get(outcome, [])
        if "test_matrix.py::test_client_is_recorded_and_replayed" in getattr(r, "nodeid", "")
        and getattr(r, "when", "call") in ("call", "setup")
    ]
    if not reports:
        return
    from tests.clients.test_matrix import RESULTS, ROWS

    order = {row.id: i for i, row in enumerate(ROWS)}
    reports.sort(key=lambda r: order.get(r.nodeid.split("[", 1)[1].rstrip("]"), len(order)))
    details = {str(r["id"]): r for r in RESULTS}
    terminalreporter.section("client conformance matrix")
    terminalreporter.write_line(
        f"{'client / transport':<56} {'result':<8} turns conns resent ref cached  replay"
    )
    seen = set()
    for r in reports:
        row_id = r.nodeid.split("[", 1)[1].rstrip("]")
        if row_id in seen or (r.when == "setup" and r.outcome == "passed"):
            continue
        seen.add(row_id)
        d = details.get(row_id, {})
        outcome = r.outcome
        why = ""
        if outcome == "skipped" and isinstance(r.longrepr, tuple):
            why = "  " + str(r.longrepr[2]).removeprefix("Skipped: ")
        figures = (
            f"{d.get('turns', '-'):>5} {d.get('connections', '-'):>5} "
            f"{d.get('resent_items', '-'):>6} {d.get('referenced_items', '-'):>3} "
            f"{d.get('cached_tokens', '-'):>6}  "
            f"{d.get('replay', '-')}"
            if outcome == "passed"
            else ""
        )
        terminalreporter.write_line(f"{row_id:<56} {outcome:<8} {figures}{why}")
