#!/usr/bin/env bash
# Installs claude-tap (an agent-trace proxy) into a virtualenv of its own, for the JSONL
# import test (tests/export/test_claude_tap.py): its pinned aiohttp stays out of the test
# venv, and tracer reads its traces without it. Prints the virtualenv's bin directory.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/.tools/claude-tap"
if [ ! -x "$venv/bin/claude-tap" ]; then
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q "claude-tap>=0.1.146,<0.2" >/dev/null
fi
echo "$venv/bin"
