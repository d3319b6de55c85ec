"""A generated agent session (frames only) for the benchmarks: seeded, realistic sizes.

Each turn the client sends a ``response.create``; the server streams ``created``,
``in_progress``, hundreds of small ``output_text.delta`` events and ``completed``. In the
incremental style the client chains with ``previous_response_id`` and sends only the new tool
output; in the full-resend style it sends instructions, tools and the whole history each turn.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

from tracer.trace import Direction, Frame, Opcode

WORDS = [
    "the",
    "a",
    "function",
    "returns",
    "value",
    "file",
    "path",
    "error",
    "test",
    "module",
    "import",
    "class",
    "self",
    "data",
    "config",
    "request",
    "response",
    "token",
    "cache",
    "stream",
    "event",
    "turn",
    "agent",
    "tool",
    "call",
    "output",
    "input",
    "diff",
    "patch",
    "line",
    "read",
    "write",
    "open",
    "close",
    "socket",
    "server",
    "client",
    "build",
    "run",
    "check",
    "result",
]


def _prose(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def _code(rng: random.Random, n_lines: int) -> str:
    lines = []
    for i in range(n_lines):
        indent = "    " * rng.randint(0, 3)
        lines.append(f"{indent}{rng.choice(WORDS)}_{rng.randint(0, 99)} = {_prose(rng, 5)}  # {i}")
    return "\n".join(lines)


def session_frames(
    *,
    turns: int = 40,
    deltas: int = 300,
    full_resend: bool,
    seed: int = 1,
    gap_ns: int = 20_000_000,
) -> Iterator[Frame]:
    """Yield the frames of one connection; ``t_ns`` advances ``gap_ns`` per server event."""
    rng = random.Random(seed)
    instructions = _prose(rng, 1200)  # about 8 KB
    tools = [
        {
            "type": "function",
            "name": f"tool_{k}",
            "description": _prose(rng, 60),
            "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}},
        }
        for k in range(30)
    ]  # about 18 KB
    history: list[dict] = [{"role": "user", "content": _prose(rng, 80)}]
    t = 0
    jitter = gap_ns // 4  # real gaps vary; exact multiples would flatter the compression
    prev_id = None
    for turn in range(turns):
        body: dict = {"type": "response.create", "model": "gpt-5.1-codex", "tools": tools}
        if full_resend:
            body["instructions"] = instructions
            body["input"] = history
        else:
            if turn == 0:
                body["instructions"] = instructions
            body["previous_response_id"] = prev_id
            body["input"] = history[-1:]
        t += 50_000_000 + rng.randrange(10 * jitter)
        yield Frame(1, t, Direction.CLIENT, Opcode.TEXT, json.dumps(body).encode())
        resp_id = f"resp_{rng.getrandbits(64):016x}"
        for kind in ("response.created", "response.in_progress"):
            t += gap_ns + rng.randrange(jitter)
            ev = {"type": kind, "response": {"id": resp_id, "status": "in_progress"}}
            yield Frame(1, t, Direction.SERVER, Opcode.TEXT, json.dumps(ev).encode())
        text = []
        for seq in range(deltas):
            piece = " " + rng.choice(WORDS)
            text.append(piece)
            t += gap_ns + rng.randrange(jitter)
            ev = {
                "type": "response.output_text.delta",
                "sequence_number": seq + 2,
                "item_id": f"msg_{resp_id[5:]}",
                "output_index": 0,
                "content_index": 0,
                "delta": piece,
            }
            yield Frame(1, t, Direction.SERVER, Opcode.TEXT, json.dumps(ev).encode())
        message = {"type": "message", "role": "assistant", "content": "".join(text)}
        t += gap_ns + rng.randrange(jitter)
        done = {
            "type": "response.completed",
            "response": {
                "id": resp_id,
                "status": "completed",
                "output": [message],
                "usage": {"input_tokens": 1000 * (turn + 1), "output_tokens": deltas},
            },
        }
        yield Frame(1, t, Direction.SERVER, Opcode.TEXT, json.dumps(done).encode())
        history.append(message)
        history.append({"type": "function_call_output", "output": _code(rng, 120)})  # ~6 KB
        prev_id = resp_id
