"""Launch presets: a launched command reaches the proxy by every channel its client reads."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.conftest import run_tracer
from tracer.capture.launch import plan_launch
from tracer.upstream import running_upstream

BASE = "http://127.0.0.1:4321/v1"


def test_presets_set_every_endpoint_variable_and_say_when_they_override():
    plan = plan_launch(["agent"], {"OPENAI_WEBSOCKET_BASE_URL": "wss://elsewhere/v1"}, BASE,
                       "http://127.0.0.1:4321")  # fmt: skip
    assert plan.env["OPENAI_BASE_URL"] == plan.env["OPENAI_API_BASE"] == BASE
    assert plan.env["OPENAI_WEBSOCKET_BASE_URL"] == "ws://127.0.0.1:4321/v1"
    assert len(plan.notes) == 1 and "OPENAI_WEBSOCKET_BASE_URL" in plan.notes[0]
    assert plan_launch(["agent"], {}, BASE, "x").notes == []
    bare = plan_launch(["agent"], {"OPENAI_WEBSOCKET_BASE_URL": "wss://e/v1"}, BASE, "x",
                       presets=False)  # fmt: skip
    assert (
        bare.env["OPENAI_WEBSOCKET_BASE_URL"] == "wss://e/v1" and "OPENAI_API_BASE" not in bare.env
    )


def test_codex_gets_its_base_url_override_after_the_subcommand():
    override = ["-c", f'openai_base_url="{BASE}"']
    plan = plan_launch(["codex", "exec", "--skip-git-repo-check", "hi"], {}, BASE, "x")
    assert plan.command == ["codex", "exec", *override, "--skip-git-repo-check", "hi"]
    plan = plan_launch(["/usr/bin/codex", "--version"], {}, BASE, "x")
    assert plan.command == ["/usr/bin/codex", *override, "--version"]
    mine = ["codex", "exec", "-c", 'openai_base_url="http://mine/v1"', "hi"]
    assert plan_launch(mine, {}, BASE, "x").command == mine
    assert plan_launch(["codex", "exec"], {}, BASE, "x", presets=False).command == ["codex", "exec"]


# A client that, like openai-agents, takes its WebSocket URL from OPENAI_WEBSOCKET_BASE_URL
# and falls back to nothing else; it prints what it received.
WS_CLIENT = textwrap.dedent(
    """
    import json, os
    from websockets.sync.client import connect
    url = os.environ["OPENAI_WEBSOCKET_BASE_URL"].rstrip("/") + "/responses"
    with connect(url, open_timeout=5) as ws:
        ws.send(json.dumps({"input": "hi", "model": "m", "type": "response.create"}))
        while json.loads(ws.recv(timeout=10))["type"] != "response.completed":
            pass
    print(json.dumps({"ok": True}))
    """
)


def test_a_websocket_url_set_elsewhere_is_still_recorded(tmp_path: Path):
    client = tmp_path / "client.py"
    client.write_text(WS_CLIENT)
    out = tmp_path / "t.trace"
    with running_upstream() as upstream:
        proc = run_tracer(
            "record", "--upstream", f"http://127.0.0.1:{upstream.port}", "-o", str(out),
            "--json", "--", sys.executable, str(client),
            env_extra={"OPENAI_WEBSOCKET_BASE_URL": "ws://127.0.0.1:9/v1"},
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "OPENAI_WEBSOCKET_BASE_URL" in proc.stderr  # said once
    summary = json.loads(proc.stdout)  # the child's own line went to stderr
    assert summary["connections"] == 1 and summary["creates"] == 1  # "type" came last
    assert summary["warning"] is None


def test_a_command_that_connects_nowhere_gets_a_warning(tmp_path: Path):
    out = tmp_path / "t.trace"
    with running_upstream() as upstream:
        proc = run_tracer(
            "record", "--upstream", f"http://127.0.0.1:{upstream.port}", "-o", str(out),
            "--", sys.executable, "-c", "print('I talk to nobody')",
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "no connection through the proxy" in line]
    assert len(lines) == 1 and "warning" in lines[0]


def test_record_json_prints_json_only_with_a_chatty_child(tmp_path: Path):
    """The child's stdout goes to stderr under --json: tracer's stdout is one JSON object."""
    chatty = "import sys\nfor i in range(50): print('chatter', i)\nprint('{not json')\n"
    with running_upstream() as upstream:
        proc = run_tracer(
            "record", "--upstream", f"http://127.0.0.1:{upstream.port}", "-o",
            str(tmp_path / "t.trace"), "--json", "--", sys.executable, "-c", chatty,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)  # the whole of stdout
    assert summary["command_exit"] == 0
    assert "chatter 49" in proc.stderr and "chatter" not in proc.stdout


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _launch_tree(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    """``tracer record -- sh`` whose shell starts a background sleeper: the command's
    process group holds two processes. Returns tracer, the shell's pid, the sleeper's."""
    pids = tmp_path / "pids"
    script = f"sleep 300 & echo $$ $! > {pids}.tmp; mv {pids}.tmp {pids}; wait"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracer", "record", "--upstream", "ws://127.0.0.1:9",
         "-o", str(tmp_path / "t.trace"), "--", "sh", "-c", script],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not pids.exists():
        assert time.monotonic() < deadline, "the command did not start"
        time.sleep(0.05)
    shell, sleeper = map(int, pids.read_text().split())
    assert _alive(shell) and _alive(sleeper)
    return proc, shell, sleeper


def _gone(*pids: int, within: float = 15) -> bool:
    deadline = time.monotonic() + within
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_the_whole_process_group_is_stopped_with_tracer(tmp_path: Path):
    """SIGTERM to tracer stops the command and what it started in the background."""
    proc, shell, sleeper = _launch_tree(tmp_path)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert _gone(shell, sleeper), "the command's process group outlived tracer"


def test_the_command_dies_with_a_killed_tracer(tmp_path: Path):
    """SIGKILL leaves tracer no chance to clean up: the kernel kills the command
    (PDEATHSIG) and the reaper, whose pipe closes with tracer, stops the group."""
    proc, shell, sleeper = _launch_tree(tmp_path)
    proc.kill()
    proc.wait(timeout=30)
    assert _gone(shell, sleeper), "the command's process group outlived a killed tracer"
