"""Small traces that decompress or parse into huge sessions, through every command that
reads a trace, each command in a process of its own (issue #26).

The traces are the fuzz corpus's (tests/fuzz/make_corpus.py, ``hostile_sizes``): 1,024 server
frames of 1 MiB in 43 KB; one create of a million input items in 3 KB; 2,000 turns each
resending the whole history in 67 KB; a connection id of 2^64-1. Each command must succeed or
fail with one line, within a bounded peak memory (measured by the kernel for the child
alone, with ``wait4``) and a bounded output. Time depends on the machine: the test only
guards against a hang; the measured times are in the issue's note.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "tests" / "fuzz"))  # run_commands
from run_commands import commands

FUZZ = ROOT / "tests" / "fuzz"
CORPUS = FUZZ / "corpus"
HOSTILE = [
    "a-gibibyte-of-deltas.trace",
    "a-million-input-items.trace",
    "two-thousand-full-resends.trace",
    "connection-id-2-64-minus-1.trace",
]
PEAK_MB = 300  # per command, the child's own peak resident memory
OUTPUT_BYTES = 20 * 1024 * 1024  # what one command may print (frames --payload: 16 MiB)
HANG_S = 180  # not a speed target: a command past this is stuck


# The wrapper: a small process that forks the command and reports its peak. The kernel's
# peak of a process keeps what it had before exec: forked from pytest (hundreds of MB by
# then) the command would be charged for pytest's pages.
WRAPPER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, "-m", "tracer", *sys.argv[1:]])
_, status, usage = os.wait4(pid, 0)
code = os.waitstatus_to_exitcode(status)
sys.stderr.write(f"\\nwrapper: peak_kb {usage.ru_maxrss} exit {code}\\n")
"""


def measure(args: list[str]) -> dict[str, object]:
    """Run ``tracer ARGS`` under the wrapper: its exit code, peak memory, output size."""
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-S", "-c", WRAPPER, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    err: list[bytes] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read()))  # type: ignore[union-attr]
    reader.start()
    printed = 0
    timer = threading.Timer(HANG_S, proc.kill)
    timer.start()
    while chunk := proc.stdout.read(1 << 16):
        printed += len(chunk)
        if printed > OUTPUT_BYTES:
            break  # unbounded output: no need to read a gibibyte to know
    proc.stdout.close()  # a command still printing gets EPIPE
    proc.wait()
    timer.cancel()
    reader.join()
    stderr = err[0].decode("utf-8", "replace") if err else ""
    stderr, _, tail = stderr.rpartition("\nwrapper: ")
    words = tail.split()
    peak_kb, code = (int(words[1]), int(words[3])) if len(words) == 4 else (-1, -1)
    return {
        "args": args,
        "code": code,
        "seconds": round(time.monotonic() - start, 1),
        "peak_mb": round(peak_kb / 1024),
        "printed": printed,
        "stderr": stderr,
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", HOSTILE)
def test_every_command_stays_bounded_on_hostile_sizes(name: str, tmp_path: Path):
    made = tmp_path / name  # made here; the fuzz corpus keeps a copy of each
    make = (
        "import make_corpus, sys; "
        "open(sys.argv[2], 'wb').write(make_corpus.hostile_sizes()[sys.argv[1]])"
    )
    # In a process of its own: a child forked from a process that made them would count
    # this one's memory in its peak (the pages it shares until exec).
    subprocess.run([sys.executable, "-c", make, name, str(made)], check=True, cwd=FUZZ)
    trace = str(made)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(measure, commands(trace, str(tmp_path))))
    for r in results:
        print(f"{' '.join(map(str, r['args']))[-70:]:70} exit {r['code']:>3} "
              f"{r['seconds']:>5} s {r['peak_mb']:>4} MB printed {r['printed']:,}")  # fmt: skip
    for r in results:
        where = " ".join(map(str, r["args"]))
        assert r["code"] in (0, 1), f"{where}: exit {r['code']}: {r['stderr'][-500:]}"
        assert "Traceback" not in str(r["stderr"]), where
        if r["code"] == 1 and r["args"][0] not in ("verify", "stats"):
            lines = [x for x in str(r["stderr"]).splitlines() if x.startswith("tracer: error: ")]
            assert len(lines) == 1, f"{where}: {r['stderr']!r}"
        assert int(r["peak_mb"]) < PEAK_MB, f"{where}: peak {r['peak_mb']} MB"  # type: ignore[call-overload]
        assert int(r["printed"]) <= OUTPUT_BYTES, f"{where}: printed {r['printed']}"  # type: ignore[call-overload]


def test_the_hostile_sizes_are_what_they_claim():
    """The corpus files are the small files the issue describes, and claim what it says."""
    from tracer.trace.reader import open_trace

    sizes = {name: (CORPUS / name).stat().st_size for name in HOSTILE}
    assert all(size < 100_000 for size in sizes.values()), sizes
    payload = 0
    with open_trace(CORPUS / "a-gibibyte-of-deltas.trace") as reader:
        for run in reader.runs():
            payload += getattr(run, "payload_bytes", 0)
    assert payload >= 1 << 30


@pytest.mark.slow
def test_replay_serves_a_gibibyte_of_deltas_within_bounded_memory(tmp_path: Path):
    """Replay keeps large recorded payloads in a spill file and reads each as it sends it:
    the client gets every byte as recorded, and the server's memory stays bounded."""
    from websockets.sync.client import connect

    from tests.hardening.helpers import free_port, peak_rss_mb, wait_for_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracer", "replay", str(CORPUS / "a-gibibyte-of-deltas.trace"),
         "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port)
        with connect(f"ws://127.0.0.1:{port}/v1/responses", max_size=None) as ws:
            ws.send('{"type": "response.create", "input": "hi"}')  # as recorded
            got = [ws.recv(timeout=60) for _ in range(1024)]
        assert {len(m) for m in got} == {1 << 20}
        assert all(m.startswith('{"type":"response.output_text.delta"') for m in got)
        assert peak_rss_mb(proc.pid) < PEAK_MB, peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
