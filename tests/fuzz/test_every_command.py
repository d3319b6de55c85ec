"""Hostile trace files against every command that reads a trace.

Each file of the corpus (tests/fuzz/corpus/, rebuilt by make_corpus.py) goes through every
such command in a fresh process: each either succeeds or fails with one `tracer: error:`
line and a non-zero exit code, never a traceback or an internal error, within a time bound,
and the process's peak memory stays bounded.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT

CORPUS = sorted((Path(__file__).parent / "corpus").iterdir())
PEAK_RSS_BOUND_MB = 1024


def check(results: list[dict]) -> None:
    for r in results:
        where = " ".join(r["args"])
        assert r["code"] != "timeout", f"{where}: over the time bound"
        assert "Traceback" not in r["stderr"], f"{where}: {r['stderr']}"
        assert r["code"] != 70, f"{where}: internal error: {r['stderr']}"
        if r["code"] != 0 and r["args"][0] not in ("verify", "stats"):  # damage in the report
            lines = [x for x in r["stderr"].splitlines() if x.startswith("tracer: error: ")]
            assert len(lines) == 1, f"{where}: {r['stderr']!r}"


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_every_command_survives_the_corpus(path: Path, tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "run_commands.py"), str(path), str(tmp_path)],
        capture_output=True, text=True, timeout=3600, cwd=ROOT,  # a hang guard
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.splitlines()[-1])
    check(report["results"])
    assert report["peak_rss_mb"] < PEAK_RSS_BOUND_MB, report["peak_rss_mb"]
    slowest = max(report["results"], key=lambda r: r["seconds"])
    print(f"{path.name}: peak {report['peak_rss_mb']} MB, slowest {' '.join(slowest['args'][:1])}"
          f" {slowest['seconds']} s (guard {report['guard_s']} s)")  # fmt: skip


def test_the_corpus_holds_every_generated_kind():
    sys.path.insert(0, str(Path(__file__).parent))
    from make_corpus import corpus

    assert {p.name for p in CORPUS} >= set(corpus())


SAMPLES = sorted((ROOT / "traces").glob("*.trace"))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    sample=st.sampled_from(SAMPLES),
    flips=st.lists(st.tuples(st.integers(0, 20_000), st.integers(1, 255)), max_size=3),
    cut=st.integers(0, 20_000),
    which=st.integers(0, 10_000),
)
def test_mutated_traces_through_a_random_command(sample, flips, cut, which, tmp_path_factory):
    """Hypothesis mutates a sample (bytes flipped, the end cut) and runs one command on it,
    in this process: a clean result or one error line, in bounded time."""
    sys.path.insert(0, str(Path(__file__).parent))
    import run_commands

    data = bytearray(sample.read_bytes()[: max(cut, 16)])
    for pos, xor in flips:
        if pos < len(data):
            data[pos] ^= xor
    tmp = tmp_path_factory.mktemp("mutated")
    path = tmp / "m.trace"
    path.write_bytes(bytes(data))
    commands = [c for c in run_commands.commands(str(path), str(tmp)) if "--jobs" not in c]
    args = commands[which % len(commands)]
    signal.signal(signal.SIGALRM, run_commands.on_alarm)
    check([run_commands.run(args)])
