"""Compaction over HTTP, recorded from the openai SDK through ``tracer record`` against the
scripted upstream: the compact call is a turn of its own kind, priced apart; what it
returned starts the next chain as compacted items, neither new nor resent; the
conversation and the client's time carry across it. Ground truth: the SDK's account and
the upstream's log."""

from __future__ import annotations

import sys

import pytest

from tests.analysis.paths import assert_both_paths_agree
from tests.conftest import ROOT, record_client, run_tracer
from tracer.analysis.load import load
from tracer.analysis.pricing import DEFAULT_PRICING
from tracer.upstream import running_upstream

CLIENT = ROOT / "tests" / "clients" / "compaction_client.py"


def test_a_compaction_chain_over_http(tmp_path):
    out = tmp_path / "compact.trace"
    with running_upstream() as upstream:
        _, client = record_client(
            f"http://127.0.0.1:{upstream.port}", out, [sys.executable, str(CLIENT)]
        )
        log = list(upstream.engine.log)
    report = load(out, pricing=DEFAULT_PRICING).report
    assert_both_paths_agree(out)
    turns = report.turns
    # Every request is a turn: the compact call too, of its own kind.
    assert [t.response_id for t in turns] == client["ids"] == [e["response_id"] for e in log]
    assert [t.kind for t in turns] == ["response", "response", "compaction", "response", "response"]
    assert [e.get("kind", "response") for e in log] == [t.kind for t in turns]
    assert report.summary.turns == 5 and report.summary.compactions == 1
    compaction, after = turns[2], turns[3]
    assert compaction.input_tokens == client["compaction_usage"]["input_tokens"]
    assert compaction.output_tokens == client["compaction_usage"]["output_tokens"]
    # What the compaction returned comes back first in the next chain: compacted.
    assert after.compacted_items == client["compacted"] == log[2]["output_items"]
    assert (after.resent_items, after.input_items) == (0, client["compacted"] + 1)
    assert after.new_bytes == after.input_bytes - after.compacted_bytes > 0
    # One conversation across it; the client's time before the next turn is counted.
    assert len({t.conversation for t in turns}) == 1
    assert after.client_ms is not None and after.client_ms >= 0
    # Priced apart: the session's cost is its responses'; the compaction has its own.
    price = DEFAULT_PRICING.find("gpt-5.6")
    usage = log[2]["usage"]
    expected = (usage["input_tokens"] * price.input + usage["output_tokens"] * price.output) / 1e6
    assert report.summary.compaction_cost_usd == pytest.approx(expected, abs=1e-6)
    responses = [t.cost_usd for t in turns if t.kind == "response"]
    assert report.summary.cost_usd == pytest.approx(sum(responses), abs=1e-6)
    text = run_tracer("inspect", str(out), env_extra={"COLUMNS": "160"}).stdout
    assert "5 turns (1 compaction)" in text
