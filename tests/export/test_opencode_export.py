"""`opencode export` (the pinned opencode, against the scripted upstream) writes the
session's messages, not its traffic: tracer names it and says how to record the agent
instead, in one line, rather than reading it as an empty HAR."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.conftest import assert_clean_error, run_tracer
from tracer.upstream import running_upstream


def test_an_opencode_export_is_named_with_what_to_do(node_tools: Path, tmp_path: Path):
    binary = node_tools / "node_modules" / ".bin" / "opencode"
    home = tmp_path / "home"
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": f"{home}/config",
           "XDG_DATA_HOME": f"{home}/data", "XDG_CACHE_HOME": f"{home}/cache",
           "XDG_STATE_HOME": f"{home}/state", "OPENCODE_DISABLE_AUTOUPDATE": "1",
           "OPENCODE_DISABLE_MODELS_FETCH": "1",
           "OPENAI_API_KEY": "sk-opencode-0123456789abcdefghij"}  # fmt: skip
    work = home / "work"
    work.mkdir(parents=True)
    config = home / "config" / "opencode" / "opencode.json"
    config.parent.mkdir(parents=True)
    with running_upstream() as upstream:
        base = f"http://127.0.0.1:{upstream.port}/v1"
        config.write_text(json.dumps({"provider": {"openai": {"options": {"baseURL": base}}}}))
        run = subprocess.run(
            [str(binary), "run", "-m", "openai/gpt-5.1", "--format", "json", "What is it?"],
            env=env, cwd=work, capture_output=True, text=True, timeout=150,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-2000:]
        assert upstream.engine.log  # it talked to the upstream
    events = [json.loads(x) for x in run.stdout.splitlines() if x.startswith("{")]
    session = next(e["sessionID"] for e in events if e.get("sessionID"))
    export = subprocess.run([str(binary), "export", session], env=env, cwd=work,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert export.returncode == 0, export.stderr[-2000:]
    path = tmp_path / "session.json"
    path.write_text(export.stdout[export.stdout.index("{") :])
    assert json.loads(path.read_text())["messages"]
    for command in (["inspect", str(path)], ["import", str(path), "-o", str(tmp_path / "o")]):
        proc = run_tracer(*command)
        assert_clean_error(proc)
        assert "opencode session export" in proc.stderr and "tracer record" in proc.stderr
