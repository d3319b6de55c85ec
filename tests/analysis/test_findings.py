"""Findings, one test each, on sessions the scripted upstream produces with that problem
(and one without any), the figures checked against the client's creates and the upstream's
log; the shapes the demo agent cannot produce are tables of frames."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from tests.analysis.test_report import client_creates, record_demo, report_of
from tests.conftest import ROOT, run_tracer
from tests.protocols.test_models import MS, C, S, script
from tracer.analysis.findings import FINDING_CODES, find
from tracer.analysis.load import load
from tracer.analysis.pricing import Pricing, load_pricing
from tracer.analysis.session import analyse
from tracer.trace.records import Close, Open
from tracer.upstream.script import default_script, parse_profile

PRICES = {"input": 2.0, "cached_input": 0.5, "output": 8.0}


def priced(tmp_path: Path, prices: dict = PRICES) -> Pricing:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": {"tracer-demo-model": prices}}))
    return load_pricing(path)


def codes(report) -> list[str]:
    return [f.code for f in find(report)]


def test_a_clean_session_has_no_finding(tmp_path):
    path = tmp_path / "clean.trace"
    record_demo(path, warmup=False)
    assert codes(load(path, pricing=priced(tmp_path)).report) == []


def test_resending_on_a_live_chain(tmp_path):
    path = tmp_path / "full.trace"
    log = record_demo(path, resend_full_history=True)
    report = load(path, pricing=priced(tmp_path)).report
    (f,) = [f for f in find(report) if f.code == "chain_resend"]
    creates = client_creates(path)
    # What the client sent again: every item of each create but its newest.
    resent = sum(
        len(json.dumps(i, separators=(",", ":")).encode())
        for c in creates[1:]
        for i in c["input"][:-1]
    )
    assert f.bytes == resent and f.severity == "high"
    assert f.turns == [t.index for t in report.turns[1:]]
    by_id = {e["response_id"]: e["usage"] for e in log}
    expected = sum(
        by_id[t.response_id]["input_tokens"]
        * PRICES["input"]
        / 1e6
        * t.resent_bytes
        / t.input_bytes
        for t in report.turns[1:]
    )
    assert f.cost_usd == pytest.approx(expected, abs=1e-6)


def test_a_lost_cache(tmp_path):
    path = tmp_path / "loss.trace"
    record_demo(path, reconnect_after=4, warmup=False)
    report = report_of(path)
    (f,) = [f for f in find(report) if f.code == "cache_loss"]
    (loss,) = report.cache_losses
    assert f.figures["kinds"] == {"reconnect": 1} and f.turns == [loss.turn]
    assert f.connections == [2] and f.bytes == loss.recovery_resent_bytes > 0


def test_resending_over_http_without_a_chain(tmp_path):
    path = tmp_path / "http.trace"
    record_demo(path, transport="http", resend_full_history=True, warmup=False)
    report = report_of(path)
    assert codes(report) == ["transport_resend"]
    (f,) = find(report)
    assert f.bytes == report.summary.resent_transport_bytes > 0


@pytest.mark.parametrize("cached_price", [2.0, 0.0])
def test_a_warmup_that_cost_more_than_it_saved(tmp_path, cached_price):
    path = tmp_path / "warm.trace"
    log = record_demo(path)
    prices = {**PRICES, "cached_input": cached_price}
    report = load(path, pricing=priced(tmp_path, prices)).report
    warm, after = report.turns[0], report.turns[1]
    by_id = {e["response_id"]: e["usage"] for e in log}
    cost = by_id[warm.response_id]["input_tokens"] * 2.0 / 1e6
    cached = by_id[after.response_id]["input_tokens_details"]["cached_tokens"]
    saved = cached * (2.0 - cached_price) / 1e6
    found = [f for f in find(report) if f.code == "warmup_cost"]
    assert bool(found) == (cost > saved)  # no discount: nothing saved; a deep one: it pays
    if found:
        assert found[0].cost_usd == pytest.approx(cost - saved, abs=1e-6)


def test_the_agents_own_time_dominates(tmp_path):
    path = tmp_path / "slow.trace"
    record_demo(path, warmup=False, tool_delay=0.2)
    report = report_of(path)
    (f,) = [f for f in find(report) if f.code == "client_time"]
    calls = len(client_creates(path)) - 1  # the tool runs between creates
    assert f.time_ms == report.summary.client_ms >= calls * 200


def test_turns_cut_short_and_a_loop_of_lost_caches():
    frames = []
    for n in range(3):  # three creates naming a response the server no longer holds
        frames += [
            (
                10 * n,
                C,
                {"type": "response.create", "input": "x", "previous_response_id": f"resp_gone_{n}"},
            ),
            (10 * n + 2, S, {"type": "error", "error": {"code": "previous_response_not_found"}}),
        ]
    frames.append((40, C, {"type": "response.create", "input": "y"}))
    report = analyse(script("wss://h/v1/responses", frames, close=(45, 1011)))
    found = {f.code: f for f in find(report)}
    assert found["cut_short"].turns == [3] and found["cut_short"].figures == {
        "codes": {"websocket_close_1011": 1}
    }
    assert found["cache_loss_loop"].turns == [0, 1, 2]
    assert found["cache_loss_loop"].figures == {"kinds": {"not_found": 3}}


def test_a_connection_near_the_60_minute_limit():
    records = [
        Open(conn=1, t_ns=0, url="wss://h/v1/responses"),
        Close(conn=1, t_ns=56 * 60_000 * MS, code=1000),
    ]
    (f,) = find(analyse(records))
    assert (f.code, f.connections, f.time_ms) == ("long_connection", [1], 56 * 60_000.0)


def test_the_services_queue_and_repeated_fields():
    timing = {"pre_inference_ms": 40, "engine_queue_max_ms": 30, "engine_service_ttft_total_ms": 20}
    tools = [{"type": "function", "name": "t", "parameters": {"description": "x" * 3000}}]
    frames = []
    for n in range(3):
        at = 200 * n
        frames += [
            (
                at,
                C,
                {
                    "type": "response.create",
                    "input": f"q{n}",
                    "tools": tools,
                    **({"previous_response_id": f"r{n - 1}"} if n else {}),
                },
            ),
            (at + 100, S, {"type": "response.output_text.delta", "delta": "a"}),
            (at + 101, S, {"type": "response.completed", "response": {"id": f"r{n}"}}),
            (
                at + 102,
                S,
                {
                    "type": "responsesapi.websocket_timing",
                    "response_id": f"r{n}",
                    "timing_metrics": timing,
                },
            ),
        ]
    found = {f.code: f for f in find(analyse(script("wss://h/v1/responses", frames)))}
    assert found["service_queue"].time_ms == 70.0 and found["service_queue"].turns == [0, 1, 2]
    assert found["repeated_fields"].figures == {"fields": {"tools": 2}}


def test_the_command_its_json_groups_and_fail_on(tmp_path):
    prices = tmp_path / "p.json"
    prices.write_text(json.dumps({"models": {"tracer-demo-model": PRICES}}))
    traces = [str(ROOT / "traces" / f"{n}.trace") for n in ("full-resend", "http-resend", "http")]
    proc = run_tracer("findings", *traces, "--json", "--pricing", str(prices))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    per = {Path(t["trace"]).stem: [f["code"] for f in t["findings"]] for t in data["traces"]}
    assert per == {"full-resend": ["chain_resend"], "http-resend": ["transport_resend"], "http": []}
    assert set(data["groups"]) == {"chain_resend", "transport_resend"}
    assert all(code in FINDING_CODES for code in data["groups"])
    failing = run_tracer("findings", *traces, "--fail-on", "chain_resend")
    assert failing.returncode == 3 and "chain_resend in" in failing.stderr
    waste = run_tracer("findings", *traces, "--pricing", str(prices), "--fail-on", "waste_usd>0.01")
    assert waste.returncode == 3 and "waste_usd" in waste.stderr
    bad = run_tracer("findings", *traces, "--fail-on", "no_such_code")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "Traceback" not in bad.stderr


def test_the_report_lists_the_findings_with_links_to_their_turns(tmp_path):
    page = tmp_path / "r.html"
    trace = ROOT / "traces" / "reconnect.trace"
    assert run_tracer("report", str(trace), "-o", str(page)).returncode == 0
    html = page.read_text()
    (loss,) = load(trace).report.cache_losses
    assert "<ul id='findings'>" in html and "cache_loss: the cache was lost 1 time" in html
    assert f'<a href="#turn-{loss.turn}">' in html and f'id="turn-{loss.turn}"' in html


def test_a_changed_prefix_collapses_the_cache_hit_rate(tmp_path):
    """An agent that stamps its instructions from turn 4 on, over HTTP against a service
    that caches prompt prefixes: the hit rate falls on every stamped turn, and the finding
    names the instructions. Hit rates and lost tokens come from the upstream's log."""
    path = tmp_path / "stamp.trace"
    upstream = replace(default_script(), profile=parse_profile("prefix-cache"))
    options = dict(transport="http", resend_full_history=True, warmup=False)
    log = record_demo(path, upstream, stamp_instructions_from=4, **options)
    report = report_of(path)
    (f,) = [f for f in find(report) if f.code == "cache_hit_collapse"]
    usage = [(e["usage"]["input_tokens"], e["usage"]["input_tokens_details"]["cached_tokens"])
             for e in log]  # fmt: skip
    rates = [c / i for i, c in usage]
    fell = [n for n in range(1, len(rates)) if rates[n] < max(rates[:n]) / 2]
    assert fell == list(range(4, len(log))) and f.turns == fell
    assert f.figures["causes"] == {"instructions": len(fell)}
    lost = sum(min(usage[n - 1][0], usage[n][0]) - usage[n][1] for n in fell)
    assert f.figures["lost_cached_tokens"] == lost
    assert f.figures["best_hit_rate"] == round(max(rates[:4]), 4)
    # The same agent without the stamp keeps its hit rate: no collapse.
    clean = tmp_path / "clean.trace"
    record_demo(clean, upstream, **options)
    assert "cache_hit_collapse" not in codes(report_of(clean))


def _create(n: int, items: list, usage: tuple[int, int]) -> list:
    done = {"id": f"r{n}", "output": [{"type": "message", "role": "assistant",
            "content": [{"type": "output_text", "text": f"a{n}"}]}],
            "usage": {"input_tokens": usage[0], "output_tokens": 1,
                      "input_tokens_details": {"cached_tokens": usage[1]}}}  # fmt: skip
    return [
        (100 * n, C, {"type": "response.create", "input": items}),
        (100 * n + 5, S, {"type": "response.completed", "response": done}),
    ]


def test_an_edited_earlier_item_is_named_as_where_the_prefix_changed():
    answer = [
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": a}]}
        for a in ("a0", "a1")
    ]
    u = [{"role": "user", "content": f"u{n}"} for n in range(3)]
    edited = {"role": "user", "content": "u1, edited"}
    frames = [
        *_create(0, [u[0]], (100, 0)),
        *_create(1, [u[0], answer[0], u[1]], (200, 180)),
        *_create(2, [u[0], answer[0], edited, answer[1], u[2]], (300, 20)),
    ]
    report = analyse(script("wss://h/v1/responses", frames))
    assert [t.prefix_change for t in report.turns] == [None, None, "input[2]"]
    (f,) = [f for f in find(report) if f.code == "cache_hit_collapse"]
    assert f.turns == [2] and f.figures["causes"] == {"input[2]": 1}
    assert f.figures["lost_cached_tokens"] == 200 - 20
