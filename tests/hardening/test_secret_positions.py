"""A distinct random secret for every key shape in every position (issue #26): after each
JSON escape, after a separator, at the start, split across deltas at every offset, and
interleaved with audio deltas; sent by a client and streamed by the scripted upstream,
recorded through ``tracer record``. None of them may reach the trace, an export, a command's
output, or a trace that ``tracer import`` makes of an unredacted HAR of the same session.

Ground truth is the secrets the test itself made; nothing is asked of tracer but its files.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import string
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import websockets
import websockets.asyncio.server  # imported here, not first in the server's thread
from websockets.sync.client import connect

from tests.capture.test_record_cli import decompressed
from tests.conftest import run_tracer
from tests.hardening.helpers import free_port, wait_for_port
from tracer.upstream import Call, Script, TurnScript, running_upstream

ALNUM = string.ascii_letters + string.digits


def _body(n: int = 32) -> str:
    return "".join(secrets.choice(ALNUM) for _ in range(n))


# Every key shape of the redaction table, each a function making a new secret of it.
SHAPES = {
    "openai": lambda: "sk-" + _body(),
    "openai project": lambda: "sk-proj-" + _body(40),
    "anthropic": lambda: "sk-ant-" + _body(40),
    "stripe": lambda: "sk_live_" + _body(),
    "stripe restricted": lambda: "rk_live_" + _body(),
    "aws": lambda: "AKIA" + "".join(secrets.choice(string.ascii_uppercase) for _ in range(16)),
    "google": lambda: "AIza" + _body(35),
    "google oauth": lambda: "ya29." + _body(40),
    "github": lambda: "ghp_" + _body(36),
    "github fine-grained": lambda: "github_pat_" + _body(22) + "_" + _body(59),
    "slack": lambda: "xoxb-" + _body(24),
    "hugging face": lambda: "hf_" + _body(34),
    "realtime ephemeral": lambda: "ek_" + _body(),
    "openai session": lambda: "sess-" + _body(40),
    "groq": lambda: "gsk_" + _body(52),
    "xai": lambda: "xai-" + _body(80),
    "perplexity": lambda: "pplx-" + _body(48),
    "replicate": lambda: "r8_" + _body(37),
    "jwt": lambda: "eyJ" + _body(20) + ".eyJ" + _body(30) + "." + _body(43),
}
# What stands before the key, in the decoded text: each JSON escape, separators, the start.
# The start of a JSON string is the client's "start" items, and the split calls' pad 0.
BEFORE = ["\n", "\t", "\r\n", "<", "/", "+", "-", '"', " ", "="]


def _table() -> dict[str, str]:
    """name -> secret, one per shape and position."""
    return {f"{shape} after {before!r}": make() for shape, make in SHAPES.items()
            for before in BEFORE}  # fmt: skip


def _text(table: dict[str, str]) -> str:
    """Text holding each secret after its position's character ("<" is escaped by
    ``_escape_lt`` where the JSON is written by hand)."""
    parts = []
    for name, secret in table.items():
        before = eval(name.rsplit(" after ", 1)[1])  # the repr written by _table
        parts.append(f"note{before}{secret} end")
    return " | ".join(parts)


def _needles(secret: str) -> list[bytes]:
    """What must not appear: the secret, its start and its end (a split key's remainder)."""
    data = secret.encode()
    return [data, data[:14], data[-12:]]


def _leaks(blob: bytes, table: dict[str, str]) -> list[str]:
    return [name for name, secret in table.items() if any(n in blob for n in _needles(secret))]


@pytest.fixture
def tables() -> dict[str, dict[str, str]]:
    start = {f"{shape} at the start": make() for shape, make in SHAPES.items()}
    return {"client": _table(), "start": start, "model": _table(), "split": {}, "audio": {}}


def _escape_lt(text: str) -> str:
    """JSON of ``text`` as some clients write it: ``<`` as ``\\u003c``."""
    return json.dumps(text).replace("<", "\\u003c")


def _split_calls(table: dict[str, str]) -> tuple[Call, ...]:
    """Function calls whose arguments hold a key at every offset: the upstream streams
    arguments 8 characters a delta, so a pad of 0-7 puts the cut at each place in it."""
    calls = []
    for shape in ("openai project", "github", "jwt"):
        for pad in range(8):
            secret = table[f"{shape} split at {pad}"] = SHAPES[shape]()
            calls.append(Call("lookup", json.dumps({"q": " " * pad + secret})))
    return tuple(calls)


class AudioUpstream:
    """A Realtime-shaped WebSocket server: on each client message it streams a transcript
    holding a key, cut at one offset, with an audio delta between the two pieces."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _handler(self, ws: websockets.ServerConnection) -> None:
        async for _ in ws:
            for k, key in enumerate(self.keys):
                cut = 1 + k % (len(key) - 1)
                item = {"item_id": f"item_{k}", "content_index": 0, "output_index": 0}
                for piece in (key[:cut], None, key[cut:] + " said"):
                    if piece is None:
                        audio = base64.b64encode(os.urandom(600)).decode()
                        event = {"type": "response.output_audio.delta", **item, "delta": audio}
                    else:
                        event = {"type": "response.output_audio_transcript.delta", **item,
                                 "delta": piece}  # fmt: skip
                    await ws.send(json.dumps(event))
            await ws.send(json.dumps({"type": "response.done", "response": {"id": "r"}}))

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            async with websockets.serve(self._handler, "127.0.0.1", self.port):
                self._ready.set()
                await self._stop.wait()

        self._loop.run_until_complete(main())
        self._loop.close()

    def __enter__(self) -> AudioUpstream:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def _recording(upstream_url: str, out: Path, *extra: str) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracer", "record", "--upstream", upstream_url, "-o", str(out),
         "--listen", f"127.0.0.1:{port}", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


TOOLS = json.dumps([{"type": "function", "name": "lookup", "parameters": {"type": "object"}}])


def _session(port: int, table: dict[str, str], start: dict[str, str]) -> None:
    """Two creates: the text as JSON writes it, and with ``<`` written as ``\\u003c``;
    each also has an item per ``start`` secret, the whole of its text."""
    alone = [{"role": "user", "content": secret} for secret in start.values()]
    with connect(f"ws://127.0.0.1:{port}/v1/responses", close_timeout=2) as ws:
        for encode in (json.dumps, _escape_lt):
            items = ", ".join([encode(_text(table)), *map(json.dumps, alone)])
            ws.send(
                '{"type": "response.create", "model": "m", "tools": '
                + TOOLS
                + ', "input": ['
                + items
                + "]}"
            )
            while json.loads(ws.recv(timeout=30))["type"] not in ("response.completed", "error"):
                pass


def _audio_session(port: int) -> None:
    with connect(f"ws://127.0.0.1:{port}/v1/realtime", close_timeout=2) as ws:
        ws.send(json.dumps({"type": "response.create"}))
        while json.loads(ws.recv(timeout=30))["type"] != "response.done":
            pass


def _record_all(tmp_path: Path, tables: dict[str, dict[str, str]], name: str, *extra: str):
    script = Script(turns=(
        TurnScript(text=_text(tables["model"]), calls=_split_calls(tables["split"])),
        TurnScript(text="done"),
    ))  # fmt: skip
    keys = [SHAPES[shape]() for shape in ("openai project", "realtime ephemeral", "jwt")
            for _ in range(12)]  # fmt: skip
    tables["audio"].update({f"audio {i}": k for i, k in enumerate(keys)})
    ws_trace, audio_trace = tmp_path / f"{name}.trace", tmp_path / f"{name}-audio.trace"
    with running_upstream(script) as upstream:
        for port in _recording(f"ws://127.0.0.1:{upstream.port}", ws_trace, *extra):
            _session(port, tables["client"], tables["start"])
    with AudioUpstream(keys) as audio:
        for port in _recording(f"ws://127.0.0.1:{audio.port}", audio_trace, *extra):
            _audio_session(port)
    return ws_trace, audio_trace


def _everything(trace: Path, out: Path) -> dict[str, bytes]:
    """The decompressed trace, every export and every command's output."""
    seen = {"trace": decompressed(trace)}
    for fmt in ("jsonl", "har", "perfetto", "otlp"):
        dest = out / f"e.{fmt}"
        proc = run_tracer("export", str(trace), "-f", fmt, "-o", str(dest), "--payload")
        assert proc.returncode == 0, proc.stderr
        seen[fmt] = dest.read_bytes()
    proc = run_tracer("export", str(trace), "-f", "parquet", "-o", str(out / "pq"), "--payload")
    assert proc.returncode == 0, proc.stderr
    frames = pq.read_table(out / "pq" / "frames").to_pylist()
    seen["parquet"] = b"\n".join(row["payload"] for row in frames)
    assert len(frames) > 10
    for args in (["frames", "--json", "--payload"], ["frames"], ["inspect", "--json"],
                 ["turn", "0", "--json", "--all"], ["turn", "0"]):  # fmt: skip
        proc = run_tracer(*args[:1], str(trace), *args[1:])
        seen[" ".join(args)] = (proc.stdout + proc.stderr).encode()
    return seen


def _check(trace: Path, out: Path, tables: dict[str, dict[str, str]], which: list[str]):
    out.mkdir()
    everything = _everything(trace, out)
    for kind in which:
        for where, blob in everything.items():
            assert _leaks(blob, tables[kind]) == [], f"{kind} secrets in {where}"


def test_every_shape_in_every_position_is_kept_out(tmp_path: Path, tables):
    ws_trace, audio_trace = _record_all(tmp_path, tables, "redacted")
    assert len(tables["split"]) == 24 and len(tables["client"]) == len(SHAPES) * len(BEFORE)
    _check(ws_trace, tmp_path / "ws", tables, ["client", "start", "model", "split"])
    _check(audio_trace, tmp_path / "audio", tables, ["audio"])


def test_the_same_secrets_through_tracer_import(tmp_path: Path, tables):
    """An unredacted recording of the same sessions, exported to HAR (every secret in it),
    then imported: the imported trace holds none of them."""
    ws_trace, audio_trace = _record_all(tmp_path, tables, "plain", "--no-redact")
    kinds_of = ((ws_trace, ["client", "start", "model", "split"]), (audio_trace, ["audio"]))
    for trace, kinds in kinds_of:
        har = trace.with_suffix(".har")
        proc = run_tracer("export", str(trace), "-f", "har", "-o", str(har))
        assert proc.returncode == 0, proc.stderr
        raw = har.read_bytes()
        for kind in kinds:  # the HAR has them all (as JSON text)
            assert len(_leaks(raw, tables[kind])) == len(tables[kind]), kind
        imported = trace.with_name(trace.stem + "-imported.trace")
        proc = run_tracer("import", str(har), "-o", str(imported))
        assert proc.returncode == 0, proc.stderr
        _check(imported, tmp_path / f"{trace.stem}-out", tables, kinds)
