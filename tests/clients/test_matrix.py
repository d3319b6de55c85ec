"""The conformance matrix: real agent clients, each installed by the project's own files
(Python packages by the `test` extra, Node packages by tests/clients/node/package.json into
.tools/node), recorded by `tracer record -- CMD` against `tracer upstream` with a function
call round trip, then served back offline by `tracer replay` to the same client.

Ground truth is the client's own account (its final answer, the response ids it got) and
the upstream's log (one entry per create: transport, previous_response_id, the items it
received, what the chain stood for, the output items), never tracer's own output. Each row
checks: every turn recorded, ids and chain, input and output items, resent and referenced
items, cached tokens, and the replay's answers. The table of results is printed at the end
of the run (tests/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.analysis.paths import assert_both_paths_agree
from tests.conftest import ROOT, run_tracer
from tracer.analysis import load
from tracer.upstream import Call, Script, TurnScript, running_upstream
from tracer.upstream.script import parse_profile

HERE = Path(__file__).parent

SCRIPT = Script(
    turns=(
        TurnScript(text="Looking.", calls=(Call("lookup", '{"q":"a"}'),)),
        TurnScript(text="The answer is 42."),
    ),
    profile=parse_profile("stored"),
)
KEY = "sk-test-matrix-0000000000000000000000"
RESULTS: list[dict[str, object]] = []  # printed by tests/conftest.py at the end of the run


@dataclass(frozen=True)
class Row:
    client: str
    way: str  # what the row exercises
    transport: str  # what the upstream must see: websocket or http
    argv: tuple[str, ...]  # the client's command; "{node}" and "{py}" are filled in
    needs: str = ""  # a Python module to import, "node" or "codex"
    chained: bool = False  # the client continues with previous_response_id
    env: dict[str, str] = field(default_factory=dict)
    side_requests: bool = False  # also makes requests of its own (opencode: a title)

    @property
    def id(self) -> str:
        return f"{self.client} / {self.way}"


ROWS = [
    Row("openai Python SDK", "WebSocket, chained", "websocket",
        ("{py}", "openai_client.py", "websocket"), "openai", chained=True),
    Row("openai Python SDK", "WebSocket, full resend", "websocket",
        ("{py}", "openai_client.py", "websocket-resend"), "openai"),
    Row("openai Python SDK", "HTTP SSE", "http", ("{py}", "openai_client.py", "http-sse"),
        "openai"),
    Row("openai Python SDK", "HTTP, not streamed, stored", "http",
        ("{py}", "openai_client.py", "http"), "openai", chained=True),
    Row("openai-agents (Python)", "WebSocket transport", "websocket",
        ("{py}", "agents_client.py", "websocket"), "agents"),  # it resends: no chain
    Row("openai-agents (Python)", "HTTP default", "http",
        ("{py}", "agents_client.py", "http"), "agents"),
    Row("pydantic-ai-slim[openai]", "WebSocket transport", "websocket",
        ("{py}", "pydantic_client.py", "websocket"), "pydantic_ai", chained=True),
    Row("pydantic-ai-slim[openai]", "HTTP default", "http",
        ("{py}", "pydantic_client.py", "http"), "pydantic_ai"),
    Row("langchain-openai", "HTTP streaming", "http",
        ("{py}", "langchain_client.py", "stream"), "langchain_openai"),
    Row("langchain-openai", "HTTP not streamed", "http",
        ("{py}", "langchain_client.py", "plain"), "langchain_openai"),
    Row("openai Node SDK", "WebSocket (ResponsesWS), chained", "websocket",
        ("node", "{node}/openai_client.mjs", "websocket"), "node", chained=True),
    Row("openai Node SDK", "HTTP SSE", "http",
        ("node", "{node}/openai_client.mjs", "http"), "node"),
    Row("@openai/agents (JS)", "WebSocket session", "websocket",
        ("node", "--experimental-websocket", "{node}/agents_client.mjs", "websocket"), "node",
        env={"OPENAI_AGENTS_DISABLE_TRACING": "1"}),
    Row("@openai/agents (JS)", "HTTP", "http",
        ("node", "{node}/agents_client.mjs", "http"), "node",
        env={"OPENAI_AGENTS_DISABLE_TRACING": "1"}),
    Row("opencode", "HTTP SSE", "http", ("{py}", "opencode_client.py", "http"), "node",
        side_requests=True),
    Row("opencode", "WebSocket (experimental flag)", "websocket",
        ("{py}", "opencode_client.py", "websocket"), "node", side_requests=True),
    Row("Codex CLI", "WebSocket, built-in provider", "websocket",
        ("{py}", "codex_client.py", "builtin"), "codex", chained=True),
    Row("Codex CLI", "WebSocket, custom provider", "websocket",
        ("{py}", "codex_client.py", "custom"), "codex", chained=True),
]  # fmt: skip


def _argv(row: Row, node: Path | None) -> list[str]:
    out = []
    for a in row.argv:
        a = a.replace("{node}", str(node)) if node else a
        out.append(sys.executable if a == "{py}" else (str(HERE / a) if a.endswith(".py") else a))
    return out


def _account(stdout: str) -> dict[str, object]:
    return json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])


def _replay(trace: Path, argv: list[str], env: dict[str, str]) -> tuple[dict, dict]:
    """Serve ``trace`` with `tracer replay` and run the client against it: its account,
    and the replay's own summary."""
    server = subprocess.Popen(
        [sys.executable, "-m", "tracer", "replay", str(trace), "--listen", "127.0.0.1:0",
         "--speed", "0", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        base = json.loads(server.stdout.readline())["base_url"]
        offline = {**env, "OPENAI_BASE_URL": base,
                   "OPENAI_WEBSOCKET_BASE_URL": base.replace("http", "ws", 1)}  # fmt: skip
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=offline,
                              cwd=ROOT)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        account = _account(proc.stdout)
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=30)
    stopped = json.loads([line for line in out.splitlines() if '"stopped"' in line][-1])
    return account, stopped


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_client_is_recorded_and_replayed(row: Row, tmp_path: Path, request: pytest.FixtureRequest):
    result: dict[str, object] = {"id": row.id}
    RESULTS.append(result)
    node = None
    if row.needs == "node":
        node = request.getfixturevalue("node_tools")
    elif row.needs == "codex":
        from tests.capture.test_record_cli import codex_binary

        codex_binary()  # the pinned Codex CLI, into .tools/codex
    elif row.needs:
        pytest.importorskip(row.needs, reason=f"{row.needs} is installed by the test extra")
    argv = _argv(row, node)
    # A stale OPENAI_WEBSOCKET_BASE_URL from the user's shell: the launch presets override it.
    extra = {"OPENAI_API_KEY": KEY, **row.env, "OPENAI_WEBSOCKET_BASE_URL": "ws://127.0.0.1:9/v1"}
    env = {**os.environ, **extra}
    out = tmp_path / "session.trace"
    with running_upstream(SCRIPT) as upstream:
        proc = run_tracer(
            "record", "--upstream", f"http://127.0.0.1:{upstream.port}", "-o", str(out),
            "--", *argv, timeout=180, env_extra=extra, cwd=ROOT,
        )  # fmt: skip
        log = list(upstream.engine.log)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = _account(proc.stdout)
    assert client["final"] == "The answer is 42."
    report = load(out).report
    turns = report.turns
    assert_both_paths_agree(out)  # frame by frame and a batch at a time: the same figures
    # Every turn, by the client's ids and the upstream's.
    ids = [e["response_id"] for e in log]
    if row.side_requests:  # requests made side by side: the same set, maybe not in order
        assert sorted(t.response_id or "" for t in turns) == sorted(ids)
        by_id = {e["response_id"]: e for e in log}
        log = [by_id[t.response_id] for t in turns]
    else:
        assert [t.response_id for t in turns] == ids
    if client["responses"] is not None:  # opencode's events carry no response ids
        assert client["responses"] == ids
    assert [t.transport for t in turns] == [e["transport"] for e in log]
    if row.side_requests:  # opencode's title request is HTTP beside a WebSocket session
        assert sum(t.transport != row.transport for t in turns) <= 1
    else:
        assert {t.transport for t in turns} == {row.transport}
    assert [t.previous_response_id for t in turns] == [e["previous_response_id"] for e in log]
    assert any(e["previous_response_id"] for e in log) == row.chained
    assert all(t.status == "completed" for t in turns)
    assert [t.output_items for t in turns] == [e["output_items"] for e in log]
    # What was sent new, resent, or referenced: the upstream saw input_items; a chain stood
    # for chain_items it had cached.
    for t, e in zip(turns, log, strict=True):
        assert t.input_items == e["input_items"], (t.index, e)
        assert t.referenced_items == e["chain_items"], (t.index, e)
        if not row.side_requests:  # a side request starts a conversation of its own
            resent = t.index > 0 and not e["previous_response_id"]
            assert (t.resent_items > 0) == resent, t.index
        assert (t.cached_tokens or 0) > 0 or not e["chain_items"], t.index
    # Served back offline: the same answers and ids, nothing unmatched.
    again, stopped = _replay(out, argv, env)
    assert again == client, (again, client)
    assert stopped["mismatch_count"] == 0, stopped["mismatches"]
    result.update(
        turns=len(turns),
        connections=report.summary.connections,
        resent_items=sum(t.resent_items for t in turns),
        referenced_items=sum(t.referenced_items for t in turns),
        cached_tokens=sum(t.cached_tokens or 0 for t in turns),
        replay="same answers",
    )


def test_docs_clients_lists_every_row_of_the_matrix():
    """docs/clients.md is checked against the matrix: one table row per matrix row."""
    text = (ROOT / "docs" / "clients.md").read_text()
    table = text.split("\n| ", 1)[1].split("\n\n", 1)[0]  # the first table
    rows = [line.split("|")[1].strip() for line in ("| " + table).splitlines()]
    assert rows[2:] == [row.id for row in ROWS]
