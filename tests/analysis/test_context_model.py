"""The context model on real client traffic: the official openai SDK (tests/analysis/
sdk_agent.py) through ``tracer record``, against the scripted upstream playing the variants
real services produce. Expected figures come from the client's own count of what it sent
and resent, and from the upstream's log of what each create referenced."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.capture.test_record_cli import decompressed
from tests.conftest import run_tracer
from tracer.analysis import load
from tracer.upstream import Call, Fault, Script, TurnScript, running_upstream
from tracer.upstream.script import parse_profile

AGENT = Path(__file__).with_name("sdk_agent.py")
TURNS = (
    TurnScript(text="Looking it up.", calls=(Call("lookup", '{"q":"a"}'),)),
    TurnScript(text="Once more.", calls=(Call("lookup", '{"q":"b"}'),)),
    TurnScript(text="And a third time.", calls=(Call("lookup", '{"q":"c"}'),)),
    TurnScript(text="The answer is 42."),
)


def record(tmp_path: Path, mode: str, profile: str = "openai", *args: str, script=None):
    """Record the SDK agent; returns (report, the client's own account, the upstream log)."""
    script = script or Script(turns=TURNS, profile=parse_profile(profile))
    out = tmp_path / f"{mode}.trace"
    with running_upstream(script) as upstream:
        proc = run_tracer(
            "record", "--upstream", f"http://127.0.0.1:{upstream.port}", "-o", str(out),
            "--", sys.executable, str(AGENT), mode, *args, timeout=120,
        )  # fmt: skip
        log = list(upstream.engine.log)
    assert proc.returncode == 0, proc.stderr
    account = json.loads(proc.stdout.splitlines()[-1])
    record.blobs = account["blobs"]
    return load(out).report, account["turns"], log


def record_clients(tmp_path: Path, code: str, script: Script | None = None):
    """Record a Python program (``code``) that runs several SDK agents: the report and each
    client's own account, in the order they printed it."""
    out = tmp_path / "clients.trace"
    with running_upstream(script or Script(turns=TURNS)) as upstream:
        proc = run_tracer(
            "record", "--upstream", f"http://127.0.0.1:{upstream.port}", "-o", str(out),
            "--", sys.executable, "-c", code, timeout=180,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    return load(out).report, [json.loads(line)["turns"] for line in lines]


def test_http_full_resend_is_resent_over_the_transport(tmp_path: Path):
    report, client, log = record(tmp_path, "http-resend")
    assert len(report.turns) == len(client) == len(log) == 4
    assert report.summary.connections == 4  # one per request
    assert report.summary.conversations == 1
    for t, c in zip(report.turns, client, strict=True):
        assert (t.input_items, t.resent_items) == (c["sent"], c["resent"])
        assert t.status == "completed" and t.response_id == c["response_id"]
        assert t.resent_reason == ("transport" if c["resent"] else None)
        assert t.referenced_items == 0
    assert [c["resent"] for c in client] == [0, 3, 6, 9]  # turn k resends 3k items
    s = report.summary
    assert s.resent_bytes == s.resent_transport_bytes > 0
    assert s.resent_chain_bytes == s.resent_cache_loss_bytes == 0


def test_http_not_streamed_chained_on_stored_responses(tmp_path: Path):
    report, client, log = record(tmp_path, "http-stored")
    assert len(report.turns) == len(client) == 4
    for t, c, entry in zip(report.turns, client, log, strict=True):
        assert t.status == "completed" and c["status"] == "completed"
        assert t.error_code is None and t.cache_loss is None
        assert t.response_id == c["response_id"] == entry["response_id"]
        assert t.output_items == c["outputs"] == entry["output_items"]
        assert t.referenced_items == entry["chain_items"]  # what the server resolved
        assert t.input_tokens == c["usage"]["input_tokens"]
        assert t.cached_tokens == c["usage"]["input_tokens_details"]["cached_tokens"]
    assert [t.referenced_items for t in report.turns] == [0, 3, 6, 9]
    assert report.summary.cache_losses == 0 and report.summary.errors == 0


def test_a_reconnect_resend_is_the_price_of_the_lost_cache(tmp_path: Path):
    report, client, log = record(tmp_path, "ws-reconnect")
    turns = report.turns
    assert len(turns) == len(client) == len(log) == 5
    lost, recovery = turns[2], turns[3]
    assert client[2]["error"] == "previous_response_not_found" == lost.error_code
    assert lost.cache_loss == "reconnect" and log[2]["error_code"] == lost.error_code
    assert recovery.status == "completed" and recovery.previous_response_id is None
    assert (recovery.input_items, recovery.resent_items) == (client[3]["sent"], client[3]["resent"])
    assert recovery.resent_items == recovery.input_items == 7
    assert recovery.resent_reason == "cache_loss"
    (loss,) = report.cache_losses
    assert (loss.turn, loss.recovery_turn) == (lost.index, recovery.index)
    assert (
        loss.recovery_resent_bytes
        == recovery.resent_bytes
        == report.summary.resent_cache_loss_bytes
    )
    assert report.summary.conversations == 1 and report.summary.connections == 2
    assert recovery.client_ms is not None  # the client's time carries across the reconnect
    for t, c in zip(turns, client, strict=True):
        if "response_id" in c:
            assert t.response_id == c["response_id"]


def test_codex_backend_shapes(tmp_path: Path):
    """completed.output is [], codex.rate_limits comes first: outputs from the item events,
    time to first event to response.created, referenced items as the server resolved them."""
    report, client, log = record(tmp_path, "ws-chain", "codex", "--include-reasoning")
    assert len(report.turns) == len(client) == len(log) == 4
    for t, c, entry in zip(report.turns, client, log, strict=True):
        assert t.output_items == c["outputs"] == entry["output_items"] > 0
        assert t.referenced_items == entry["chain_items"]
        assert t.vendor_events == 1 and t.ttfe_ms is not None
    assert [t.referenced_items for t in report.turns] == [0, 4, 8, 12]
    types = report.connections[0].message_types
    assert types["server:codex.rate_limits"] == types["server:response.created"] == 4


def test_resent_reasoning_and_reserialised_items_are_recognised(tmp_path: Path):
    report, client, _ = record(tmp_path, "ws-resend", "reasoning", "--include-reasoning")
    assert len(report.turns) == len(client) == 4
    for t, c in zip(report.turns, client, strict=True):
        assert (t.input_items, t.resent_items) == (c["sent"], c["resent"])
        assert t.resent_reason == ("chain" if c["resent"] else None)
    assert client[-1]["resent"] == 12  # reasoning, message, call and tool result, 3 times
    # Every encrypted_content the client received is in the trace byte for byte (the
    # redaction's key patterns never match inside them), and was resent as received.
    raw = decompressed(tmp_path / "ws-resend.trace")
    assert len(record.blobs) == 4
    for blob in record.blobs[:-1]:
        assert raw.count(blob.encode()) >= 2  # received, then resent at least once
    assert raw.count(record.blobs[-1].encode()) == 1  # the last answer's: not resent


def test_two_independent_agents_are_not_matched(tmp_path: Path):
    """Two runs of the same agent, one after the other, in one trace: two conversations;
    the second's first turn resends nothing of the first's."""
    code = (
        "import subprocess, sys\n"
        f"for _ in range(2): subprocess.run([sys.executable, {str(AGENT)!r}, 'http-resend'],"
        " check=True)\n"
    )
    report, clients = record_clients(tmp_path, code)
    assert report.summary.conversations == 2
    expected = [c["resent"] for run in clients for c in run]
    assert [t.resent_items for t in report.turns] == expected == [0, 3, 6, 9] * 2
    assert [t.conversation for t in report.turns] == [0] * 4 + [1] * 4


@pytest.mark.parametrize("mode", ["http-resend", "ws-resend"])
def test_concurrent_independent_agents_are_not_matched(tmp_path: Path, mode: str):
    """Four copies of one agent at once in one trace, resending their histories: their
    answers are alike (the same scripted text), their calls are not. Four conversations,
    each resending what its own client says it resent."""
    code = (
        "import subprocess, sys\n"
        f"procs = [subprocess.Popen([sys.executable, {str(AGENT)!r}, {mode!r}]) "
        "for _ in range(4)]\n"
        "sys.exit(max(p.wait() for p in procs))\n"
    )
    report, clients = record_clients(tmp_path, code)
    assert len(clients) == 4
    assert report.summary.conversations == 4
    by_conversation: dict[int, list[int]] = {}
    for t in report.turns:
        by_conversation.setdefault(t.conversation, []).append(t.resent_items)
    expected = sorted([c["resent"] for c in run] for run in clients)
    assert sorted(by_conversation.values()) == expected


def test_a_close_1011_ends_the_turn_as_an_error(tmp_path: Path):
    script = Script(
        turns=(TurnScript(text="a b c d", fault=Fault(kind="close", code=1011, after_events=3)),)
    )
    report, client, log = record(tmp_path, "ws-close", script=script)
    (turn,) = report.turns
    assert client[-1] == {"close_code": 1011}  # what the SDK's connection saw
    assert log[0]["fault"] == "close" and log[0]["status"] == "in_progress"  # never finished
    assert turn.status == "error" and turn.error_code == "websocket_close_1011"
    assert report.summary.errors == 1


def test_a_session_without_usage_has_unknown_tokens(tmp_path: Path):
    report, client, _ = record(tmp_path, "ws-chain", "no-usage")
    assert all(c["usage"] is None for c in client)
    assert all(t.input_tokens is None and t.cached_tokens is None for t in report.turns)
    s = report.summary
    assert s.input_tokens is None and s.output_tokens is None and s.usage_turns == 0
    proc = run_tracer("inspect", str(tmp_path / "ws-chain.trace"))
    assert "tokens: unknown" in proc.stdout


def test_the_same_history_resent_over_http_and_websocket_counts_the_same(tmp_path: Path):
    """The same agent over the two transports resent the same history: tracer says so (it
    said HTTP resent nothing), and only the reason differs."""
    http, hc, _ = record(tmp_path, "http-resend")
    ws, wc, _ = record(tmp_path, "ws-resend")
    assert [c["resent"] for c in hc] == [c["resent"] for c in wc] == [0, 3, 6, 9]
    assert [t.resent_items for t in http.turns] == [t.resent_items for t in ws.turns]
    assert {t.resent_reason for t in http.turns[1:]} == {"transport"}
    assert {t.resent_reason for t in ws.turns[1:]} == {"chain"}
    proc = run_tracer(
        "diff", str(tmp_path / "http-resend.trace"), str(tmp_path / "ws-resend.trace"), "--json"
    )
    diff = json.loads(proc.stdout)
    assert all(row["kind"] != "added" and row["kind"] != "removed" for row in diff["turns"])
