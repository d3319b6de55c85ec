"""What a turn asked and answered, reduced to what a diff compares (no I/O)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from tracer.analysis.items import identity, json_bytes, summarise_item
from tracer.responses.model import Turn, output_text

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


def _item_digest(item: Any) -> str:
    """An input item's identity across two sessions: also without the server's call ids,
    which differ from one session to the next."""
    if isinstance(item, dict) and "call_id" in item:
        item = {k: v for k, v in item.items() if k != "call_id"}
    return digest(identity(item))


def content_of(turn: Turn) -> TurnContent:
    """A started turn's request, as a diff compares it (its answer comes with ``answered``)."""
    req = turn.request
    raw_tools = req.get("tools")
    tools: list[Any] = raw_tools if isinstance(raw_tools, list) else []
    instr = req.get("instructions")
    model = req.get("model")
    return TurnContent(
        index=turn.index,
        input_hashes=[_item_digest(i) for i in turn.input_items],
        input_summaries=[summarise_item(i, 100) for i in turn.input_items],
        text="",
        calls=[],
        model=model if isinstance(model, str) else None,
        instructions=digest(instr.encode()) if isinstance(instr, str) else None,
        tools=[str(t.get("name")) for t in tools if isinstance(t, dict)],
        tools_hash=digest(json_bytes(tools, sort=True)) if tools else None,
        warmup=turn.warmup,
    )
