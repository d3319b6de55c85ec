"""``tracer record`` as users run it: a subprocess, real clients, the real Codex CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import zstandard

from tests.conftest import ROOT, assert_clean_error, run_tracer
from tracer.capture.recorder import Recorder
from tracer.capture.tap import tap_websocket
from tracer.trace import Direction, Frame, Open, open_trace
from tracer.upstream import Call, Script, TurnScript, default_script, running_upstream

FAKE_KEY = "sk-proj-tracerTEST0123456789abcdefXYZ"


def decompressed(path: Path) -> bytes:
    return zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes()[16:])


def frames_by_direction(path: Path) -> dict[Direction, list[bytes]]:
    out: dict[Direction, list[bytes]] = {Direction.CLIENT: [], Direction.SERVER: []}
    with open_trace(path) as reader:
        for r in reader:
            if type(r) is Frame and r.opcode.label in ("text", "binary"):
                out[r.direction].append(r.payload)
    return out


SDK_CLIENT = textwrap.dedent(
    """
    import json, sys
    import openai
    from tracer.capture.recorder import Recorder
    from tracer.capture.tap import recording_connection_class

    key = sys.argv[2]
    recorder = Recorder(sys.argv[1])  # the client's own view, through the in-process tap
    tools = [{"type": "function", "name": "lookup",
              "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}]
    client = openai.OpenAI(api_key=key)  # base URL from OPENAI_BASE_URL: the proxy
    options = {"create_connection": recording_connection_class(recorder)}
    turns = 0
    with client.responses.connect(websocket_connection_options=options) as conn:
        conn.response.create(model="m", input=f"my key is {key}", tools=tools, store=False)
        for event in conn:
            if event.type == "error":
                sys.exit(f"error event: {event}")
            if event.type != "response.completed":
                continue
            turns += 1
            calls = [o for o in event.response.output if o.type == "function_call"]
            if not calls:
                break
            conn.response.create(
                model="m", previous_response_id=event.response.id, tools=tools, store=False,
                input=[{"type": "function_call_output", "call_id": c.call_id, "output": "42"}
                       for c in calls])
    recorder.close()
    print(json.dumps({"turns": turns}))
    """
)


def test_openai_sdk_through_tracer_record(tmp_path: Path):
    script = Script(
        turns=(
            TurnScript(text="Looking it up.", calls=(Call("lookup", '{"q":"a"}'),)),
            TurnScript(text="Once more.", calls=(Call("lookup", '{"q":"b"}'),)),
            TurnScript(text="The answer is 42."),
        )
    )
    server_view = Recorder(tmp_path / "server.trace")
    client_file = tmp_path / "client.py"
    client_file.write_text(SDK_CLIENT)
    with running_upstream(script) as upstream:
        upstream.on_connect = lambda ws, head: tap_websocket(
            ws, server_view, head.target, client_side=False
        )
        proc = run_tracer(
            "record",
            "--upstream",
            f"ws://127.0.0.1:{upstream.port}",
            "-o",
            str(tmp_path / "proxy.trace"),
            "--",
            sys.executable,
            str(client_file),
            str(tmp_path / "client.trace"),
            FAKE_KEY,
            timeout=120,
        )
    server_view.close()
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == {"turns": 3}

    proxy = frames_by_direction(tmp_path / "proxy.trace")
    client = frames_by_direction(tmp_path / "client.trace")
    server = frames_by_direction(tmp_path / "server.trace")
    assert len(proxy[Direction.CLIENT]) == 3
    assert len(proxy[Direction.SERVER]) > 40
    # Byte for byte, in order, as both ends saw them (all three redact alike).
    assert proxy == client == server
    for name in ("proxy.trace", "client.trace", "server.trace"):
        raw = decompressed(tmp_path / name)
        assert FAKE_KEY.encode() not in raw, name
        assert FAKE_KEY[3:].encode() not in raw, name
    with open_trace(tmp_path / "proxy.trace") as reader:
        (op,) = [r for r in reader if type(r) is Open]
    auth = dict((k.lower(), v) for k, v in op.request_headers)["authorization"]
    assert auth.startswith("Bearer [REDACTED:")
    assert (tmp_path / "proxy.trace").stat().st_mode & 0o777 == 0o600


def test_launch_sets_the_environment_and_passes_the_exit_code(tmp_path: Path):
    child = (
        "import os, sys; "
        "print(os.environ['OPENAI_BASE_URL'], os.environ['TRACER_PROXY_URL']); sys.exit(3)"
    )
    proc = run_tracer(
        "record",
        "--upstream",
        "ws://127.0.0.1:9",
        "-o",
        str(tmp_path / "t.trace"),
        "--time-resolution",
        "ns",
        "--json",
        "--",
        sys.executable,
        "-c",
        child,
    )
    assert proc.returncode == 3, proc.stderr
    with open_trace(tmp_path / "t.trace") as reader:
        assert reader.header.time_unit_ns == 1
    # Under --json the child's stdout goes to stderr: stdout holds the summary only.
    base, origin = proc.stderr.splitlines()[0].split()
    assert base.startswith("http://127.0.0.1:") and base.endswith("/v1")
    assert base == origin + "/v1"
    summary = json.loads(proc.stdout)
    assert summary["command_exit"] == 3
    assert summary["trace_ok"] is True


def test_record_errors_are_one_line(tmp_path: Path):
    out = str(tmp_path / "t.trace")
    assert_clean_error(run_tracer("record", "--upstream", "ftp://x", "-o", out))
    assert_clean_error(run_tracer("record", "--upstream", "ws://x", "-o", out, "--listen", "a:b"))
    assert_clean_error(
        run_tracer("record", "--upstream", "ws://x", "-o", out, "--listen", "0.0.0.0:0")
    )
    assert_clean_error(run_tracer("record", "--upstream", "ws://x", "-o", "/nonexistent/dir/t"))
    assert_clean_error(
        run_tracer("record", "--upstream", "ws://x", "-o", out, "--", "/no/such/command")
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_standalone_record_finishes_the_trace_on_sigterm(tmp_path: Path):
    out = tmp_path / "t.trace"
    with running_upstream() as upstream:
        port = _free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tracer",
                "record",
                "--upstream",
                f"ws://127.0.0.1:{upstream.port}",
                "-o",
                str(out),
                "--listen",
                f"127.0.0.1:{port}",
                "--no-compact",
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stderr is not None
            assert "listening" in proc.stderr.readline()
            from websockets.sync.client import connect

            with connect(f"ws://127.0.0.1:{port}/v1/responses") as ws:
                ws.send(json.dumps({"type": "response.create", "input": "hi"}))
                while json.loads(ws.recv())["type"] != "response.completed":
                    pass
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=15)
        finally:
            proc.kill()
    assert proc.returncode == 0
    report = json.loads(run_tracer("verify", "--json", str(out)).stdout)
    assert report["ok"] and report["complete"] and report["connections"] == 1


CODEX_VERSION = "0.169.0"


def codex_binary() -> Path:
    """The pinned Codex CLI, installed from the npm registry into .tools/codex on first use."""
    prefix = ROOT / ".tools" / "codex"
    binary = prefix / "node_modules" / ".bin" / "codex"
    if binary.exists():
        version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
        if CODEX_VERSION in version:
            return binary
    npm = shutil.which("npm")
    assert npm, "npm is needed to install the Codex CLI for this test"
    prefix.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(prefix),
         f"@openai/codex@{CODEX_VERSION}"],
        check=True,
        capture_output=True,
        timeout=600,
    )  # fmt: skip
    return binary


@pytest.mark.slow
def test_codex_cli_session_through_tracer_record(tmp_path: Path):
    codex = codex_binary()
    home = tmp_path / "codex-home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    port = _free_port()
    (home / "config.toml").write_text(
        textwrap.dedent(
            f"""
            model = "gpt-5.1-codex"
            model_provider = "tracer"

            [model_providers.tracer]
            name = "tracer"
            base_url = "http://127.0.0.1:{port}/v1"
            env_key = "TRACER_CODEX_KEY"
            wire_api = "responses"
            supports_websockets = true
            """
        )
    )
    env = {**os.environ, "CODEX_HOME": str(home), "TRACER_CODEX_KEY": FAKE_KEY}
    trace = tmp_path / "codex.trace"
    with running_upstream(default_script()) as upstream:
        proc = subprocess.run(
            [
                sys.executable, "-m", "tracer", "record",
                "--upstream", f"ws://127.0.0.1:{upstream.port}",
                "-o", str(trace), "--listen", f"127.0.0.1:{port}", "--json",
                "--", str(codex), "exec", "--skip-git-repo-check",
                "--dangerously-bypass-approvals-and-sandbox", "Look around and report.",
            ],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    creates = []
    with open_trace(trace) as reader:
        for r in reader:
            if type(r) is Frame and r.direction is Direction.CLIENT and r.opcode.label == "text":
                creates.append(json.loads(r.payload))
    assert all(c["type"] == "response.create" for c in creates)
    # Codex warms up first (generate: false), then chains every turn to the previous one.
    assert creates[0].get("generate") is False
    assert len(creates) >= 10
    assert all(create.get("previous_response_id") for create in creates[1:])
    outputs = [
        item
        for c in creates
        for item in c.get("input", [])
        if item.get("type") == "function_call_output"
    ]
    assert len(outputs) >= 8  # the scripted model asked for exec_command again and again
    assert any(str(work) in json.dumps(o) for o in outputs)  # `pwd` really ran in the work dir
    assert FAKE_KEY.encode() not in decompressed(trace)


@pytest.mark.slow
def test_codex_with_no_config_is_recorded_through_the_launch_preset(tmp_path: Path):
    """Codex's built-in provider ignores OPENAI_BASE_URL; `tracer record -- codex exec`
    inserts `-c openai_base_url=...` after the subcommand, so that a Codex with no config
    at all is recorded: its warm-up and every turn the upstream saw, over one socket."""
    codex = codex_binary()
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    trace = tmp_path / "codex.trace"
    with running_upstream(default_script()) as upstream:
        proc = run_tracer(
            "record", "--upstream", f"ws://127.0.0.1:{upstream.port}", "-o", str(trace),
            "--json", "--", str(codex), "exec", "--skip-git-repo-check",
            "--dangerously-bypass-approvals-and-sandbox", "Look around and report.",
            timeout=300, cwd=work,
            env_extra={"CODEX_HOME": str(home), "OPENAI_API_KEY": FAKE_KEY},
        )  # fmt: skip
        log = list(upstream.engine.log)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["connections"] == 1 and summary["warning"] is None
    creates = []
    with open_trace(trace) as reader:
        for r in reader:
            if type(r) is Frame and r.direction is Direction.CLIENT and r.opcode.label == "text":
                creates.append(json.loads(r.payload))
    assert len(creates) == len(log) >= 2 and summary["creates"] == len(log)
    assert creates[0].get("generate") is False  # the warm-up
    assert {e["transport"] for e in log} == {"websocket"}
    assert all(e["previous_response_id"] for e in log[1:])
