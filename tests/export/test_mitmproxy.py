"""mitmproxy flow files: ``mitmdump -w`` itself, in front of the scripted upstream, records
the openai SDK over HTTP (not streamed and streamed) and in WebSocket mode; ``tracer
inspect`` reads the file directly and ``tracer import`` writes a trace, with turns, ids,
usage and items equal to the upstream's log. Damaged and hostile flow files get one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.capture.test_record_cli import decompressed
from tests.conftest import ROOT, assert_clean_error, run_tracer
from tests.hardening.helpers import free_port, wait_for_port
from tracer.analysis.load import load
from tracer.export.mitmproxy import import_flows, read_tnetstrings
from tracer.trace import TraceError, open_trace
from tracer.upstream import running_upstream

CLIENT = ROOT / "tests" / "clients" / "openai_client.py"
KEY = "sk-mitm-0123456789abcdefghijklmn"


@pytest.fixture(scope="module")
def mitmdump() -> str:
    script = ROOT / "tests" / "setup" / "install-mitmproxy.sh"
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]


def _record(mitmdump: str, flows: Path, modes: list[str]) -> tuple[list[dict], list[dict]]:
    """The SDK's account of each mode and the upstream's log, recorded by mitmdump."""
    accounts = []
    with running_upstream() as upstream:
        port = free_port()
        proxy = subprocess.Popen(
            [mitmdump, "--mode", f"reverse:http://127.0.0.1:{upstream.port}",
             "--listen-host", "127.0.0.1", "-p", str(port), "-w", str(flows), "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            wait_for_port(port, timeout=60)
            env = {**os.environ, "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1",
                   "OPENAI_API_KEY": KEY}  # fmt: skip
            for mode in modes:
                proc = subprocess.run([sys.executable, str(CLIENT), mode], env=env,
                                      capture_output=True, text=True, timeout=120)  # fmt: skip
                assert proc.returncode == 0, proc.stderr[-2000:]
                accounts.append(json.loads(proc.stdout.splitlines()[-1]))
        finally:
            proxy.terminate()  # mitmdump writes each flow as it ends; it flushes on exit
            proxy.wait(30)
        log = list(upstream.engine.log)
    return accounts, log


def test_a_flow_file_mitmdump_wrote_is_read_directly_and_imported(mitmdump: str, tmp_path):
    flows = tmp_path / "agent.mitm"
    accounts, log = _record(mitmdump, flows, ["http", "http-sse", "websocket"])
    ids = [rid for account in accounts for rid in account["responses"]]
    assert ids == [e["response_id"] for e in log]
    proc = run_tracer("inspect", str(flows), "--json")
    assert proc.returncode == 0, proc.stderr
    turns = json.loads(proc.stdout)["turns"]
    assert [t["response_id"] for t in turns] == ids
    assert [t["input_tokens"] for t in turns] == [e["usage"]["input_tokens"] for e in log]
    assert [t["output_tokens"] for t in turns] == [e["usage"]["output_tokens"] for e in log]
    assert [t["input_items"] for t in turns] == [e["input_items"] for e in log]
    assert [t["previous_response_id"] for t in turns] == [e["previous_response_id"] for e in log]
    # Three transports as the proxy saw them: one call per HTTP turn, one socket for the rest.
    per_mode = len(accounts[0]["responses"])
    assert [t["conn"] for t in turns[-per_mode:]] == [turns[-1]["conn"]] * per_mode
    assert len({t["conn"] for t in turns[: 2 * per_mode]}) == 2 * per_mode
    # The streamed calls' events were spread over each response: the trace says so.
    assert "synthesised" in proc.stderr
    out = tmp_path / "agent.trace"
    imported = run_tracer("import", str(flows), "-o", str(out), "--json")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["connections"] == 2 * per_mode + 1
    with open_trace(out) as reader:
        assert reader.header.metadata["times"] == "synthesised"
        assert reader.header.metadata["mitmproxy_flow_version"].isdigit()
    assert [t.response_id for t in load(out).report.turns] == ids
    assert KEY[:12].encode() not in decompressed(out)  # redacted as the recorder does
    # The WebSocket's frames keep the proxy's own times: they are measured, in order.
    ws = [t for t in load(out).report.turns if t.conn == turns[-1]["conn"]]
    assert all(t.ttft_ms is not None and t.ttft_ms > 0 for t in ws)


def test_only_websocket_and_json_flows_have_recorded_times(mitmdump: str, tmp_path: Path):
    flows = tmp_path / "plain.mitm"
    _, log = _record(mitmdump, flows, ["http"])
    imported = import_flows(flows.read_bytes(), source="plain.mitm")
    assert imported.header.metadata["times"] == "recorded"
    assert imported.connections == len(log)


def test_damaged_and_hostile_flow_files_get_one_line(tmp_path: Path):
    good = b"14:4:type;4:http;}"
    assert read_tnetstrings(good) == [{"type": "http"}]
    cases = {
        "truncated.mitm": b"40:4:type;4:http;",
        "nested.mitm": _nested(200),
        "bad-kind.mitm": b"5:hello?",
        "odd-dict.mitm": b"7:4:type;}",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        for command in (["inspect", str(path)], ["import", str(path), "-o", str(tmp_path / "o")]):
            proc = run_tracer(*command)
            assert_clean_error(proc)
        if name != "bad-kind.mitm":  # does not start as a flow file: read as a trace
            with pytest.raises(TraceError):
                import_flows(data)


def _nested(depth: int) -> bytes:
    inner = b"0:]"
    for _ in range(depth):
        inner = b"%d:%s]" % (len(inner), inner)
    return b"%d:4:list;%s}" % (len(inner) + 7, inner)
