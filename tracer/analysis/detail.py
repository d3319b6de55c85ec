"""One turn in full: its request items and its reassembled output (for ``tracer turn``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

import orjson

from tracer.analysis.report import InspectReport, canonical_item
from tracer.responses.model import Turn, TurnSegmenter, dict_items, output_text
from tracer.trace.records import Record

__all__ = ["summarise_item", "turn_detail"]


def summarise_item(item: Any, width: int = 160) -> str:
    """A one-line description of an input or output item."""
    if not isinstance(item, dict):
        text = str(item)
    else:
        kind = item.get("type") or "message"
        if kind == "message":
            content = item.get("content")
            if isinstance(content, list):
                content = " ".join(str(p.get("text", "")) for p in dict_items(content))
            text = f"{item.get('role', '?')}: {content}"
        elif kind == "function_call":
            text = f"function_call {item.get('name')}({item.get('arguments')})"
        elif kind == "function_call_output":
            text = f"function_call_output [{item.get('call_id')}]: {item.get('output')}"
        else:
            text = f"{kind}: {orjson.dumps(item).decode()}"
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def turn_detail(records: Iterable[Record], index: int, report: InspectReport) -> dict[str, Any]:
    """The request and output of turn ``index`` (as numbered in ``report``)."""
    base = next((t for t in report.turns if t.index == index), None)
    if base is None:
        raise IndexError(index)
    segmenter = TurnSegmenter(collect_text=True)
    seen: dict[int, set[int]] = {}
    inputs: list[dict[str, Any]] = []
    request: dict[str, Any] = {}
    turn: Turn | None = None
    for kind, t in segmenter.feed(records):
        hashes = seen.setdefault(t.conn, set())
        if kind == "start":
            if t.index == index:
                for item in t.input_items:
                    h = hash(canonical_item(item))
                    inputs.append({"summary": summarise_item(item), "resent": h in hashes})
                request = t.request
            for item in t.input_items:
                hashes.add(hash(canonical_item(item)))
        elif t.index == index:
            turn = t
            break
        else:
            for item in t.output:
                hashes.add(hash(canonical_item(item)))
    if turn is None:
        turn = next((t for _, t in segmenter.finish() if t.index == index), None)
    output = turn.output if turn is not None else []
    text = "".join(turn.text) if turn is not None else ""
    if not text:
        text = output_text(output)
    calls = [
        {"name": o.get("name"), "call_id": o.get("call_id"), "arguments": o.get("arguments")}
        for o in output
        if o.get("type") == "function_call"
    ]
    fields = {k: v for k, v in request.items() if k not in ("input", "tools")}
    return {
        "turn": asdict(base),
        "input": inputs,
        "request_fields": fields,
        "text": text,
        "calls": calls,
        "output": output,
    }
