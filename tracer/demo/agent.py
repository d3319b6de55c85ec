"""A demo coding agent that drives a Responses server like a real one does.

It sends ``response.create`` over one WebSocket (or HTTP SSE requests), runs the function
calls it is given with a local, deterministic stand-in for a shell, and continues with
``previous_response_id`` plus the new items only, or, with ``resend_full_history``, resends
everything each turn as naive clients do. A lost cache (``previous_response_not_found``) is
handled as the API asks: resend the full context with no previous id.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tracer.capture.recorder import Recorder
from tracer.capture.tap import tap_websocket
from tracer.errors import TracerError
from tracer.protocols.turns import dict_items
from tracer.responses.model import output_text
from tracer.responses.sse import SSEDecoder
from tracer.trace.records import Direction, Opcode
from tracer.wire.websocket import WebSocket, connect_websocket

__all__ = ["AgentConfig", "AgentError", "AgentRun", "run_agent", "run_tool"]

INSTRUCTIONS = (
    "You are a careful coding agent working in a repository. Inspect before you change, run "
    "one command at a time with exec_command, read its output, and stop when the task is done. "
) * 4

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "exec_command",
        "description": "Run a shell command in the workspace and return its output.",
        "parameters": {
            "type": "object",
            "properties": {
                "cmd": {"type": "string", "description": "The command line to run."},
                "workdir": {"type": "string", "description": "Directory to run it in."},
            },
            "required": ["cmd"],
            "additionalProperties": False,
        },
        "strict": False,
    },
    {
        "type": "function",
        "name": "apply_patch",
        "description": "Apply a unified diff to files in the workspace.",
        "parameters": {
            "type": "object",
            "properties": {"patch": {"type": "string"}},
            "required": ["patch"],
        },
    },
]


class AgentError(TracerError):
    """The demo agent could not run (no server, a refused connection)."""


@dataclass
class AgentConfig:
    """How the demo agent behaves."""

    base_url: str  # http://127.0.0.1:PORT/v1
    transport: str = "websocket"  # or "http"
    resend_full_history: bool = False
    model: str = "tracer-demo-model"
    task: str = "Look around this repository and tell me whether anything needs fixing."
    max_turns: int = 40
    reconnect_after: int | None = None  # close and reopen the socket after this many turns
    warmup: bool = True  # a generate:false create first, as the Codex CLI does
    api_key: str = "sk-demo-0000000000000000000000"  # fake; tracer redacts it anyway
    tool_delay: float = 0.0  # seconds the local "tools" take
    include_reasoning: bool = False  # ask for encrypted reasoning (as the Codex CLI does)
    # From this turn on, the instructions carry the turn's number (as an agent that puts
    # the time into its system prompt): every create's cached prefix ends there.
    stamp_instructions_from: int | None = None


@dataclass
class AgentRun:
    """What happened in one demo run."""

    turns: int = 0  # the turns that asked the model (warm-ups not counted)
    warmups: int = 0  # generate:false creates sent first, to warm the connection's cache
    response_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cache_losses: int = 0
    connections: int = 0
    final_text: str = ""

    @property
    def creates(self) -> int:
        """Every create the agent sent: its turns and its warm-ups."""
        return self.turns + self.warmups


def run_tool(name: str, arguments: str) -> str:
    """A deterministic stand-in for running a tool: output depends only on the call."""
    try:
        args = json.loads(arguments) if arguments else {}
    except ValueError:
        args = {}
    cmd = str(args.get("cmd", args.get("patch", arguments)))
    digest = hashlib.sha256(f"{name}:{cmd}".encode()).hexdigest()
    lines = [f"$ {cmd}"]
    for i in range(8 + int(digest[:2], 16) % 24):
        h = hashlib.sha256(f"{digest}:{i}".encode()).hexdigest()
        lines.append(f"src/module_{h[:4]}.py:{int(h[4:7], 16)}: value_{h[7:12]} = {h[12:40]}")
    lines.append("exit code: 0")
    return "\n".join(lines)


def _ws_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}/responses"


class _Agent:
    def __init__(self, cfg: AgentConfig, recorder: Recorder | None) -> None:
        self.cfg = cfg
        self.recorder = recorder
        self.run = AgentRun()
        self.ws: WebSocket | None = None
        self.history: list[dict[str, Any]] = [{"role": "user", "content": cfg.task}]

    @property
    def headers(self) -> list[tuple[str, str]]:
        return [("Authorization", f"Bearer {self.cfg.api_key}"), ("User-Agent", "tracer-demo")]

    async def connect(self) -> None:
        url = _ws_url(self.cfg.base_url)
        try:
            self.ws = await connect_websocket(url, headers=self.headers)
        except Exception as exc:
            raise AgentError(f"cannot open {url}: {exc}") from None
        self.run.connections += 1
        if self.recorder is not None:
            tap_websocket(self.ws, self.recorder, urlsplit(url).path)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None

    async def exchange(self, body: dict[str, Any]) -> dict[str, Any]:
        """Send one create; return its terminal event (completed/failed/incomplete/error)."""
        if self.cfg.transport == "http":
            return await self._exchange_http(body)
        if self.ws is None:
            await self.connect()
        assert self.ws is not None
        await self.ws.send_text(json.dumps({"type": "response.create", **body}))
        done: list[dict[str, Any]] = []
        while True:
            message = await self.ws.recv_message()
            if message is None:
                self.ws = None
                return {"type": "error", "error": {"code": "connection_closed"}}
            event = json.loads(message[1])
            _collect(event, done)
            if event.get("type") in (
                "response.completed",
                "response.failed",
                "response.incomplete",
                "error",
            ):
                return _with_output(dict(event), done)

    async def _exchange_http(self, body: dict[str, Any]) -> dict[str, Any]:
        parts = urlsplit(self.cfg.base_url)
        host, _, port = parts.netloc.partition(":")
        path = f"{parts.path.rstrip('/')}/responses"
        payload = json.dumps({**body, "stream": True}).encode()
        head = [
            ("Host", parts.netloc),
            ("Content-Type", "application/json"),
            ("Accept", "text/event-stream"),
            *self.headers,
            ("Content-Length", str(len(payload))),
        ]
        try:
            reader, writer = await asyncio.open_connection(host, int(port or 80))
        except OSError as exc:
            raise AgentError(f"cannot connect to {parts.netloc}: {exc.strerror}") from None
        self.run.connections += 1
        conn = None
        request = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head)
        writer.write(request.encode() + b"\r\n" + payload)
        status_line = await reader.readuntil(b"\r\n")
        status = int(status_line.split()[1])
        response_headers = []
        while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            response_headers.append((name.strip(), value.strip()))
        if self.recorder is not None:
            conn = self.recorder.open_connection(
                path,
                request_headers=head,
                response_headers=response_headers,
                status=status,
                transport="http",
            )
            self.recorder.frame(conn, Direction.CLIENT, Opcode.TEXT, payload)
        final: dict[str, Any] = {"type": "error", "error": {"code": "no_terminal_event"}}
        if status != 200:
            data = await reader.read()
            if conn is not None and self.recorder is not None:
                self.recorder.frame(conn, Direction.SERVER, Opcode.TEXT, data)
            error = json.loads(data or b"{}").get("error", {})
            final = {"type": "error", "status": status, "error": error}
        else:
            done: list[dict[str, Any]] = []
            async for data in _sse_events(reader):
                if conn is not None and self.recorder is not None:
                    self.recorder.frame(conn, Direction.SERVER, Opcode.TEXT, data)
                event = json.loads(data)
                _collect(event, done)
                if event.get("type") in ("response.completed", "response.failed", "error"):
                    final = _with_output(event, done)
        writer.close()
        if conn is not None and self.recorder is not None:
            self.recorder.close_connection(conn, by="server")
        return final

    async def turn_body(self, new_items: list[dict[str, Any]], prev: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.cfg.model,
            "instructions": INSTRUCTIONS,
            "tools": TOOLS,
            "store": self.cfg.transport == "http",
        }
        stamp = self.cfg.stamp_instructions_from
        if stamp is not None and self.run.turns >= stamp:
            body["instructions"] = f"{INSTRUCTIONS}\nThis is turn {self.run.turns}."
        if self.cfg.include_reasoning:
            body["include"] = ["reasoning.encrypted_content"]
        if self.cfg.resend_full_history or prev is None:
            body["input"] = list(self.history)
        else:
            body["previous_response_id"] = prev
            body["input"] = new_items
        return body

    async def main(self) -> AgentRun:
        cfg = self.cfg
        prev: str | None = None
        if cfg.warmup and cfg.transport == "websocket" and not cfg.resend_full_history:
            warm = await self.exchange(
                {
                    "model": cfg.model,
                    "instructions": INSTRUCTIONS,
                    "tools": TOOLS,
                    "input": [],
                    "generate": False,
                    "store": False,
                }
            )
            self.run.warmups += 1
            if warm.get("type") == "response.completed":
                prev = warm["response"]["id"]
        new_items = list(self.history)
        retried = False
        while self.run.turns < cfg.max_turns:
            final = await self.exchange(await self.turn_body(new_items, prev))
            if final.get("type") == "error":
                code = (final.get("error") or {}).get("code") or final.get("code")
                self.run.errors.append(str(code))
                if code == "previous_response_not_found":
                    self.run.cache_losses += 1
                    prev = None  # the cache is gone: resend the whole context
                    continue
                if retried:
                    break
                retried = True
                continue
            retried = False
            response = final["response"]
            self.run.turns += 1
            self.run.response_ids.append(response["id"])
            output = dict_items(response.get("output"))
            self.history.extend(output)
            prev = response["id"] if not cfg.resend_full_history else None
            calls = [item for item in output if item.get("type") == "function_call"]
            self.run.final_text = output_text(output) or self.run.final_text
            if final.get("type") != "response.completed" or not calls:
                break
            if cfg.tool_delay:
                await asyncio.sleep(cfg.tool_delay)
            new_items = [
                {
                    "type": "function_call_output",
                    "call_id": call["call_id"],
                    "output": run_tool(call.get("name", ""), call.get("arguments", "")),
                }
                for call in calls
            ]
            self.history.extend(new_items)
            if cfg.reconnect_after and self.run.turns == cfg.reconnect_after:
                await self.close()  # a new socket: the connection-scoped cache is gone
        await self.close()
        return self.run


def _collect(event: dict[str, Any], done: list[dict[str, Any]]) -> None:
    """Keep the output items of ``output_item.done`` events."""
    if event.get("type") == "response.output_item.done" and isinstance(event.get("item"), dict):
        done.append(event["item"])


def _with_output(final: dict[str, Any], done: list[dict[str, Any]]) -> dict[str, Any]:
    """The terminal event, its output filled from the item events when it lists none (the
    Codex backend's ``completed`` carries ``output: []``), as real clients do."""
    response = final.get("response")
    if isinstance(response, dict) and not response.get("output") and done:
        final = {**final, "response": {**response, "output": done}}
    return final


async def _sse_events(reader: asyncio.StreamReader) -> Any:
    """The ``data`` payloads of a server-sent event stream, until EOF."""
    decoder = SSEDecoder()
    while line := await reader.readline():
        for event in decoder.feed(line):
            yield event
    for event in decoder.finish():
        yield event


async def run_agent(cfg: AgentConfig, recorder: Recorder | None = None) -> AgentRun:
    """Run the demo agent to the end of its task; record it when a recorder is given."""
    agent = _Agent(cfg, recorder)
    try:
        return await agent.main()
    finally:
        await agent.close()
