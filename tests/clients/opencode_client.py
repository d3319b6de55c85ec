"""opencode (`opencode run`), for the conformance matrix: run in a home of its own (no user
config), with the model `openai/gpt-5.1`; prints its own account from its JSON events (the
final text; opencode's events carry no response ids)."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BINARY = ROOT / ".tools" / "node" / "node_modules" / ".bin" / "opencode"

with tempfile.TemporaryDirectory(prefix="opencode-home-") as home:
    env = {**os.environ, "HOME": home, "XDG_CONFIG_HOME": f"{home}/config",
           "XDG_DATA_HOME": f"{home}/data", "XDG_CACHE_HOME": f"{home}/cache",
           "XDG_STATE_HOME": f"{home}/state", "OPENCODE_DISABLE_AUTOUPDATE": "1",
           "OPENCODE_DISABLE_MODELS_FETCH": "1"}  # fmt: skip
    if sys.argv[1] == "websocket":
        env["OPENCODE_EXPERIMENTAL_WEBSOCKETS"] = "1"
        # Its WebSocket fetch is installed by the openai auth plugin, which runs for stored
        # credentials (what `opencode auth login` writes), not for OPENAI_API_KEY alone.
        auth = Path(home) / "data" / "opencode" / "auth.json"
        auth.parent.mkdir(parents=True)
        key = os.environ.get("OPENAI_API_KEY", "sk-test-opencode")
        auth.write_text(json.dumps({"openai": {"type": "api", "key": key}}))
    work = Path(home) / "work"
    work.mkdir()
    proc = subprocess.run(
        [str(BINARY), "run", "-m", "openai/gpt-5.1", "--format", "json", "What is the answer?"],
        capture_output=True, text=True, timeout=150, env=env, cwd=work,
    )  # fmt: skip
if proc.returncode != 0:
    sys.exit(f"opencode failed ({proc.returncode}): {proc.stderr[-2000:]}")
events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
texts = [e["part"]["text"] for e in events if e.get("type") == "text"]
steps = sum(e.get("type") == "step_finish" for e in events)
print(json.dumps({"final": texts[-1] if texts else "", "responses": None, "steps": steps}))
