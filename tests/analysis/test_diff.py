"""``tracer diff`` on pairs of sessions recorded from the scripted upstream."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jsonschema
import pytest

from tests.analysis.test_report import record_demo
from tests.conftest import ROOT, assert_clean_error, run_tracer
from tracer.analysis import analyse
from tracer.analysis import diff_files as load_diff
from tracer.trace import open_trace
from tracer.upstream import Call, Timing, TurnScript, default_script


def diff_files(a: Path, b: Path):
    return load_diff(a, b)[0]


@pytest.fixture(scope="module")
def incremental(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("diff") / "inc.trace"
    record_demo(path)
    return path


def test_incremental_against_full_resend(incremental: Path, tmp_path: Path):
    full = tmp_path / "full.trace"
    record_demo(full, resend_full_history=True)
    report = diff_files(incremental, full)
    with open_trace(incremental) as r:
        a = analyse(r).summary
    with open_trace(full) as r:
        b = analyse(r).summary
    assert report.deltas["resent_bytes"] == b.resent_bytes - a.resent_bytes > 100_000
    assert report.deltas["cached_tokens"] == b.cached_tokens - a.cached_tokens < 0
    assert report.deltas["bytes_sent"] == b.bytes_sent - a.bytes_sent
    kinds = [row.kind for row in report.turns]
    assert kinds == ["removed"] + ["same"] * 13  # the warm-up is only in A
    assert any(h.startswith("B resent") and "more" in h for h in report.headline)
    assert any(h.startswith("cached tokens") for h in report.headline)
    row = report.turns[5]
    assert any("does not chain" in c for c in row.changes)
    assert row.deltas["resent_bytes"] == row.b_values["resent_bytes"] > 0


def test_one_inserted_tool_call_keeps_the_alignment(incremental: Path, tmp_path: Path):
    base = default_script()
    extra = TurnScript(text="Let me double-check one thing.", calls=(Call("exec_command",
                       '{"cmd":"uname -a"}'),))  # fmt: skip
    longer = dataclasses.replace(base, turns=(*base.turns[:3], extra, *base.turns[3:]))
    inserted = tmp_path / "inserted.trace"
    record_demo(inserted, script=longer)
    report = diff_files(incremental, inserted)
    kinds = [row.kind for row in report.turns]
    assert kinds.count("added") == 1
    assert kinds.count("same") == 14 and "removed" not in kinds and "changed" not in kinds
    added = next(r for r in report.turns if r.kind == "added")
    assert added.b == 4  # warm-up, three turns, then the inserted one
    after = report.turns[report.turns.index(added) + 1]
    assert (after.a, after.b) == (4, 5)
    assert any("turns 14 → 15" in h for h in report.headline)


def test_slower_upstream_shows_the_latency_difference(tmp_path: Path):
    fast = dataclasses.replace(default_script(), timing=Timing(ttfe_ms=5, ttft_ms=30, jitter=0))
    slow = dataclasses.replace(default_script(), timing=Timing(ttfe_ms=5, ttft_ms=230, jitter=0))
    a, b = tmp_path / "fast.trace", tmp_path / "slow.trace"
    record_demo(a, script=fast)
    record_demo(b, script=slow)
    report = diff_files(a, b)
    delta = report.deltas["ttft_p50_ms"]
    assert 160 <= delta <= 260, delta
    assert any(h.startswith("time to first token p50 +") for h in report.headline)
    assert all(row.kind in ("same",) for row in report.turns)


def test_http_against_websocket(incremental: Path, tmp_path: Path):
    http = tmp_path / "http.trace"
    record_demo(http, transport="http")
    report = diff_files(incremental, http)
    assert report.headline[0].startswith("A uses websocket, B uses http; connections 1 → 13")
    kinds = [row.kind for row in report.turns]
    assert kinds == ["removed"] + ["same"] * 13
    assert any("transport websocket → http" in c for c in report.turns[1].changes)


def test_identical_traces_report_no_difference(incremental: Path):
    report = diff_files(incremental, incremental)
    assert report.identical is True
    assert report.headline == []
    assert all(r.kind == "same" and r.changes == [] for r in report.turns)
    assert all(v == 0 for v in report.deltas.values() if v is not None)


def test_fail_on_exit_codes_through_the_cli(tmp_path: Path):
    inc = str(ROOT / "traces" / "incremental.trace")
    full = str(ROOT / "traces" / "full-resend.trace")
    worse = run_tracer("diff", inc, full, "--fail-on", "resent_bytes>10%", "--json")
    assert worse.returncode == 3
    data = json.loads(worse.stdout)
    jsonschema.validate(data, json.loads((ROOT / "docs/schema/diff.schema.json").read_text()))
    assert data["failed"][0].startswith("resent_bytes rose")
    better = run_tracer("diff", full, inc, "--fail-on", "resent_bytes>10%")
    assert better.returncode == 0
    fewer_cached = run_tracer("diff", inc, full, "--fail-on", "cached_tokens<5%")
    assert fewer_cached.returncode == 3
    assert "regression" in fewer_cached.stderr
    within = run_tracer("diff", inc, inc, "--fail-on", "ttft_p50_ms>50ms", "--json")
    assert within.returncode == 0 and json.loads(within.stdout)["identical"] is True
    assert_clean_error(run_tracer("diff", inc, full, "--fail-on", "vibes>3"))
    assert_clean_error(run_tracer("diff", inc, str(tmp_path / "missing.trace")))
