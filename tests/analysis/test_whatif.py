"""What-if projections, checked against measurement: the projection of an HTTP session
that resends its history, against ``tracer rerun --incremental --transport websocket`` of
the same session to the scripted upstream (items, bytes and tokens exact; cached tokens,
money and time within stated tolerances); the reverse, against the same agent recorded
resending over HTTP. Ground truth: the creates on the wire and the upstream's log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.analysis.test_report import client_creates, record_demo
from tests.conftest import assert_clean_error, run_tracer
from tracer.trace import open_trace
from tracer.trace.records import Direction, Frame
from tracer.upstream import running_upstream

PRICES = {"input": 2.0, "cached_input": 0.5, "output": 8.0}
CACHED_TOLERANCE = 0.05  # per turn: the new items' tokens are estimated from their bytes
TIME_TOLERANCE = 0.30  # the session's turn time: the scripted delays jitter by up to 20%


def _item_bytes(create: dict) -> int:
    return sum(len(json.dumps(i, separators=(",", ":")).encode()) for i in create["input"])


def _turn_times(path: Path) -> list[float]:
    """Create sent to response.completed, in ms, read off the trace's frames."""
    out, sent = [], None
    with open_trace(path) as reader:
        for r in reader:
            if type(r) is not Frame:
                continue
            if r.direction is Direction.CLIENT:
                sent = r.t_ns
            elif b'"response.completed"' in r.payload[:64] and sent is not None:
                out.append((r.t_ns - sent) / 1e6)
    return out


def test_the_websocket_projection_of_an_http_session_matches_a_rerun(tmp_path: Path):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"tracer-demo-model": PRICES}}))
    recorded = tmp_path / "http.trace"
    record_demo(recorded, transport="http", resend_full_history=True, warmup=False)
    proc = run_tracer(
        "whatif", str(recorded), "--mode", "websocket-incremental", "--json",
        "--pricing", str(prices),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    whatif = json.loads(proc.stdout)
    rerun = tmp_path / "rerun.trace"
    with running_upstream() as upstream:
        again = run_tracer(
            "rerun", str(recorded), "--upstream", f"http://127.0.0.1:{upstream.port}",
            "-o", str(rerun), "--incremental", "--transport", "websocket", "--json",
        )  # fmt: skip
        log = list(upstream.engine.log)
    assert again.returncode == 0, again.stderr
    creates = client_creates(rerun)
    assert len(creates) == len(log) == len(whatif["turns"]) == 13
    assert {e["transport"] for e in log} == {"websocket"} and len({e["conn"] for e in log}) == 1
    assert whatif["projected"]["connections"] == 1
    for turn, create, entry in zip(whatif["turns"], creates, log, strict=True):
        got, usage = turn["projected"], entry["usage"]
        assert got["items_sent"] == entry["input_items"] == len(create["input"])
        assert got["item_bytes_sent"] == _item_bytes(create)
        assert got["input_tokens"] == usage["input_tokens"]
        assert got["output_tokens"] == usage["output_tokens"]
        cached = usage["input_tokens_details"]["cached_tokens"]
        assert got["cached_tokens"] == pytest.approx(cached, rel=CACHED_TOLERANCE, abs=1)
    real_cost = sum(
        (
            (u["input_tokens"] - u["input_tokens_details"]["cached_tokens"]) * PRICES["input"]
            + u["input_tokens_details"]["cached_tokens"] * PRICES["cached_input"]
            + u["output_tokens"] * PRICES["output"]
        )
        / 1e6
        for u in (e["usage"] for e in log)
    )
    assert whatif["projected"]["cost_usd"] == pytest.approx(real_cost, rel=0.02)
    assert whatif["projected"]["cost_usd"] < whatif["recorded"]["cost_usd"]
    measured = sum(_turn_times(rerun))
    assert whatif["projected"]["duration_ms"] == pytest.approx(measured, rel=TIME_TOLERANCE)
    assert set(whatif["exact"]) >= {"items_sent", "item_bytes_sent", "input_tokens"}
    assert "cached_tokens" in whatif["estimates"] and whatif["assumptions"]


def test_the_http_projection_of_a_websocket_session_matches_the_agent_over_http(tmp_path):
    chained, resending = tmp_path / "ws.trace", tmp_path / "http.trace"
    record_demo(chained, warmup=False)
    record_demo(resending, transport="http", resend_full_history=True, warmup=False)
    proc = run_tracer("whatif", str(chained), "--mode", "http-resend", "--json")
    assert proc.returncode == 0, proc.stderr
    whatif = json.loads(proc.stdout)
    creates = client_creates(resending)
    assert len(creates) == len(whatif["turns"])
    for turn, create in zip(whatif["turns"], creates, strict=True):
        assert turn["projected"]["items_sent"] == len(create["input"])
        assert turn["projected"]["item_bytes_sent"] == _item_bytes(create)
        assert turn["projected"]["connections"] == 1
    assert whatif["projected"]["connections"] == len(creates)
    assert whatif["recorded"]["connections"] == 1


def test_the_text_view_and_a_wrong_mode(tmp_path):
    path = tmp_path / "http.trace"
    record_demo(path, transport="http", resend_full_history=True, warmup=False)
    text = run_tracer("whatif", str(path), "--turns").stdout
    assert "cached tokens ~" in text and "input tokens ~" not in text
    assert "Assumed:" in text and "tracer rerun" in text
    assert_clean_error(run_tracer("whatif", str(path), "--mode", "carrier-pigeon"))
    voice = tmp_path / "voice.trace"
    assert run_tracer("demo", "--protocol", "openai-live", "-o", str(voice)).returncode == 0
    nothing = run_tracer("whatif", str(voice))
    assert_clean_error(nothing)
    assert "no Responses API turns" in nothing.stderr
