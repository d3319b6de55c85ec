"""Item identity survives every re-serialisation a client applies to what it resends
(docs/analysis.md, "Context"): the classification of a resend never changes."""

from __future__ import annotations

import io
import json
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tracer.analysis import analyse
from tracer.trace import Close, Direction, Frame, Opcode, Open, TraceReader, TraceWriter


def _answer(rng: random.Random, n: int) -> list[dict[str, list[dict[str, Any]]]]:
    """The server's copies of each output item: added, done and completed (they differ for
    reasoning, as the service's encrypted_content does)."""
    items = []
    for i in range(n):
        kind = rng.choice(["message", "function_call", "reasoning"])
        if kind == "message":
            base = {
                "id": f"msg_{i}",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "phase": "final_answer",
                "content": [
                    {
                        "type": "output_text",
                        "text": f"text {i} {rng.random()}",
                        "annotations": [],
                        "logprobs": [],
                    }
                ],
            }
            copies = [base, base, base]
        elif kind == "function_call":
            base = {
                "id": f"fc_{i}",
                "type": "function_call",
                "status": "completed",
                "call_id": f"call_{i}_{rng.random()}",
                "name": "f",
                "arguments": "{}",
            }
            copies = [base, base, base]
        else:
            copies = [
                {
                    "id": f"rs_{i}",
                    "type": "reasoning",
                    "summary": [],
                    "encrypted_content": f"gAAAAAB{rng.getrandbits(64):x}{k}",
                }
                for k in range(3)
            ]
        items.append({"copies": copies})
    return items


REWRITES = [
    "drop_id",
    "drop_status",
    "drop_phase",
    "drop_type",
    "string_content",
    "drop_empty",
    "reorder",
]


def _reserialise(copies: list[dict[str, Any]], which: int, rewrites: set[str]) -> dict[str, Any]:
    item = json.loads(json.dumps(copies[which]))
    if "drop_id" in rewrites:
        item.pop("id", None)
    if "drop_status" in rewrites:
        item.pop("status", None)
    if "drop_phase" in rewrites:
        item.pop("phase", None)
    if item.get("type") == "message":
        if "drop_empty" in rewrites:
            for part in item["content"]:
                part.pop("annotations", None)
                part.pop("logprobs", None)
        if "string_content" in rewrites:
            item["content"] = "".join(p["text"] for p in item["content"])
        if "drop_type" in rewrites:
            item.pop("type")
    if "reorder" in rewrites:
        item = dict(reversed(list(item.items())))
    return item


def _trace(first: list[Any], answer: list[dict[str, Any]], second: list[Any]) -> list:
    buf = io.BytesIO()
    w = TraceWriter(buf, flush_interval=None)
    t = iter(range(1000, 10**9, 1000))
    w.write(Open(conn=1, t_ns=next(t), url="/v1/responses"))

    def send(direction: Direction, obj: dict[str, Any]) -> None:
        w.write(Frame(1, next(t), direction, Opcode.TEXT, json.dumps(obj).encode()))

    send(Direction.CLIENT, {"type": "response.create", "input": first})
    send(Direction.SERVER, {"type": "response.created", "response": {"id": "resp_1"}})
    for i, item in enumerate(answer):
        send(
            Direction.SERVER,
            {"type": "response.output_item.added", "output_index": i, "item": item["copies"][0]},
        )
        send(
            Direction.SERVER,
            {"type": "response.output_item.done", "output_index": i, "item": item["copies"][1]},
        )
    final = {"id": "resp_1", "status": "completed", "output": [i["copies"][2] for i in answer]}
    send(Direction.SERVER, {"type": "response.completed", "response": final})
    send(Direction.CLIENT, {"type": "response.create", "input": second})
    send(
        Direction.SERVER,
        {
            "type": "response.completed",
            "response": {"id": "resp_2", "status": "completed", "output": []},
        },
    )
    w.write(Close(conn=1, t_ns=next(t), code=1000, by="client"))
    w.close()
    return list(TraceReader(io.BytesIO(buf.getvalue())))


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(0, 2**32),
    st.lists(st.sets(st.sampled_from(REWRITES)), min_size=6, max_size=6),
    st.lists(st.integers(0, 2), min_size=6, max_size=6),
)
def test_reserialised_resends_are_classified_as_resent(
    n: int, seed: int, rewrites: list[set[str]], which: list[int]
):
    rng = random.Random(seed)
    user = {"role": "user", "content": f"task {seed}"}
    answer = _answer(rng, n)
    new = {"type": "function_call_output", "call_id": "call_x", "output": "42"}
    exact = [user] + [a["copies"][2] for a in answer] + [new]
    rewritten = (
        [user]
        + [_reserialise(a["copies"], which[i], rewrites[i]) for i, a in enumerate(answer)]
        + [new]
    )
    for second in (exact, rewritten):
        report = analyse(_trace([user], answer, second))
        turn = report.turns[1]
        assert (turn.input_items, turn.resent_items) == (n + 2, n + 1), (second, turn)
        assert turn.resent_reason == "chain"
        assert report.turns[0].output_items == n


def test_a_changed_item_is_new():
    """The control: an item whose content the client changed is not resent."""
    rng = random.Random(1)
    user = {"role": "user", "content": "task"}
    answer = _answer(rng, 1)
    changed = json.loads(json.dumps(answer[0]["copies"][2]))
    changed["changed"] = True
    report = analyse(_trace([user], answer, [user, changed]))
    assert report.turns[1].resent_items == 1  # the user message only
