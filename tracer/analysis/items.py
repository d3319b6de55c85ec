"""Input and output items: their JSON size, their identity, and one-line summaries (no I/O).

An item's *identity* is what the client controls of it. A client that resends an item it
received re-serialises it: it drops what the server added (``id``, ``status``, ``phase``,
``obfuscation``), may leave out ``type`` on a message, may write a message's text as a
plain string, and drops empty ``annotations`` and ``logprobs``. Two items with the same
identity are the same context item (see ``docs/analysis.md``).
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson

from tracer.protocols.turns import dict_items

__all__ = ["ItemHashes", "identity", "item_hash", "json_bytes", "summarise_item"]

# Assigned by the server, or padding it adds: never part of an item's identity.
_SERVER_KEYS = frozenset(["id", "status", "phase", "obfuscation", "object"])
_EMPTY_NOISE = frozenset(["annotations", "logprobs"])
# The text part type of a message's plain-string content, by role.
_TEXT_PART = {"assistant": "output_text"}


def json_bytes(value: Any, *, sort: bool = False) -> bytes:
    """``value`` as JSON, for sizes and hashes. Parsed JSON can nest deeper than orjson
    writes (1024 levels in, 254 out): such a value gets its ``repr``, which is as stable."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort else None)
    except TypeError:  # orjson.JSONEncodeError: recursion limit (or a non-JSON value)
        try:
            return repr(value).encode()
        except RecursionError:
            return b'"<nested too deep>"'


def identity(item: Any) -> bytes:
    """An item's identity as canonical JSON (sorted keys): what the client controls of it."""
    if isinstance(item, dict):
        with contextlib.suppress(RecursionError):  # nested past Python's limit: keep it whole
            item = _normalise(item)
    return json_bytes(item, sort=True)


def item_hash(item: Any) -> int:
    """A hash of ``identity(item)``, for the sets of items already seen."""
    return hash(identity(item))


class ItemHashes:
    """``item_hash`` memoised by the item's JSON as sent: an agent that resends its whole
    history every turn sends the same bytes again, so each distinct item is normalised once.
    Keys are hashes of those bytes (Python's keyed hash), so memory is a few dozen bytes per
    distinct item, up to ``limit`` items; past it, hashes are computed, not kept."""

    def __init__(self, limit: int = 1_000_000) -> None:
        self._known: dict[int, int] = {}
        self._limit = limit

    def __call__(self, item: Any, raw: bytes | None = None) -> int:
        """``item_hash(item)``; ``raw`` is ``json_bytes(item)`` when the caller has it."""
        return self.keyed(item, hash(json_bytes(item) if raw is None else raw))

    def keyed(self, item: Any, key: int) -> int:
        """``item_hash(item)``, ``key`` being ``hash(json_bytes(item))``."""
        found = self._known.get(key)
        if found is None:
            found = item_hash(item)
            if len(self._known) < self._limit:
                self._known[key] = found
        return found


def _normalise(item: dict[str, Any]) -> dict[str, Any]:
    out = {k: _strip(v) for k, v in item.items() if k not in _SERVER_KEYS}
    if "role" in out and "type" not in out:
        out["type"] = "message"
    if out.get("type") == "message" and isinstance(out.get("content"), str):
        part = _TEXT_PART.get(str(out.get("role")), "input_text")
        out["content"] = [{"type": part, "text": out["content"]}]
    return out


def _strip(value: Any) -> Any:
    if isinstance(value, list):
        return [_strip(v) for v in value]
    if isinstance(value, dict):
        return {
            k: _strip(v)
            for k, v in value.items()
            if not (k in _EMPTY_NOISE and v in ([], None)) and k != "obfuscation"
        }
    return value


def _audio(part: dict[str, Any]) -> str:
    """An audio part with no transcript: say it is audio rather than nothing."""
    return "(audio)" if "audio" in str(part.get("type")) else ""


def summarise_item(item: Any, width: int = 160) -> str:
    """A one-line description of an input or output item."""
    if not isinstance(item, dict):
        text = str(item)
    else:
        kind = item.get("type") or "message"
        if kind == "message":
            content = item.get("content")
            if isinstance(content, list):
                content = " ".join(
                    str(p["text"] if "text" in p else p.get("transcript") or _audio(p))
                    for p in dict_items(content)
                )
            text = f"{item.get('role', '?')}: {content}"
        elif kind == "function_call":
            text = f"function_call {item.get('name')}({item.get('arguments')})"
        elif kind == "function_call_output":
            text = f"function_call_output [{item.get('call_id')}]: {item.get('output')}"
        elif kind == "reasoning":
            summary = " ".join(str(p.get("text", "")) for p in dict_items(item.get("summary")))
            text = f"reasoning: {summary or '(encrypted)'}"
        else:
            text = f"{kind}: {json_bytes(item).decode(errors='replace')}"
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"
