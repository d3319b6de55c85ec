"""Errors that used to be silent: watch on a foreign file, a compacted truncated trace that
verified as ok, a compaction that grew the trace without a word."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from tests.conftest import ROOT, assert_clean_error, run_tracer

SAMPLE = ROOT / "traces" / "incremental.trace"


def test_watch_on_a_file_that_is_not_a_trace_says_so(tmp_path: Path):
    other = tmp_path / "notes.txt"
    other.write_text("these are not the frames you are looking for\n")
    proc = run_tracer("watch", str(other))
    assert_clean_error(proc)
    assert "not a tracer trace" in proc.stderr


def test_a_compacted_truncated_trace_still_verifies_as_truncated(tmp_path: Path):
    data = SAMPLE.read_bytes()
    cut = tmp_path / "cut.trace"
    cut.write_bytes(data[: len(data) * 3 // 4])
    assert json.loads(run_tracer("verify", "--json", str(cut)).stdout)["truncated"]
    copy = tmp_path / "copy.trace"
    assert run_tracer("compact", str(cut), "-o", str(copy)).returncode == 0
    proc = run_tracer("verify", "--json", str(copy))
    report = json.loads(proc.stdout)
    assert proc.returncode == 1 and report["truncated"] and report["truncated_source"]
    assert report["complete"] and report["error"] is None  # whole as a file
    text = run_tracer("verify", str(copy))
    assert "TRUNCATED" in text.stdout and "compacted from a truncated trace" in text.stdout


def test_compact_says_when_its_result_is_larger(tmp_path: Path):
    out = tmp_path / "low.trace"
    proc = run_tracer("compact", str(SAMPLE), "-o", str(out), "--level", "1", "--json")
    assert proc.returncode == 0
    result = json.loads(proc.stdout)
    assert result["bytes_after"] > result["bytes_before"]  # the sample is already level 19
    assert "larger than the source" in result["warning"]
    assert "tracer: warning: the compacted trace is larger" in proc.stderr
    small = json.loads(run_tracer("compact", str(SAMPLE), "-o", str(out), "--json").stdout)
    assert small["warning"] is None


def test_interrupting_a_launched_command_exits_130_and_sigterm_143(tmp_path: Path):
    import signal
    import subprocess
    import sys
    import time

    from tracer.upstream import running_upstream

    codes = {}
    with running_upstream() as upstream:
        for sig in (signal.SIGINT, signal.SIGTERM):
            out = tmp_path / f"{sig.name}.trace"
            proc = subprocess.Popen(
                [sys.executable, "-m", "tracer", "record", "--upstream",
                 f"http://127.0.0.1:{upstream.port}", "-o", str(out), "--json", "--",
                 sys.executable, "-c", "import time; time.sleep(60)"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            time.sleep(1.5)
            proc.send_signal(sig)
            stdout, _ = proc.communicate(timeout=30)
            codes[sig.name] = (proc.returncode, json.loads(stdout)["trace_ok"])
    assert codes == {"SIGINT": (130, True), "SIGTERM": (143, True)}


def test_an_unreachable_upstream_during_record_is_said_on_stderr(tmp_path: Path):
    from tests.hardening.helpers import free_port

    client = (
        "import os, urllib.request\n"
        "req = urllib.request.Request(os.environ['OPENAI_BASE_URL'] + '/responses', data=b'{}')\n"
        "try:\n    urllib.request.urlopen(req)\nexcept Exception as exc:\n    print(exc)\n"
    )
    proc = run_tracer(
        "record", "--upstream", f"http://127.0.0.1:{free_port()}", "-o",
        str(tmp_path / "u.trace"), "--", sys_executable(), "-c", client,
    )  # fmt: skip
    lines = [x for x in proc.stderr.splitlines() if "cannot reach upstream" in x]
    assert len(lines) == 1 and "Connection refused" in lines[0], proc.stderr
    assert "502" in proc.stdout  # what the client itself got


def test_export_of_a_directory_exports_its_traces(tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_tracer("export", str(empty))
    assert_clean_error(proc)
    assert f"no trace files (*.trace) in the directory '{empty}'" in proc.stderr
    fleet = tmp_path / "fleet"
    (fleet / "day").mkdir(parents=True)
    for name in ("incremental", "http"):
        shutil.copy(ROOT / "traces" / f"{name}.trace", fleet / "day" / f"{name}.trace")
    out = tmp_path / "out"
    proc = run_tracer("export", str(fleet), "-f", "jsonl", "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    exported = json.loads(proc.stdout)["exports"]
    assert sorted(Path(e["trace"]).name for e in exported) == ["http.trace", "incremental.trace"]


def sys_executable() -> str:
    import sys

    return sys.executable


def test_help_speaks_in_words():
    """No <bool> on flags, no <list[str]>, <int range>, <path> or <str> metavars, and byte
    defaults in human units, for every command's --help."""
    top = run_tracer("--help", env_extra={"COLUMNS": "200"})
    names = re.findall(r"^│ (\w+)\s{2,}", top.stdout, re.M)
    assert "record" in names and "replay" in names
    for name in names:
        out = run_tracer(name, "--help", env_extra={"COLUMNS": "200"}).stdout
        for raw in ("<bool>", "<list[", "<int range>", "<float range>", "<path>", "<str>",
                    "67108864", "16777216"):  # fmt: skip
            assert raw not in out, (name, raw)
        assert not re.search(r"[a-z] \.(\s|$)", out), name  # "in parallel ."


def test_the_command_list_gives_each_command_one_line():
    """`tracer --help` lists each command with its docstring's first paragraph as one
    line, not broken where the docstring's lines break ("saved; resent" / "context")."""
    top = run_tracer("--help", env_extra={"COLUMNS": "250"}).stdout
    rows = dict(re.findall(r"^│ (\w+)\s{2,}(.*?)\s*│$", top, re.M))
    assert len(rows) >= 20, top
    assert rows["cost"] == (
        "What each session cost, per model and conversation; what caching saved; resent "
        "context by reason."
    )
    assert all(text.endswith(".") for text in rows.values()), rows  # no row cut short
