"""Small hostile traces cannot cost gigabytes and minutes: past a documented cap (turns,
connections) a command stops with one line naming the cap and how to raise it.

What is bounded does not depend on the machine's speed: each command's own peak memory,
and that it stopped at the cap (its message says which). Time is only a hang guard (the
subprocess timeout); `bench/` measures speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import assert_clean_error
from tracer.trace import Direction, Opcode, Open, create_trace


def _many_turns(path: Path, n: int) -> None:
    create = b'{"type":"response.create","input":"x"}'
    with create_trace(path, flush_interval=None) as w:
        w.write(Open(conn=1, t_ns=0, url="/v1/responses"))
        w.write_frames([(1, i + 1, Direction.CLIENT, Opcode.TEXT, create, True) for i in range(n)])


def _many_connections(path: Path, n: int) -> None:
    with create_trace(path, flush_interval=None) as w:
        for i in range(n):
            w.write(Open(conn=i + 1, t_ns=i, url="/v1/responses"))


# Runs the command in a fresh process and reports that command's own peak memory (a
# process's RUSAGE_CHILDREN covers every child it ever had: pytest's would not do).
_MEASURE = (
    "import json, resource, subprocess, sys\n"
    "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "print(json.dumps({'rc': p.returncode, 'out': p.stdout, 'err': p.stderr,\n"
    "                  'kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n"
)


def _run(
    *args: str, env_extra: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], float]:
    """The command's result and its own peak RSS in MB (a hang fails at the timeout)."""
    wrapper = subprocess.run(
        [sys.executable, "-c", _MEASURE, sys.executable, "-m", "tracer", *args],
        capture_output=True, text=True, timeout=300, env={**os.environ, **(env_extra or {})},
    )  # fmt: skip
    m = json.loads(wrapper.stdout)
    proc = subprocess.CompletedProcess(args, m["rc"], m["out"], m["err"])
    return proc, m["kb"] / 1024


@pytest.mark.parametrize(
    "kind, make, n, cap",
    [("turns", _many_turns, 1_000_000, "TRACER_MAX_TURNS"),
     ("connections", _many_connections, 300_000, "TRACER_MAX_CONNECTIONS")],
)  # fmt: skip
def test_a_trace_past_a_cap_stops_with_one_line(tmp_path: Path, kind, make, n, cap):
    path = tmp_path / f"{kind}.trace"
    make(path, n)
    assert path.stat().st_size < 2_000_000  # small on disk, huge in what it claims
    for command in (["inspect", "--json"], ["cache"], ["report"], ["stats", "--json"]):
        proc, peak_mb = _run(*command[:1], str(path), *command[1:])
        assert peak_mb < 300, (command, peak_mb)
        if command[0] == "stats":  # one row per trace: the row says why
            (row,) = json.loads(proc.stdout)["traces"]
            assert proc.returncode == 1 and f"{kind} cap" in row["error"], row
            continue
        assert_clean_error(proc)
        assert f"{kind} cap" in proc.stderr and cap in proc.stderr, proc.stderr


def _empty_frames(path: Path, n: int) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "fuzz"))
    from make_corpus import repeated_batches

    batch = [6, 1, [0] * 65536, b"\x11" * 65536, None, b"\xff" * 65535]
    opens = [[1, 1, 0, {"url": "/v1/responses"}]]
    path.write_bytes(repeated_batches(1, batch, n // 65536, opens=opens))


@pytest.mark.parametrize(
    "command",
    [["inspect", "--json"], ["verify"], ["frames"], ["frames", "--conn", "2"],
     ["compact", "-o", "{tmp}/c.trace"], ["export", "-f", "har", "-o", "{tmp}/e.har"],
     ["export", "-f", "jsonl", "-o", "{tmp}/e.jsonl"]],
)  # fmt: skip
def test_sixty_five_million_empty_frames_stop_at_the_cap(tmp_path: Path, command):
    """40 KB that claim 65M frames: verify counts them all at the reader's pace; the
    rest stop at the frames cap (or at frames' row limit) with one line."""
    path = tmp_path / "empty-frames.trace"
    if not path.exists():
        _empty_frames(path, 65_000_000)
    assert path.stat().st_size < 100_000
    args = [a.replace("{tmp}", str(tmp_path)) for a in command[1:]]
    proc, peak_mb = _run(command[0], str(path), *args)
    assert peak_mb < 300, (command, peak_mb)
    if command[0] == "verify":
        assert proc.returncode == 1 and "truncated" in proc.stdout  # it has no footer
        assert "64946176 frames" in proc.stdout.replace(",", ""), proc.stdout
    elif command == ["frames"]:
        assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 100_000
        assert "--limit 0 lists them all" in proc.stderr
    else:
        assert_clean_error(proc)
        assert "frames cap" in proc.stderr and "TRACER_MAX_FRAMES" in proc.stderr, proc.stderr


def test_a_cap_can_be_raised(tmp_path: Path):
    path = tmp_path / "turns.trace"
    _many_turns(path, 1_000)
    proc, _ = _run("inspect", "--json", str(path), env_extra={"TRACER_MAX_TURNS": "500"})
    assert_clean_error(proc)
    proc, _ = _run("inspect", "--json", str(path), env_extra={"TRACER_MAX_TURNS": "5000"})
    assert proc.returncode == 0, proc.stderr
