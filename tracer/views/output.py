"""Where views write: JSON to stdout, rich to a terminal, plain lines to a pipe."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

__all__ = [
    "MAX_ROWS",
    "elided",
    "emit_json",
    "emit_json_line",
    "omitted_count",
    "omitted_note",
    "stderr_console",
    "stdout_console",
]


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


def count(n: int | None) -> str:
    """A count with thousands separators; "unknown" for None (never 0)."""
    return "unknown" if n is None else f"{n:,}"


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


RESENT_WORDS = {
    "chain": ("resent", "resent on a live chain: waste"),
    "cache_loss": ("resent after cache loss", "resent after a cache loss: the price of the loss"),
    "transport": ("resent over HTTP", "resent over HTTP without previous_response_id"),
}
"""Per resent reason (``TurnReport.resent_reason``): a short label and a legend's words."""
RESENT_STYLE = {"chain": "bold red", "cache_loss": "bold magenta", "transport": "bold yellow"}


def resent_label(reason: str | None) -> str:
    """The short label of resent items with this reason."""
    return RESENT_WORDS.get(reason or "chain", RESENT_WORDS["chain"])[0]


_PLURALS = {"loss": "losses", "cache loss": "cache losses", "mismatch": "mismatches",
            "turn": "turns"}  # fmt: skip


def plural(n: int, word: str) -> str:
    """``n`` and ``word`` in the right number: "1 connection", "2 connections", "1 cache
    loss", "3 mismatches"."""
    if n == 1:
        return f"1 {word}"
    return f"{n:,} {_PLURALS.get(word, word + 's')}"


def turns_phrase(turns: int, warmups: int) -> str:
    """Turns counted the one way every view counts them: "13 turns + 1 warm-up"."""
    real = turns - warmups
    text = plural(real, "turn")
    return text + (f" + {plural(warmups, 'warm-up')}" if warmups else "")
