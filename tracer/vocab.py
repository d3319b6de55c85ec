"""One vocabulary for every view: units, phase names and glyphs, status and diff words, and
their colours (no I/O).

The terminal views, the TUI and the HTML report map these to their medium (a rich style, a
CSS class or variable); none of them keeps a table of its own. Two spellings of each unit:
``kb``/``ms`` are compact, for terminal columns ("1.6k", "34ms"); ``size``/``duration`` are
spaced, for prose, diffs and the HTML report ("1.6 kB", "34 ms").
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CONNECTION_STARTS",
    "DIFF_KINDS",
    "FAILED",
    "JUDGED",
    "PHASES",
    "RESENT",
    "STATUS",
    "DiffKind",
    "Phase",
    "Resent",
    "count",
    "duration",
    "kb",
    "ms",
    "plural",
    "size",
    "turns_phrase",
]


# Units -------------------------------------------------------------------------------------


def kb(n: float | None) -> str:
    """Bytes or tokens in a terminal column: "136.7k" (k = 1,000), "812", "-" if unknown."""
    if n is None:
        return "-"
    return f"{n / 1000:,.1f}k" if abs(n) >= 1000 else f"{n:.0f}"


def ms(v: float | None) -> str:
    """A time in a terminal column: "34ms", "1.02s", "-" when unknown."""
    if v is None:
        return "-"
    return f"{v / 1000:.2f}s" if abs(v) >= 1000 else f"{v:.0f}ms"


def size(n: float | None) -> str:
    """Bytes in prose and on the page: "1.6 kB", "2.4 MB", "812 B", "-" if unknown."""
    if n is None:
        return "-"
    mark = "-" if n < 0 else ""
    v = abs(n)
    if v >= 1e6:
        return f"{mark}{v / 1e6:.1f} MB"
    if v >= 1e3:
        return f"{mark}{v / 1e3:.1f} kB"
    return f"{mark}{v:,.0f} B"


def duration(v: float | None) -> str:
    """A time in ms in prose and on the page: "34 ms", "1.02 s", "-" if unknown."""
    if v is None:
        return "-"
    mark = "-" if v < 0 else ""
    a = abs(v)
    return f"{mark}{a / 1000:.2f} s" if a >= 1000 else f"{mark}{a:,.0f} ms"


def audio_seconds(v: float | None) -> str:
    """Seconds of audio: "0.72 s", "-" if unknown."""
    return "-" if v is None else f"{v:,.2f} s"


def usd(v: float | None) -> str:
    """Money: "$0.0123", "$12.40", "-" when unknown (never $0 for unknown)."""
    if v is None:
        return "-"
    return f"${v:,.2f}" if abs(v) >= 10 else f"${v:,.4f}"


def count(n: int | None) -> str:
    """A count with thousands separators; "unknown" for None (never 0)."""
    return "unknown" if n is None else f"{n:,}"


_PLURALS = {"loss": "losses", "cache loss": "cache losses", "mismatch": "mismatches",
            "turn": "turns"}  # fmt: skip


def plural(n: int, word: str) -> str:
    """``n`` and ``word`` in the right number: "1 connection", "2 connections", "1 cache
    loss", "3 mismatches"."""
    if n == 1:
        return f"1 {word}"
    return f"{n:,} {_PLURALS.get(word, word + 's')}"


def turns_phrase(turns: int, warmups: int, compactions: int = 0) -> str:
    """Turns counted the one way every command counts them (``Summary.turns``, warm-ups
    and compact calls included, which are named): "15 turns (1 warm-up, 2 compactions)"."""
    named = [plural(n, word) for n, word in ((warmups, "warm-up"), (compactions, "compaction"))
             if n]  # fmt: skip
    return plural(turns, "turn") + (f" ({', '.join(named)})" if named else "")


# Phases of a turn --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Phase:
    label: str  # what it is, in words
    short: str  # the same in a legend beside a narrow bar
    glyph: str  # its cell in a terminal waterfall (distinct: readable without colour)
    style: str  # rich style
    css: str  # CSS class in the HTML report
    colour: str  # CSS colour (a variable of the report's palette)


PHASES: dict[str, Phase] = {  # TurnReport.phases() names, in order
    "client": Phase(
        "client time before the turn", "client time", "·", "blue", "client", "var(--client)"
    ),
    "handshake": Phase("handshake", "handshake", "▓", "magenta", "handshake", "var(--hs)"),
    "ttfe": Phase("create → first event", "to first event", "░", "dim", "ttfe", "var(--ttfe)"),
    "token_wait": Phase(
        "first event → first token", "to first token", "▒", "yellow", "wait", "var(--wait)"
    ),
    "generation": Phase("generation", "generation", "█", "green", "gen", "var(--gen)"),
    "finish": Phase(
        "first event → end, no tokens",
        "to end, no tokens",
        "╌",
        "dim",
        "finish",
        "var(--other)",
    ),
}
BEFORE_CREATE = ("client", "handshake")  # phases that end where the create is sent
VOICE_PHASES = {  # what the same phases are for a voice turn (the Realtime API)
    "ttfe": "speech end (or the create) → the response starts: the detection",
    "token_wait": "→ first audio (or text)",
    "generation": "the rest of the answer",
}
FAILED = Phase("failed or cut short", "failed", "█", "red", "failed", "var(--bad)")
"""How the end of a failed or cut-short turn is drawn, in every medium."""


# Turn status -------------------------------------------------------------------------------

STATUS = {  # TurnReport.status: rich style (the HTML marks failed and cut-short rows)
    "completed": "green",
    "error": "bold red",
    "failed": "red",
    "incomplete": "yellow",
    "cancelled": "yellow",
    "unfinished": "magenta",
}


# Resent context ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resent:
    label: str  # short label
    legend: str  # a legend's words
    style: str  # rich style
    colour: str  # CSS colour


RESENT = {  # TurnReport.resent_reason
    "chain": Resent("resent", "resent on a live chain: waste", "bold red", "var(--resent)"),
    "cache_loss": Resent(
        "resent after cache loss",
        "resent after a cache loss: the price of the loss",
        "bold magenta",
        "var(--resent-loss)",
    ),
    "transport": Resent(
        "resent over HTTP",
        "resent over HTTP without previous_response_id",
        "bold yellow",
        "var(--resent-http)",
    ),
}


# Connections -------------------------------------------------------------------------------

CONNECTION_STARTS = {  # InspectReport.connection_starts()
    "reconnect": "reconnect: the same conversation",
    "new": "a new session",
}

PROTOCOLS = {  # ConnectionReport.protocol, TurnReport.protocol
    "responses": "Responses API",
    "realtime": "Realtime API",
    "gemini-live": "Gemini Live",
    "openai-live": "OpenAI Live API",
}
REFERENCED_BY = {  # TurnReport.protocol: what its referenced items stood on
    "responses": "referenced by previous_response_id",
    "realtime": "held by the connection's conversation",
    "gemini-live": "held by the session",
    "openai-live": "held by the session",
}
NOT_UNDERSTOOD = "not understood"  # a connection no protocol claimed (protocol null)

TRIGGERS = {  # TurnReport.trigger
    "client": "the client asked (a create)",
    "vad": "the server heard the speaker stop (voice activity detection)",
    "server": "the server started it on its own",
}


def protocol_label(name: str | None) -> str:
    """How the views name a connection's protocol."""
    return PROTOCOLS.get(name or "", NOT_UNDERSTOOD)


# Diffs -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiffKind:
    words: str  # in a row
    style: str  # rich style


DIFF_KINDS = {  # TurnDiff.kind
    "same": DiffKind("same answer", ""),
    "changed": DiffKind("changed", "yellow"),
    "added": DiffKind("only in B", "green"),
    "removed": DiffKind("only in A", "red"),
}
JUDGED = {"better": "bold green", "worse": "bold red", "changed": "yellow"}
"""A metric's change (``metrics.judge``): its rich style; the HTML uses the word as a class."""
