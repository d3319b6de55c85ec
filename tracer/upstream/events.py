"""The scripted upstream's events: one response's server events, with their delays (no I/O).

``EventBuilder`` collects the events of one response as the engine plans it: sequence
numbers, lane ids, seeded delays, and the shapes a profile asks for (vendor events,
reasoning items whose copies differ, obfuscation padding, message phases).
"""

from __future__ import annotations

import base64
import random
import re
from dataclasses import dataclass
from typing import Any

from tracer.upstream.script import Call, Profile, Timing

__all__ = ["EventBuilder", "Step", "copy_response"]


@dataclass(slots=True)
class Step:
    """Wait ``delay`` seconds, then send ``event``."""

    delay: float
    event: dict[str, Any]


def copy_response(response: dict[str, Any]) -> dict[str, Any]:
    return dict(response, output=list(response["output"]))


class EventBuilder:
    """Collects a response's events with sequence numbers, lane ids and seeded delays."""

    def __init__(
        self, lane: str | None, timing: Timing, rng: random.Random, profile: Profile
    ) -> None:
        self.lane = lane
        self.timing = timing
        self.rng = rng
        self.profile = profile
        self.steps: list[Step] = []
        self.tokens = 0
        self.reasoning_tokens = 0
        self._final: dict[str, dict[str, Any]] = {}  # item id -> its copy in completed

    def delay(self, ms: float) -> float:
        j = self.timing.jitter
        return max(0.0, ms * (1.0 + self.rng.uniform(-j, j)) / 1000.0)

    def add(self, delay: float, kind: str, **fields: Any) -> None:
        event: dict[str, Any] = {"type": kind, "sequence_number": len(self.steps), **fields}
        if self.lane is not None:
            event["stream_id"] = self.lane
        if self.profile.obfuscation and kind.endswith(".delta"):
            event["obfuscation"] = self._blob(4, 12)[: self.rng.randint(1, 16)]
        self.steps.append(Step(delay, event))

    def vendor(self, delay: float) -> None:
        """A vendor's event before the response starts (the Codex backend's rate limits)."""
        event: dict[str, Any] = {
            "type": "codex.rate_limits",
            "plan_type": "plus",
            "rate_limits": {"primary": {"used_percent": 12.0, "window_minutes": 300}},
        }
        self.steps.append(Step(delay, event))

    def _blob(self, lo: int, hi: int) -> str:
        """URL-safe base64 of random bytes, like the service's encrypted_content."""
        raw = bytes(self.rng.getrandbits(8) for _ in range(self.rng.randint(lo, hi)))
        return "gAAAAAB" + base64.urlsafe_b64encode(raw).decode()

    def final_copy(self, item: dict[str, Any]) -> dict[str, Any]:
        """An output item as response.completed lists it."""
        return self._final.get(str(item.get("id")), item)

    def reasoning(
        self, item_id: str, index: int, encrypted: bool, first_ms: float
    ) -> dict[str, Any]:
        """A reasoning item: encrypted_content differs in added, done and completed (as the
        service's does), so a client resends one of three copies."""
        summary = "Thinking about which command to run next."
        item: dict[str, Any] = {"id": item_id, "type": "reasoning", "summary": []}
        copies = [dict(item) for _ in range(3)]
        if encrypted:
            for c in copies:
                c["encrypted_content"] = self._blob(1024, 6144)
        self.add(0.0, "response.output_item.added", output_index=index, item=copies[0])
        ids = {"item_id": item_id, "output_index": index, "summary_index": 0}
        for i, piece in enumerate(re.findall(r"\s*\S+", summary)):
            delay = self._token_delay(first_ms if i == 0 else 0.0)
            self.add(delay, "response.reasoning_summary_text.delta", **ids, delta=piece)
            self.reasoning_tokens += 1
        self.add(0.0, "response.reasoning_summary_text.done", **ids, text=summary)
        parts = [{"type": "summary_text", "text": summary}]
        done, final = copies[1], copies[2]
        done["summary"] = final["summary"] = parts
        self.add(0.0, "response.output_item.done", output_index=index, item=done)
        self._final[item_id] = final
        return done

    def _token_delay(self, first_ms: float) -> float:
        """The first output token waits ``first_ms``; later ones come at tokens_per_s."""
        return self.delay(first_ms if first_ms else 1000.0 / self.timing.tokens_per_s)

    def message(
        self, item_id: str, index: int, text: str, first_ms: float, phase: str | None = None
    ) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": item_id,
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        if phase is not None:
            item["phase"] = phase
        self.add(0.0, "response.output_item.added", output_index=index, item=dict(item))
        part = {"type": "output_text", "text": "", "annotations": []}
        ids = {"item_id": item_id, "output_index": index, "content_index": 0}
        self.add(0.0, "response.content_part.added", **ids, part=part)
        pieces = re.findall(r"\s*\S+", text) or [text]
        for i, piece in enumerate(pieces):
            delay = self._token_delay(first_ms if i == 0 else 0.0)
            self.add(delay, "response.output_text.delta", **ids, delta=piece, logprobs=[])
            self.tokens += 1
        self.add(0.0, "response.output_text.done", **ids, text=text, logprobs=[])
        done_part = {"type": "output_text", "text": text, "annotations": []}
        self.add(0.0, "response.content_part.done", **ids, part=done_part)
        item.update(status="completed", content=[done_part])
        self.add(0.0, "response.output_item.done", output_index=index, item=item)
        return item

    def function_call(
        self, item_id: str, call_id: str, index: int, call: Call, first_ms: float
    ) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": item_id,
            "type": "function_call",
            "status": "in_progress",
            "call_id": call_id,
            "name": call.name,
            "arguments": "",
        }
        self.add(0.0, "response.output_item.added", output_index=index, item=dict(item))
        args = call.arguments
        pieces = [args[i : i + 8] for i in range(0, len(args), 8)] or [""]
        for i, piece in enumerate(pieces):
            delay = self._token_delay(first_ms if i == 0 else 0.0)
            self.add(
                delay,
                "response.function_call_arguments.delta",
                item_id=item_id,
                output_index=index,
                delta=piece,
            )
            self.tokens += 1
        self.add(
            0.0,
            "response.function_call_arguments.done",
            item_id=item_id,
            output_index=index,
            name=call.name,
            arguments=args,
        )
        item.update(status="completed", arguments=args)
        self.add(0.0, "response.output_item.done", output_index=index, item=item)
        return item
