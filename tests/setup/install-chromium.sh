#!/usr/bin/env bash
# Installs Debian's Chromium for the HTML report's browser test (run by the test set-up when
# /usr/bin/chromium is missing). Needs root, or sudo without a password.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
as_root=()
if [ "$(id -u)" -ne 0 ]; then
    as_root=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -q >/dev/null
"${as_root[@]}" apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null
command -v chromium
