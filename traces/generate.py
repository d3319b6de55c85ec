"""Regenerate the sample traces in this folder: python traces/generate.py

Each sample is a recording of the demo agent (`tracer demo`) against the scripted upstream,
compacted afterwards. Timings differ from run to run; the structure does not.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

SAMPLES = {
    "incremental.trace": [],
    "full-resend.trace": ["--resend-full-history"],
    "reconnect.trace": ["--reconnect-after", "4"],
    "error.trace": ["--script", str(HERE / "scripts" / "error.toml")],
    "http.trace": ["--http"],
    "http-resend.trace": ["--http", "--resend-full-history"],
    "codex.trace": ["--profile", "codex"],
}


def main() -> None:
    for name, args in SAMPLES.items():
        out = HERE / name
        subprocess.run(
            [sys.executable, "-m", "tracer", "demo", "-o", str(out), *args],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(
            [sys.executable, "-m", "tracer", "compact", str(out)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(f"{name}: {out.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
