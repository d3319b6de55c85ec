"""The Codex CLI (`codex exec --json`), for the conformance matrix: run in a home of its own,
pointed at OPENAI_BASE_URL either through its built-in provider (`-c openai_base_url=...`,
what `tracer record -- codex ...` inserts) or through a custom provider in its config file
with WebSocket mode on. Prints its own account from its JSON events: the last agent message
(Codex's events carry no response ids)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BINARY = ROOT / ".tools" / "codex" / "node_modules" / ".bin" / "codex"

base = os.environ["OPENAI_BASE_URL"]
# The same home on every run: Codex puts its paths into its instructions, which a replay
# matches against the recording.
home = ROOT / ".tools" / f"codex-home-{sys.argv[1]}"
shutil.rmtree(home, ignore_errors=True)
try:
    work = home / "work"
    work.mkdir(parents=True)
    args = [
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox",
        "-m",
        "gpt-5.1-codex",
    ]  # a model whose tools are function tools
    if sys.argv[1] == "builtin":
        args[1:1] = ["-c", f'openai_base_url="{base}"']
    else:
        (home / "config.toml").write_text(
            'model = "gpt-5.1-codex"\nmodel_provider = "recorded"\n\n'
            "[model_providers.recorded]\n"
            f'name = "recorded"\nbase_url = "{base}"\nenv_key = "OPENAI_API_KEY"\n'
            'wire_api = "responses"\nsupports_websockets = true\n'
        )
    proc = subprocess.run(
        [str(BINARY), *args, "What is the answer?"],
        capture_output=True, text=True, timeout=150, cwd=work,
        env={**os.environ, "CODEX_HOME": str(home)}, stdin=subprocess.DEVNULL,
    )  # fmt: skip
finally:
    shutil.rmtree(home, ignore_errors=True)
if proc.returncode != 0:
    sys.exit(f"codex failed ({proc.returncode}): {proc.stderr[-2000:]}")
events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
messages = [
    e["item"]["text"]
    for e in events
    if e.get("type") == "item.completed" and e.get("item", {}).get("type") == "agent_message"
]
print(json.dumps({"final": messages[-1] if messages else "", "responses": None}))
