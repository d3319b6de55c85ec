"""Where views write: JSON to stdout, rich to a terminal, plain lines to a pipe."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, fields, is_dataclass
from typing import Any

import orjson
from rich.console import Console

from tracer.vocab import RESENT, count

__all__ = [
    "MAX_ROWS",
    "elided",
    "emit_json",
    "emit_json_line",
    "omitted_count",
    "omitted_note",
    "shallow",
    "stderr_console",
    "stdout_console",
]


def stdout_console() -> Console:
    """A console on stdout; plain text (no colour, no wrapping) when stdout is not a terminal."""
    return Console(highlight=False, soft_wrap=not sys.stdout.isatty())


def stderr_console() -> Console:
    """A console on stderr; its lines are not wrapped when stderr is not a terminal (a log
    keeps each status line whole)."""
    return Console(stderr=True, highlight=False, soft_wrap=not sys.stderr.isatty())


_INDENTED = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS


def emit_json(obj: Any) -> None:
    """Print one JSON document on stdout: JSON data, or a report dataclass as ``asdict``
    gives it. orjson writes the same bytes as ``json.dumps(indent=2)`` in a fraction of the
    time, a dataclass without a copy; what it refuses (an integer past 64 bits) takes the
    standard library's way. A float that is no number is written as null."""
    try:
        text = orjson.dumps(obj, option=_INDENTED).decode()
    except (orjson.JSONEncodeError, TypeError):
        text = json.dumps(obj, indent=2, ensure_ascii=False, default=_plain)
    sys.stdout.write(text + "\n")


def _plain(obj: Any) -> Any:
    """A dataclass inside what ``emit_json`` writes, for the standard library's way."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def shallow(obj: Any) -> dict[str, Any]:
    """A report dataclass's fields as a dict, their values as they are (no copy): for
    ``emit_json`` of a report with a key added."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def emit_json_line(obj: Any) -> None:
    """Print one compact JSON object on its own line (JSON Lines)."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")


MAX_ROWS = 1000
"""Rows a terminal table shows before it elides the middle (JSON always has them all)."""


def omitted_count(total: int, limit: int = MAX_ROWS) -> int:
    """How many of ``total`` rows ``elided`` leaves out."""
    return 0 if total <= limit else total - 2 * (limit // 2)


def elided(items: list[Any], limit: int = MAX_ROWS) -> tuple[list[Any], int, list[Any]]:
    """The first and last ``limit // 2`` items of a long list, and how many lie between."""
    omitted = omitted_count(len(items), limit)
    if not omitted:
        return items, 0, []
    half = limit // 2
    return items[:half], omitted, items[-half:]


def omitted_note(count: int, what: str) -> str:
    return f"… {count:,} {what} not shown (all of them: --json, or tracer tui) …"


def warn_truncated(path: object, truncated: bool, *, quiet: bool = False) -> None:
    """One stderr line for a trace that ends mid-record (analysed up to the cut)."""
    if truncated and not quiet:
        stderr_console().print(
            f"tracer: warning: {path} is truncated; analysed up to the cut", markup=False
        )


def note_synthesised(path: object, header: Any) -> None:
    """One stderr line for a trace whose times its source did not have (an imported
    cassette): its latency figures are not measured."""
    metadata = getattr(header, "metadata", None)
    if isinstance(metadata, dict) and metadata.get("times") == "synthesised":
        stderr_console().print(
            f"tracer: note: {path} has synthesised times (its source recorded none): "
            "latency figures are not measured",
            markup=False,
        )


def tokens_phrase(s: Any) -> str:
    """A summary's token totals in words: unknown when no turn reported usage, and over
    how many turns when only some did (``s`` is a ``Summary``)."""
    if s.input_tokens is None and s.output_tokens is None:
        return "tokens: unknown (the server reported no usage)"
    text = (
        f"tokens: {count(s.input_tokens)} in ({count(s.cached_tokens)} cached), "
        f"{count(s.output_tokens)} out"
    )
    if s.usage_turns < s.turns:
        text += f" (over the {s.usage_turns} of {s.turns} turns that reported usage)"
    return text


def resent_label(reason: str | None) -> str:
    """The short label of resent items with this reason."""
    return RESENT.get(reason or "chain", RESENT["chain"]).label
