"""What sessions cost, exact to the pricing file's figures.

The prices are chosen so that every expected cost is a sum a reader can check; the token
counts come from the scripted upstream's own log (the usage it sent), never from tracer's
report. A session is priced with ``Session(pricing=...)``, as ``load`` and every command do.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from tests.analysis.test_report import record_demo
from tests.conftest import run_tracer
from tracer.analysis.load import load
from tracer.analysis.pricing import DEFAULT_PRICING, Price, Pricing, PricingError, load_pricing
from tracer.protocols.base import Tokens
from tracer.upstream import default_script
from tracer.upstream.script import parse_profile

PRICES = {"input": 2.0, "cached_input": 0.5, "cache_write": 2.5, "output": 8.0}
MODEL = "tracer-demo-model"


@pytest.fixture
def pricing(tmp_path: Path) -> Pricing:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": {"tracer-demo": PRICES}}))  # a prefix of MODEL
    return load_pricing(path)


def expected(usage: dict, prices: dict = PRICES) -> float:
    """The issue's formula, by hand, at the prices above (USD)."""
    details = usage.get("input_tokens_details") or {}
    cached = details.get("cached_tokens", 0)
    written = details.get("cache_write_tokens", 0)
    plain = usage["input_tokens"] - cached - written
    return (
        plain * prices["input"]
        + cached * prices["cached_input"]
        + written * prices["cache_write"]
        + usage["output_tokens"] * prices["output"]
    ) / 1e6


def record(tmp_path: Path, name: str, profile: str = "openai", **options) -> tuple[Path, list]:
    """The demo agent recorded against the upstream; the upstream's log of what it sent."""
    script = replace(default_script(), profile=parse_profile(profile))
    path = tmp_path / f"{name}.trace"
    return path, record_demo(path, script, **options)


def test_a_full_resend_costs_the_resent_tokens_at_the_input_price(tmp_path, pricing):
    inc_path, inc_log = record(tmp_path, "inc")
    full_path, full_log = record(tmp_path, "full", resend_full_history=True)
    inc, full = load(inc_path, pricing=pricing).report, load(full_path, pricing=pricing).report
    for report, log in ((inc, inc_log), (full, full_log)):
        by_id = {e["response_id"]: e for e in log}
        for t in report.turns:
            assert t.cost_usd == pytest.approx(expected(by_id[t.response_id]["usage"]), abs=1e-9)
        turns = [by_id[t.response_id]["usage"] for t in report.turns if not t.warmup]
        warmups = [by_id[t.response_id]["usage"] for t in report.turns if t.warmup]
        assert report.summary.cost_usd == pytest.approx(sum(map(expected, turns)), abs=1e-6)
        assert report.summary.warmup_cost_usd == pytest.approx(
            sum(map(expected, warmups)), abs=1e-6
        )
        assert report.summary.unpriced_models == [] and report.summary.priced_turns == len(log)
    assert inc.summary.warmups == 1 and inc.summary.warmup_cost_usd > 0  # priced apart
    # The difference: the tokens the full resend sent again, at the input price, less what
    # the incremental client's cached tokens cost.
    real = [e["usage"] for e in inc_log if e["usage"]["output_tokens"]]
    cached = sum(u["input_tokens_details"]["cached_tokens"] for u in real)
    more_in = sum(e["usage"]["input_tokens"] for e in full_log) - sum(
        u["input_tokens"] for u in real
    )
    gap = (more_in * PRICES["input"] + cached * (PRICES["input"] - PRICES["cached_input"])) / 1e6
    assert full.summary.cost_usd - inc.summary.cost_usd == pytest.approx(gap, abs=1e-6)
    assert inc.summary.saved_by_cache_usd == pytest.approx(
        cached * (PRICES["input"] - PRICES["cached_input"]) / 1e6
        + sum(
            e["usage"]["input_tokens_details"]["cached_tokens"]
            for e in inc_log
            if not e["usage"]["output_tokens"]
        )
        * 1.5e-6,
        abs=1e-6,
    )
    assert full.summary.resent_chain_usd > 0 and inc.summary.resent_chain_usd == 0


def test_a_lost_cache_has_its_price(tmp_path, pricing):
    path, log = record(tmp_path, "loss", reconnect_after=4)
    report = load(path, pricing=pricing).report
    by_id = {e["response_id"]: e for e in log}
    (recovery,) = [t for t in report.turns if t.resent_reason == "cache_loss"]
    usage = by_id[recovery.response_id]["usage"]
    input_cost = expected({**usage, "output_tokens": 0})
    share = recovery.resent_bytes / recovery.input_bytes
    assert report.summary.resent_cache_loss_usd == pytest.approx(input_cost * share, abs=1e-6)
    assert recovery.resent_usd == pytest.approx(input_cost * share, abs=1e-9)
    assert report.summary.resent_cache_loss_usd > 0


def test_cache_writes_are_billed(tmp_path, pricing):
    path, log = record(tmp_path, "writes", profile="cache-write")
    report = load(path, pricing=pricing).report
    by_id = {e["response_id"]: e for e in log}
    written = [
        by_id[t.response_id]["usage"]["input_tokens_details"]["cache_write_tokens"]
        for t in report.turns
    ]
    assert [t.cache_write_tokens for t in report.turns] == written and sum(written) > 0
    for t in report.turns:
        assert t.cost_usd == pytest.approx(expected(by_id[t.response_id]["usage"]), abs=1e-9)
        assert t.cache_write_usd == pytest.approx(
            by_id[t.response_id]["usage"]["input_tokens_details"]["cache_write_tokens"] * 2.5e-6
        )
    assert report.summary.cache_write_tokens == sum(written)
    assert report.summary.cache_write_usd == pytest.approx(sum(written) * 2.5e-6, abs=1e-6)


def test_a_request_above_the_long_context_threshold_pays_the_tier():
    price = Price(
        input=2.0,
        cached_input=0.5,
        cache_write=2.5,
        output=8.0,
        long_above=272_000,
        long_input_factor=2.0,
        long_output_factor=1.5,
    )
    table = Pricing({"m": price})
    below = table.cost("m", Tokens(input=272_000, cached=72_000, output=1_000))
    above = table.cost("m", Tokens(input=272_001, cached=72_000, output=1_000))
    assert below is not None and above is not None
    assert below.total == pytest.approx((200_000 * 2 + 72_000 * 0.5 + 1_000 * 8) / 1e6)
    # The whole request moves: every input price doubles, output x1.5.
    assert above.total == pytest.approx((200_001 * 4 + 72_000 * 1.0 + 1_000 * 12) / 1e6)


def test_a_model_without_a_price_is_null_with_a_note(tmp_path):
    path, _ = record(tmp_path, "unpriced")
    report = load(path, pricing=Pricing({})).report
    assert all(t.cost_usd is None for t in report.turns)
    assert report.summary.cost_usd is None and report.summary.unpriced_models == [MODEL]
    out = run_tracer("cost", str(path), env_extra={"COLUMNS": "140"}).stdout
    assert f"no price for {MODEL}: give one with --pricing FILE" in out


def test_prices_by_the_longest_prefix_and_a_users_file_wins(tmp_path: Path):
    path = tmp_path / "p.toml"
    path.write_text(
        '[models."gpt-5.6"]\ninput = 1.0\noutput = 2.0\n'
        '[models."gpt-5.6-sol"]\ninput = 3.0\noutput = 4.0\n'
    )
    table = load_pricing(path)
    assert table.find("gpt-5.6-sol-2026-07-09").input == 3.0  # the longest prefix
    assert table.find("gpt-5.6-2026-07-09").input == 1.0  # the user's gpt-5.6 beats the default's
    assert table.find("gpt-5.6-terra").input == 2.5  # a longer name of the default still wins
    assert table.find("gpt-5.4-mini").input == DEFAULT_PRICING.find("gpt-5.4-mini").input
    assert table.find("nothing-like-it") is None
    assert all(p.source for p in DEFAULT_PRICING.models.values())  # every default says whence


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("{", "does not parse"),
        ('{"models": {}}', "at least one model"),
        ('{"models": {"m": {"input": 1}}}', "'output' is required"),
        ('{"models": {"m": {"input": -1, "output": 1}}}', "must be a number >= 0"),
        ('{"models": {"m": {"input": 1, "output": 1, "fee": 2}}}', "unknown key(s) ['fee']"),
    ],
)
def test_a_bad_pricing_file_is_one_clear_error(tmp_path: Path, content: str, error: str):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(PricingError) as info:
        load_pricing(path)
    assert error in str(info.value)
    trace = Path(__file__).resolve().parents[2] / "traces" / "incremental.trace"
    proc = run_tracer("cost", str(trace), "--pricing", str(path))
    assert proc.returncode == 2 and error in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_cost_json_and_diff_fail_on_cost(tmp_path: Path):
    prices = tmp_path / "p.json"
    prices.write_text(json.dumps({"models": {MODEL: PRICES}}))
    root = Path(__file__).resolve().parents[2] / "traces"
    data = json.loads(
        run_tracer(
            "cost",
            str(root / "incremental.trace"),
            str(root / "full-resend.trace"),
            "--json",
            "--pricing",
            str(prices),
        ).stdout
    )
    a, b = data["traces"]
    assert data["total"]["cost_usd"] == pytest.approx(
        a["summary"]["cost_usd"] + b["summary"]["cost_usd"]
    )
    assert a["models"][0]["model"] == MODEL and a["models"][0]["cost_usd"] > 0
    diff = run_tracer(
        "diff",
        str(root / "incremental.trace"),
        str(root / "full-resend.trace"),
        "--pricing",
        str(prices),
        "--fail-on",
        "cost_usd>0.01",
    )
    assert diff.returncode == 3 and "cost_usd rose" in diff.stderr
    same = run_tracer(
        "diff",
        str(root / "incremental.trace"),
        str(root / "incremental.trace"),
        "--pricing",
        str(prices),
        "--fail-on",
        "cost_usd>0.01",
    )
    assert same.returncode == 0


def test_the_example_pricing_file_loads_and_prices_the_samples():
    root = Path(__file__).resolve().parents[2]
    table = load_pricing(root / "docs" / "prices.example.json")
    report = load(root / "traces" / "incremental.trace", pricing=table).report
    assert report.summary.cost_usd is not None and report.summary.unpriced_models == []
