"""Where views write: JSON to stdout, rich to a terminal, plain lines to a pipe."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

__all__ = ["emit_json", "emit_json_line", "stderr_console", "stdout_console"]


def stdout_console() -> Console:
    """A console on stdout; plain text (no colour, no wrapping) when stdout is not a terminal."""
    return Console(highlight=False, soft_wrap=not sys.stdout.isatty())


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


def emit_json(obj: Any) -> None:
    """Print one JSON document on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def emit_json_line(obj: Any) -> None:
    """Print one compact JSON object on its own line (JSON Lines)."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")
