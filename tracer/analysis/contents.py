"""What a turn asked and answered, reduced to what a diff compares (no I/O)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from tracer.analysis.items import identity, json_bytes, summarise_item
from tracer.protocols.turns import Turn
from tracer.responses.model import output_text

__all__ = ["TurnContent", "content_of", "digest"]


def digest(data: bytes) -> str:
    """A short, stable digest of ``data``."""
    return hashlib.sha256(data).hexdigest()[:16]


@dataclass(slots=True)
class TurnContent:
    """What a turn asked and answered, reduced to what a diff compares."""

    index: int
    input_hashes: list[str]
    input_summaries: list[str]
    text: str
    calls: list[tuple[str, str]]
    model: str | None
    instructions: str | None  # a hash
    tools: list[str]  # tool names
    tools_hash: str | None
    warmup: bool

    @property
    def key(self) -> str:
        """The alignment key: what the model answered."""
        calls = ";".join(f"{n}({a})" for n, a in self.calls)
        return f"{self.warmup}|{digest(self.text.encode())}|{calls}"

    def answered(self, output: list[dict[str, Any]]) -> None:
        """Take in what the model answered."""
        self.text = output_text(output)
        self.calls = [
            (str(o.get("name")), str(o.get("arguments")))
            for o in output
            if o.get("type") == "function_call"
        ]


_SEEN_LIMIT = 1_000_000  # distinct items remembered for content_of; past it, recomputed


def _without_call_id(item: Any) -> Any:
    """What of an input item two sessions share: not the server's call ids, which differ
    from one session to the next."""
    if isinstance(item, dict) and "call_id" in item:
        return {k: v for k, v in item.items() if k != "call_id"}
    return item


def content_of(
    turn: Turn, seen: dict[int, tuple[str, str]] | None = None, keys: list[int] | None = None
) -> TurnContent:
    """A started turn's request, as a diff compares it (its answer comes with ``answered``).

    ``seen`` maps the hash of an item's JSON as sent to its digest and its summary, across
    the turns of a session: an item resent on every turn is normalised and summarised once,
    and its strings are held once, so a session that resends its whole history costs memory
    per distinct item, not per copy. ``keys``: those hashes, when the caller has them (the
    context model's ``Account.keys``)."""
    seen = {} if seen is None else seen
    hashes: list[str] = []
    summaries: list[str] = []
    items = turn.input_items
    if keys is None or len(keys) != len(items):
        keys = [hash(json_bytes(item)) for item in items]
    for item, key in zip(items, keys, strict=True):
        known = seen.get(key)
        if known is None:
            known = (digest(identity(_without_call_id(item))), summarise_item(item, 100))
            if len(seen) < _SEEN_LIMIT:
                seen[key] = known
        hashes.append(known[0])
        summaries.append(known[1])
    req = turn.request
    raw_tools = req.get("tools")
    tools: list[Any] = raw_tools if isinstance(raw_tools, list) else []
    instr = req.get("instructions")
    model = req.get("model")
    return TurnContent(
        index=turn.index,
        input_hashes=hashes,
        input_summaries=summaries,
        text="",
        calls=[],
        model=model if isinstance(model, str) else None,
        instructions=digest(instr.encode()) if isinstance(instr, str) else None,
        tools=[str(t.get("name")) for t in tools if isinstance(t, dict)],
        tools_hash=digest(json_bytes(tools, sort=True)) if tools else None,
        warmup=turn.warmup,
    )
