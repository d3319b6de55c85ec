#!/usr/bin/env bash
# Installs Debian's Java runtime for the Spark test (tests/export/test_spark.py), run by the
# test when `java` is missing. Needs root, or sudo without a password.
set -euo pipefail
if command -v java >/dev/null 2>&1; then
    exit 0
fi
as_root=()
if [ "$(id -u)" -ne 0 ]; then
    as_root=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -q >/dev/null
"${as_root[@]}" apt-get install -y -q --no-install-recommends openjdk-17-jre-headless >/dev/null
command -v java
