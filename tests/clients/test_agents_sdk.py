"""openai-agents (Python), a real agent framework, recorded by `tracer record -- CMD`: its
WebSocket transport takes its URL from OPENAI_WEBSOCKET_BASE_URL, which a user may have set
elsewhere; the launch preset points it at the proxy anyway. Ground truth: the SDK's own
account of its model calls and the upstream's log."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.analysis.paths import assert_both_paths_agree
from tests.conftest import run_tracer
from tracer.analysis import load
from tracer.upstream import Call, Script, TurnScript, running_upstream

pytest.importorskip("agents", reason="openai-agents is installed by the test extra")

CLIENT = Path(__file__).with_name("agents_client.py")
SCRIPT = Script(
    turns=(
        TurnScript(text="Looking.", calls=(Call("lookup", '{"q":"a"}'),)),
        TurnScript(text="Once more.", calls=(Call("lookup", '{"q":"b"}'),)),
        TurnScript(text="The answer is 42."),
    )
)


@pytest.mark.parametrize("transport", ["websocket", "http"])
def test_openai_agents_is_recorded_in_full_whatever_its_websocket_url(
    tmp_path: Path, transport: str
):
    out = tmp_path / f"{transport}.trace"
    with running_upstream(SCRIPT) as upstream:
        proc = run_tracer(
            "record", "--upstream", f"http://127.0.0.1:{upstream.port}", "-o", str(out),
            "--", sys.executable, str(CLIENT), transport, timeout=120,
            env_extra={"OPENAI_WEBSOCKET_BASE_URL": "ws://127.0.0.1:9/v1",
                       "OPENAI_API_KEY": "sk-test-agents-000000000000000000"},
        )  # fmt: skip
        log = list(upstream.engine.log)
    assert proc.returncode == 0, proc.stderr
    sdk = json.loads(proc.stdout.splitlines()[-1])
    assert sdk["final"] == "The answer is 42."
    report = load(out).report
    assert_both_paths_agree(out)
    assert (
        [t.response_id for t in report.turns] == sdk["responses"] == [e["response_id"] for e in log]
    )
    assert {t.transport for t in report.turns} == {transport}
    assert all(t.status == "completed" for t in report.turns)
    assert [t.output_items for t in report.turns] == [e["output_items"] for e in log]
    assert report.summary.conversations == 1
    if transport == "websocket":
        assert report.summary.connections == 1
