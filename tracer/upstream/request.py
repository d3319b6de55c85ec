"""A create as the scripted upstream's engine reads it (no I/O): its fields, the chain it
continues, the script's answer, the usage it costs, and the Response object it starts."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from tracer.protocols.turns import dict_items
from tracer.upstream.script import Profile, Script, Timing, TurnScript

__all__ = ["Cached", "Request", "canonical", "conversation_depth", "response_object"]


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(slots=True)
class Cached:
    """A completed response as the connection's cache holds it."""

    id: str
    items: list[dict[str, Any]]  # the whole context: chain, input and output items
    instructions: str | None
    tools_json: str


def _normalise_input(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, list):
        return [v if isinstance(v, dict) else {"value": v} for v in value]
    return [{"value": value}]


def _is_output(item: dict[str, Any]) -> bool:
    kind = item.get("type", "message")
    if kind == "message":
        return item.get("role") == "assistant"
    return kind in ("function_call", "reasoning", "custom_tool_call")


def conversation_depth(items: list[dict[str, Any]]) -> int:
    """How many model responses a context holds: runs of consecutive output items."""
    depth = 0
    previous = False
    for item in items:
        out = _is_output(item)
        if out and not previous:
            depth += 1
        previous = out
    return depth


@dataclass(slots=True)
class Request:
    """A create's fields as the engine uses them, and the script's answer to it."""

    lane: str | None
    prev: str | None
    new_items: list[dict[str, Any]]
    instructions: str | None
    tools: list[Any]
    tools_json: str
    chain: Cached | None
    context: list[dict[str, Any]]  # the chain's items, then the new ones
    generate: bool
    encrypted: bool  # the client asked for encrypted reasoning
    depth: int
    turn: TurnScript
    timing: Timing
    model: str
    profile: Profile
    compact_threshold: int | None = None  # context_management: compact past these tokens
    prefix_cached_bytes: int = 0  # the "prefix-cache" profile: a prefix seen before

    def prefix(self) -> list[tuple[str, int]]:
        """The context as the service caches it, piece by piece: tools, instructions, then
        each item (a digest and a size in bytes); a prefix is cached up to its first change."""
        pieces = [self.tools_json, self.instructions or ""]
        pieces += [canonical(i) for i in self.context]
        return [(hashlib.sha256(p.encode()).hexdigest()[:32], len(p.encode())) for p in pieces]

    @classmethod
    def of(
        cls,
        body: dict[str, Any],
        lane: str | None,
        prev: str | None,
        chain: Cached | None,
        script: Script,
    ) -> Request:
        new_items = _normalise_input(body.get("input"))
        instructions = body.get("instructions")
        raw_tools = body.get("tools")
        tools: list[Any] = raw_tools if isinstance(raw_tools, list) else []
        context = (chain.items if chain else []) + new_items
        generate = body.get("generate", True) is not False
        depth = conversation_depth(context)
        turn = script.turn(depth) if generate else TurnScript()
        include = body.get("include")
        threshold = next(
            (
                c.get("compact_threshold")
                for c in dict_items(body.get("context_management"))
                if c.get("type") == "compaction" and isinstance(c.get("compact_threshold"), int)
            ),
            None,
        )
        model = body.get("model")
        return cls(
            lane=lane,
            prev=prev,
            new_items=new_items,
            instructions=instructions if isinstance(instructions, str) else None,
            tools=tools,
            tools_json=canonical(tools) if tools else "",
            chain=chain,
            context=context,
            generate=generate,
            encrypted=isinstance(include, list) and "reasoning.encrypted_content" in include,
            depth=depth,
            turn=turn,
            timing=turn.timing or script.timing,
            model=model if isinstance(model, str) else script.model,
            profile=script.profile,
            compact_threshold=threshold,
        )

    def context_tokens(self) -> int:
        """The context's size in tokens, at 4 bytes a token (as ``usage`` counts it)."""
        size = len(self.tools_json) + len((self.instructions or "").encode())
        return (size + sum(len(canonical(i).encode()) for i in self.context)) // 4

    def usage(
        self, out_tokens: int, reasoning_tokens: int, *, writes: bool = False
    ) -> dict[str, Any]:
        """Usage at 4 bytes a token: the whole context in, the cached part (the chain, and
        instructions and tools identical to the chain's), the deltas out; with ``writes``
        (the gpt-5.6 generation), the uncached rest as written to the cache."""
        instructions, tools_json, chain = self.instructions, self.tools_json, self.chain
        context_bytes = len(tools_json) + len((instructions or "").encode())
        context_bytes += sum(len(canonical(i).encode()) for i in self.context)
        cached_bytes = 0
        if chain is not None:
            cached_bytes = sum(len(canonical(i).encode()) for i in chain.items)
            if chain.instructions == instructions and instructions:
                cached_bytes += len(instructions.encode())
            if chain.tools_json == tools_json:
                cached_bytes += len(tools_json)
        cached_bytes = max(cached_bytes, self.prefix_cached_bytes)
        details = {"cached_tokens": cached_bytes // 4}
        if writes:
            details["cache_write_tokens"] = context_bytes // 4 - cached_bytes // 4
        return {
            "input_tokens": context_bytes // 4,
            "input_tokens_details": details,
            "output_tokens": out_tokens,
            "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
            "total_tokens": context_bytes // 4 + out_tokens,
        }


def response_object(
    response_id: str, created_at: int, body: dict[str, Any], req: Request
) -> dict[str, Any]:
    """The Response object as response.created carries it (in progress, no output)."""
    metadata = body.get("metadata")
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": req.instructions,
        "max_output_tokens": body.get("max_output_tokens"),
        "model": req.model,
        "output": [],
        "parallel_tool_calls": True,
        "previous_response_id": req.prev,
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True) is not False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": req.tools,
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": None,
        "user": None,
        "metadata": metadata if isinstance(metadata, dict) else {},
    }
