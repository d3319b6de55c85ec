#!/usr/bin/env bash
# Installs pytest-recording, with pytest and the openai SDK, into a virtualenv of its own for
# the cassette test (tests/export/test_vcr.py): its pytest plugin and cassetter's (in the test
# venv) both add --record-mode and cannot load together. Prints the virtualenv's python.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/.tools/pytest-recording"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import pytest_recording, openai" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q "pytest>=8" "pytest-recording>=0.13" "openai>=2" >/dev/null
fi
echo "$venv/bin/python"
