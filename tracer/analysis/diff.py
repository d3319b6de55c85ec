"""Diff two sessions turn by turn (no I/O).

Turns are aligned by what the model answered (its text and function calls, in order), with a
sequence alignment, so that one inserted or dropped turn does not shift the rest; turns that
answer differently in the same place are paired as changed. Per aligned pair and in total the
diff compares context (bytes sent, resent, referenced, cached tokens), latency, status, and
what differs in the request and the output. ``headline`` states the changes in plain words.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from tracer.analysis.contents import TurnContent
from tracer.analysis.model import InspectReport, Summary, TurnReport
from tracer.vocab import count, size

__all__ = [
    "DiffReport",
    "FailCondition",
    "TurnContent",
    "TurnDiff",
    "diff_sessions",
    "parse_fail_on",
]

DIFF_SCHEMA_VERSION = 1
PAIR_METRICS = TurnReport.COMPARED
TOTAL_METRICS = Summary.COMPARED

# What counts as a change worth a headline: relative and absolute thresholds.
BYTES_REL, BYTES_ABS = 0.05, 1024
MS_REL, MS_ABS = 0.10, 20.0
TOKENS_REL, TOKENS_ABS = 0.05, 100
COST_REL, COST_ABS = 0.05, 0.0001


@dataclass(slots=True)
class TurnDiff:
    """One row of the diff: a turn of A and/or B and what changed between them."""

    a: int | None  # turn index in A, or None for a turn only in B
    b: int | None
    kind: str  # "same", "changed", "added" (only in B), "removed" (only in A)
    status_a: str | None
    status_b: str | None
    deltas: dict[str, float | None]  # B - A, for the metrics both have
    changes: list[str]  # what differs in the request and the output, in words
    a_values: dict[str, Any] = field(default_factory=dict)
    b_values: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class DiffReport:
    """The diff of two sessions."""

    a: str
    b: str
    totals_a: dict[str, Any]
    totals_b: dict[str, Any]
    deltas: dict[str, float | None]
    turns: list[TurnDiff]
    headline: list[str]
    identical: bool
    schema_version: int = DIFF_SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _delta(a: Any, b: Any) -> float | None:
    if a is None or b is None:
        return None
    d = b - a
    return round(d, 3) if isinstance(d, float) else d


def _values(t: TurnReport) -> dict[str, Any]:
    return {m: getattr(t, m) for m in PAIR_METRICS}


def _changes(ca: TurnContent, cb: TurnContent, ta: TurnReport, tb: TurnReport) -> list[str]:
    out: list[str] = []
    if ta.status != tb.status or ta.error_code != tb.error_code:
        out.append(f"status {ta.status} → {tb.status}")
    sa, sb = set(ca.input_hashes), set(cb.input_hashes)
    added = [s for h, s in zip(cb.input_hashes, cb.input_summaries, strict=True) if h not in sa]
    removed = [s for h, s in zip(ca.input_hashes, ca.input_summaries, strict=True) if h not in sb]
    if added or removed:
        example = f": +{added[0]}" if added else f": -{removed[0]}"
        parts = []
        if added:
            parts.append(f"{len(added)} of B's not in A")
        if removed:
            parts.append(f"{len(removed)} of A's not in B")
        out.append(
            f"input items {len(ca.input_hashes)} → {len(cb.input_hashes)} "
            f"({', '.join(parts)}){example[:90]}"
        )
    if ta.previous_response_id and not tb.previous_response_id:
        out.append("B does not chain with previous_response_id")
    elif tb.previous_response_id and not ta.previous_response_id:
        out.append("B chains with previous_response_id")
    if ca.model != cb.model:
        out.append(f"model {ca.model} → {cb.model}")
    if ca.instructions != cb.instructions:
        out.append("instructions differ")
    if ca.tools_hash != cb.tools_hash:
        extra = sorted(set(cb.tools) - set(ca.tools))
        missing = sorted(set(ca.tools) - set(cb.tools))
        detail = []
        if extra:
            detail.append(f"+{', '.join(extra)}")
        if missing:
            detail.append(f"-{', '.join(missing)}")
        out.append("tools differ" + (f" ({'; '.join(detail)})" if detail else ""))
    if ca.text != cb.text:
        out.append("output text differs")
    if ca.calls != cb.calls:
        names_a = [n for n, _ in ca.calls]
        names_b = [n for n, _ in cb.calls]
        out.append(
            f"function calls differ: {names_a} → {names_b}"
            if names_a != names_b
            else "function call arguments differ"
        )
    if ta.transport != tb.transport:
        out.append(f"transport {ta.transport} → {tb.transport}")
    return out


def diff_sessions(
    a_name: str,
    a: InspectReport,
    a_contents: list[TurnContent],
    b_name: str,
    b: InspectReport,
    b_contents: list[TurnContent],
) -> DiffReport:
    """Align the turns of two sessions and compare them."""
    keys_a = [c.key for c in a_contents]
    keys_b = [c.key for c in b_contents]
    by_a = {t.index: t for t in a.turns}
    by_b = {t.index: t for t in b.turns}
    rows: list[TurnDiff] = []
    for op, i1, i2, j1, j2 in _alignment(keys_a, keys_b):
        pairs: list[tuple[int | None, int | None]] = []
        if op in ("equal", "replace"):
            n = max(i2 - i1, j2 - j1)
            for k in range(n):
                ia = i1 + k if i1 + k < i2 else None
                jb = j1 + k if j1 + k < j2 else None
                pairs.append((ia, jb))
        elif op == "delete":
            pairs = [(i, None) for i in range(i1, i2)]
        else:
            pairs = [(None, j) for j in range(j1, j2)]
        for ia, jb in pairs:
            rows.append(_row(ia, jb, a_contents, b_contents, by_a, by_b))
    totals_a = {m: getattr(a.summary, m) for m in TOTAL_METRICS}
    totals_b = {m: getattr(b.summary, m) for m in TOTAL_METRICS}
    deltas = {m: _delta(totals_a[m], totals_b[m]) for m in TOTAL_METRICS}
    transports_a = {t.transport for t in a.turns}
    transports_b = {t.transport for t in b.turns}
    warmups = {t.index for t in a.turns if t.warmup}, {t.index for t in b.turns if t.warmup}
    headline = _headline(totals_a, totals_b, rows, transports_a, transports_b, warmups)
    headline += _money_headline(totals_a, totals_b)
    identical = all(r.kind == "same" and not r.changes for r in rows) and not headline
    return DiffReport(
        a=a_name,
        b=b_name,
        totals_a=totals_a,
        totals_b=totals_b,
        deltas=deltas,
        turns=rows,
        headline=headline,
        identical=identical,
    )


MAX_ALIGN_CELLS = 4_000_000
"""Past this many (A turns x B turns) left after trimming, turns are paired by position."""


def _alignment(a: list[str], b: list[str]) -> list[tuple[str, int, int, int, int]]:
    """difflib opcodes for two key lists. The common head and tail are matched first (in
    linear time), and a middle too large for difflib's quadratic worst case (thousands of
    identical turns) is paired by position instead."""
    lo = 0
    while lo < len(a) and lo < len(b) and a[lo] == b[lo]:
        lo += 1
    hi_a, hi_b = len(a), len(b)
    while hi_a > lo and hi_b > lo and a[hi_a - 1] == b[hi_b - 1]:
        hi_a -= 1
        hi_b -= 1
    ops: list[tuple[str, int, int, int, int]] = []
    if lo:
        ops.append(("equal", 0, lo, 0, lo))
    mid_a, mid_b = hi_a - lo, hi_b - lo
    if mid_a and mid_b and mid_a * mid_b > MAX_ALIGN_CELLS:
        ops.append(("replace", lo, hi_a, lo, hi_b))
    elif mid_a or mid_b:
        matcher = difflib.SequenceMatcher(a=a[lo:hi_a], b=b[lo:hi_b], autojunk=False)
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            ops.append((op, i1 + lo, i2 + lo, j1 + lo, j2 + lo))
    if hi_a < len(a):
        ops.append(("equal", hi_a, len(a), hi_b, len(b)))
    return ops


def _row(
    ia: int | None,
    jb: int | None,
    a_contents: list[TurnContent],
    b_contents: list[TurnContent],
    by_a: dict[int, TurnReport],
    by_b: dict[int, TurnReport],
) -> TurnDiff:
    ca = a_contents[ia] if ia is not None else None
    cb = b_contents[jb] if jb is not None else None
    ta = by_a.get(ca.index) if ca else None
    tb = by_b.get(cb.index) if cb else None
    va = _values(ta) if ta else {}
    vb = _values(tb) if tb else {}
    if ca and cb and ta and tb:
        changes = _changes(ca, cb, ta, tb)
        kind = "same" if ca.key == cb.key else "changed"
        deltas = {m: _delta(va[m], vb[m]) for m in PAIR_METRICS}
    else:
        one = tb if cb else ta
        changes = ["only in B" if cb else "only in A"]
        if one is not None and one.warmup:
            changes[0] += " (a warm-up)"
        kind = "added" if cb else "removed"
        deltas = {}
    return TurnDiff(
        a=ca.index if ca else None,
        b=cb.index if cb else None,
        kind=kind,
        status_a=ta.status if ta else None,
        status_b=tb.status if tb else None,
        deltas=deltas,
        changes=changes,
        a_values=va,
        b_values=vb,
    )


def _abs_size(n: float) -> str:
    return size(abs(n))


def _significant(a: float, b: float, rel: float, absolute: float) -> bool:
    d = abs(b - a)
    return d >= absolute and d >= rel * max(abs(a), 1e-9)


def _money_headline(ta: dict[str, Any], tb: dict[str, Any]) -> list[str]:
    """What B cost against A, when both were priced and the change is worth a line."""
    a, b = ta.get("cost_usd"), tb.get("cost_usd")
    if a is None or b is None or not _significant(a, b, COST_REL, COST_ABS):
        return []
    word = "more" if b > a else "less"
    return [f"B cost ${abs(b - a):,.4f} {word} (${a:,.4f} → ${b:,.4f})"]


def _headline(
    ta: dict[str, Any],
    tb: dict[str, Any],
    rows: list[TurnDiff],
    transports_a: set[str],
    transports_b: set[str],
    warmups: tuple[set[int], set[int]] = (set(), set()),
) -> list[str]:
    """The changes worth a line, in plain words; one-sided turns are named as turns or
    warm-ups (``warmups``: the warm-up indices of A and of B)."""
    out: list[str] = []
    if transports_a != transports_b:
        out.append(
            f"A uses {'/'.join(sorted(transports_a)) or 'nothing'}, "
            f"B uses {'/'.join(sorted(transports_b)) or 'nothing'}; "
            f"connections {ta['connections']} → {tb['connections']}"
        )
    changed = sum(r.kind == "changed" for r in rows)
    one_sided = [
        (side, sum(r.kind == kind and (r.b if side == "B" else r.a) not in warm for r in rows),
         sum(r.kind == kind and (r.b if side == "B" else r.a) in warm for r in rows))
        for side, kind, warm in (("B", "added", warmups[1]), ("A", "removed", warmups[0]))
    ]  # fmt: skip
    if changed or any(n or w for _, n, w in one_sided):
        parts = []
        for side, n, w in one_sided:
            if n:
                parts.append(f"{n} {'turn' if n == 1 else 'turns'} only in {side}")
            if w:
                parts.append(f"{w} {'warm-up' if w == 1 else 'warm-ups'} only in {side}")
        if changed:
            parts.append(f"{changed} answered differently")
        out.append(f"turns {ta['turns']} → {tb['turns']}: " + ", ".join(parts))
    for metric, label in [
        ("bytes_sent", "sent"),
        ("resent_bytes", "resent"),
        ("resent_field_bytes", "resent in request fields"),
        ("referenced_bytes", "referenced"),
    ]:
        a, b = ta[metric], tb[metric]
        if _significant(a, b, BYTES_REL, BYTES_ABS):
            word = "more" if b > a else "less"
            out.append(f"B {label} {_abs_size(b - a)} {word} ({_abs_size(a)} → {_abs_size(b)})")
    for metric, label in [("cached_tokens", "cached tokens"), ("input_tokens", "input tokens")]:
        a, b = ta[metric], tb[metric]
        if (a is None) != (b is None):  # one side's server reported no usage
            out.append(f"{label} {count(a)} → {count(b)}")
        elif a is not None and b is not None and _significant(a, b, TOKENS_REL, TOKENS_ABS):
            out.append(f"{label} {a:,} → {b:,} ({b - a:+,})")
    for metric, label in [
        ("ttft_p50_ms", "time to first token p50"),
        ("duration_p50_ms", "turn p50"),
        ("client_ms", "client time"),
        ("voice_latency_p50_ms", "voice latency p50"),
    ]:
        a, b = ta[metric], tb[metric]
        if a is not None and b is not None and _significant(a, b, MS_REL, MS_ABS):
            out.append(f"{label} {b - a:+.0f} ms ({a:.0f} → {b:.0f} ms)")
    counts = [("cache_losses", "cache losses"), ("errors", "errors"),
              ("interruptions", "interruptions")]  # fmt: skip
    for metric, label in counts:
        if ta[metric] != tb[metric]:
            out.append(f"{label} {ta[metric]} → {tb[metric]}")
    return out


@dataclass(slots=True)
class FailCondition:
    """``--fail-on METRIC>T`` (B above A by more than T) or ``METRIC<T`` (below)."""

    metric: str
    direction: str  # ">" or "<"
    threshold: float
    relative: bool  # T was given in percent

    def check(self, report: DiffReport) -> str | None:
        """A sentence when the condition is met (a regression), else None."""
        a = report.totals_a.get(self.metric)
        b = report.totals_b.get(self.metric)
        if a is None or b is None:
            return None
        change = b - a if self.direction == ">" else a - b
        limit = self.threshold * abs(a) / 100 if self.relative else self.threshold
        if change > limit:
            unit = "%" if self.relative else ""
            word = "rose" if self.direction == ">" else "fell"
            return (
                f"{self.metric} {word} from {a} to {b} "
                f"(limit {self.direction}{self.threshold:g}{unit})"
            )
        return None


_FAIL = re.compile(r"^\s*([a-z0-9_]+)\s*([<>])\s*([0-9]+(?:\.[0-9]+)?)\s*(%|ms)?\s*$")


def parse_fail_on(text: str) -> FailCondition:
    """Parse ``METRIC>T``, ``METRIC<T``, T a number, ``N%`` or ``Nms``."""
    m = _FAIL.match(text)
    if not m or m.group(1) not in TOTAL_METRICS:
        raise ValueError(
            f"--fail-on takes METRIC>T or METRIC<T (T a number, N% or Nms), METRIC one of "
            f"{', '.join(TOTAL_METRICS)}; not {text!r}"
        )
    return FailCondition(m.group(1), m.group(2), float(m.group(3)), m.group(4) == "%")
