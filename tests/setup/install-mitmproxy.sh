#!/usr/bin/env bash
# Installs mitmproxy (for mitmdump) into a virtualenv of its own, for the flow-file import
# test (tests/export/test_mitmproxy.py): its pinned dependencies stay out of the test venv,
# and tracer reads flow files without it. Prints the path of mitmdump.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/.tools/mitmproxy"
if [ ! -x "$venv/bin/mitmdump" ]; then
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q "mitmproxy>=11,<12" >/dev/null
fi
echo "$venv/bin/mitmdump"
