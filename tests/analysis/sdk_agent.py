"""A small agent loop on the official openai SDK, for the context-model tests.

Run by ``tracer record -- python sdk_agent.py MODE``; the SDK finds the proxy through
``OPENAI_BASE_URL``. It prints one JSON object: per turn what it sent and how many of those
items it had already sent or received (its own count: the tests' ground truth), and what
the SDK saw come back.

Modes:
- ``http-resend``: HTTP SSE, ``store: false``, the whole history every request, assistant
  messages re-serialised as ``{"role": "assistant", "content": "..."}``;
- ``http-stored``: HTTP, not streamed, ``store: true``, chained by ``previous_response_id``;
- ``ws-reconnect``: WebSocket, chained; after two answers a new socket, a create that still
  names the old response (answered ``previous_response_not_found``), then the whole history;
- ``ws-chain``: WebSocket, chained (with ``--include-reasoning``, asks for encrypted
  reasoning); outputs taken from ``output_item.done`` events, as the Codex backend needs;
- ``ws-resend``: WebSocket, the whole history every turn, items re-serialised the way agent
  frameworks do it: reasoning as its ``output_item.done`` copy without ``id``, messages
  without ``type``, ``id``, ``status`` and ``phase``, calls without ``id`` and ``status``;
- ``ws-close``: WebSocket, one create; prints the close code the SDK saw;
- ``mixed``: ``ws-chain``, then ``http-stored``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import openai

TOOLS = [
    {
        "type": "function",
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
]


def reserialise(item: dict[str, Any], done_copy: dict[str, Any] | None) -> dict[str, Any]:
    """An output item as an agent framework puts it back into its history."""
    kind = item.get("type")
    if kind == "message":
        return {"role": "assistant", "content": [
            {"type": "output_text", "text": p["text"]} for p in item["content"]
        ]}  # fmt: skip
    if kind == "function_call":
        return {k: item[k] for k in ("type", "call_id", "name", "arguments")}
    if kind == "reasoning":
        source = done_copy or item
        out = {"type": "reasoning", "summary": source.get("summary", [])}
        if source.get("encrypted_content"):
            out["encrypted_content"] = source["encrypted_content"]
        return out
    return item


def tool_outputs(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"type": "function_call_output", "call_id": o["call_id"], "output": "42"}
        for o in output
        if o.get("type") == "function_call"
    ]


class Agent:
    def __init__(self, mode: str, include_reasoning: bool) -> None:
        self.mode = mode
        self.client = openai.OpenAI(api_key="sk-test-context-model-0000000000", max_retries=0)
        self.history: list[dict[str, Any]] = [{"role": "user", "content": "Find the answer."}]
        self.known = 0  # items of the history the server has already seen
        self.turns: list[dict[str, Any]] = []
        self.blobs: list[str] = []  # every encrypted_content the SDK received
        self.extra = {"include": ["reasoning.encrypted_content"]} if include_reasoning else {}

    def note(self, sent: list[dict[str, Any]], resent: int, response: Any, outputs: int) -> None:
        self.turns.append({
            "sent": len(sent), "resent": resent,
            "response_id": getattr(response, "id", None),
            "status": getattr(response, "status", None), "outputs": outputs,
            "usage": response.usage.model_dump() if getattr(response, "usage", None) else None,
        })  # fmt: skip

    def run(self) -> dict[str, Any]:
        getattr(self, self.mode.replace("-", "_"))()
        return {"turns": self.turns, "blobs": self.blobs}

    def http_resend(self) -> None:
        while True:
            sent = list(self.history)
            stream = self.client.responses.create(
                model="m", input=sent, tools=TOOLS, stream=True, store=False
            )
            done = next(e.response for e in stream if e.type == "response.completed")
            output = [o.model_dump(exclude_none=True) for o in done.output]
            self.note(sent, self.known, done, len(output))
            for o in output:
                if o["type"] == "message":  # a plain-string message, as many frameworks do
                    text = "".join(p["text"] for p in o["content"])
                    self.history.append({"role": "assistant", "content": text})
                else:
                    self.history.append(reserialise(o, None))
            calls = tool_outputs(output)
            self.history += calls
            self.known = len(self.history) - len(calls)
            if not calls:
                return

    def http_stored(self) -> None:
        items: list[dict[str, Any]] = list(self.history)
        prev = None
        while True:
            response = self.client.responses.create(
                model="m", input=items, tools=TOOLS, store=True, previous_response_id=prev
            )
            output = [o.model_dump(exclude_none=True) for o in response.output]
            self.note(items, 0, response, len(output))
            items, prev = tool_outputs(output), response.id
            if not items:
                return

    def _ws_turn(self, conn: Any, body: dict[str, Any]) -> tuple[Any, list[dict[str, Any]], dict]:
        """One create on a socket: (terminal event, output items from item events, the
        ``output_item.done`` copies by item id)."""
        conn.response.create(model="m", tools=TOOLS, **self.extra, **body)
        done: list[dict[str, Any]] = []
        for event in conn:
            if event.type == "response.output_item.done":
                done.append(event.item.model_dump(exclude_none=True))
                if done[-1].get("encrypted_content"):
                    self.blobs.append(done[-1]["encrypted_content"])
            if event.type in ("response.completed", "error"):
                return event, done, {d["id"]: d for d in done if "id" in d}
        raise SystemExit("the connection ended mid-turn")

    def ws_chain(self, reconnect_after: int | None = None) -> None:
        items: list[dict[str, Any]] = list(self.history)
        prev = None
        conn_cm = self.client.responses.connect()
        conn = conn_cm.__enter__()
        try:
            while True:
                body = {"input": items, "store": False}
                if prev:
                    body["previous_response_id"] = prev
                event, done, _ = self._ws_turn(conn, body)
                if event.type == "error":
                    self.turns.append({"sent": len(items), "resent": 0, "error": event.error.code})
                    # The cache is gone: resend everything, with no previous response.
                    # Every item was sent before (the tool results in the refused create).
                    items, prev = list(self.history), None
                    resent = len(self.history)
                    body = {"input": items, "store": False}
                    event, done, _ = self._ws_turn(conn, body)
                    self._ws_note(items, resent, event.response, done)
                else:
                    self._ws_note(items, 0, event.response, done)
                output = [o.model_dump(exclude_none=True) for o in event.response.output] or done
                self.history += output
                pending = tool_outputs(output)
                self.history += pending
                items, prev = pending, event.response.id
                if not items:
                    return
                if reconnect_after and len(self.turns) == reconnect_after:
                    conn_cm.__exit__(None, None, None)
                    conn_cm = self.client.responses.connect()
                    conn = conn_cm.__enter__()
        finally:
            conn_cm.__exit__(None, None, None)

    def _ws_note(self, sent: list, resent: int, response: Any, done: list) -> None:
        outputs = len(response.output) or len(done)
        self.note(sent, resent, response, outputs)

    def ws_reconnect(self) -> None:
        self.ws_chain(reconnect_after=2)

    def ws_resend(self) -> None:
        with self.client.responses.connect() as conn:
            while True:
                sent = list(self.history)
                event, done, copies = self._ws_turn(conn, {"input": sent, "store": False})
                output = [o.model_dump(exclude_none=True) for o in event.response.output] or done
                self._ws_note(sent, self.known, event.response, done)
                self.history += [reserialise(o, copies.get(o.get("id"))) for o in output]
                calls = tool_outputs(output)
                self.history += calls
                self.known = len(self.history) - len(calls)
                if not calls:
                    return

    def mixed(self) -> None:
        """A WebSocket session, then an HTTP one, in one run."""
        self.ws_chain()
        self.history = [{"role": "user", "content": "Find the answer."}]
        self.http_stored()

    def ws_close(self) -> None:
        with self.client.responses.connect() as conn:
            conn.response.create(model="m", input=self.history, tools=TOOLS, store=False)
            try:
                for _ in conn:
                    pass
            except Exception as exc:  # the SDK raises on an abnormal close
                self.turns.append({"error": type(exc).__name__, "detail": str(exc)})
            code = getattr(getattr(conn, "_connection", None), "close_code", None)
            self.turns.append({"close_code": code})


if __name__ == "__main__":
    mode = sys.argv[1]
    agent = Agent(mode, include_reasoning="--include-reasoning" in sys.argv)
    # One write, not print's several: copies run side by side on one stdout pipe.
    os.write(1, (json.dumps(agent.run()) + "\n").encode())
