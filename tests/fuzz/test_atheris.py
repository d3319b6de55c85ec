"""Coverage-guided fuzzing with atheris (libFuzzer) of everything that reads a trace: the
reader, the analysis, the diff, the replay loader, every exporter and the HTML report.

libFuzzer bounds each input's time (-timeout) and the process's memory (-rss_limit_mb); a
crash, a hang or a memory blow-up fails the test and leaves the input in the test's
directory (copy it into tests/fuzz/corpus/ once it is fixed).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytest.importorskip("atheris", reason="atheris does not install on this platform")

HERE = Path(__file__).parent
RUNS = 60_000


@pytest.mark.slow
def test_atheris_finds_no_crash(tmp_path: Path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for path in [*(HERE / "corpus").iterdir(), *(ROOT / "traces").glob("*.trace")]:
        if path.stat().st_size <= 32_000:  # big seeds only slow the mutations down
            shutil.copy(path, seeds / path.name)
    proc = subprocess.run(
        [sys.executable, str(HERE / "atheris_trace.py"), f"-runs={RUNS}", "-max_total_time=120",
         "-timeout=20", "-rss_limit_mb=2048", "-max_len=65536", "-seed=20261125",
         f"-artifact_prefix={tmp_path}/", str(seeds)],
        capture_output=True, text=True, timeout=1200, cwd=tmp_path,
    )  # fmt: skip
    kinds = ("crash-", "timeout-", "oom-", "leak-")
    found = [p.name for p in tmp_path.iterdir() if p.name.startswith(kinds)]
    assert proc.returncode == 0 and not found, (found, proc.stderr[-4000:])
    done = [line for line in proc.stderr.splitlines() if line.startswith("Done")]
    print(done[-1] if done else proc.stderr[-300:])
    assert done, proc.stderr[-2000:]
