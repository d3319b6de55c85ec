"""Every credential shape the redaction table lists, each with a distinct random secret,
through the recording proxy: none of them reaches the trace (raw or decompressed), an
export, or a command's output."""

from __future__ import annotations

import json
import secrets
import string
import urllib.request
from pathlib import Path

from websockets.sync.client import connect

from tests.capture.test_record_cli import decompressed
from tests.conftest import run_tracer
from tests.hardening.test_browser_isolation import serving
from tracer import read_trace
from tracer.capture.proxy import RecordingProxy
from tracer.capture.recorder import Recorder
from tracer.trace.records import Frame
from tracer.trace.redact import SECRET_HEADERS, marker
from tracer.upstream.script import Script
from tracer.upstream.server import UpstreamServer

NEW_HEADERS = ["Ocp-Apim-Subscription-Key", "x-portkey-api-key", "cf-aig-authorization",
               "x-codex-api-key", "chatgpt-account-id"]  # fmt: skip


def _secret() -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(28))


def test_every_credential_shape_is_absent_from_the_trace(tmp_path: Path):
    found: dict[str, str] = {}
    headers = {}
    for name in NEW_HEADERS:
        assert name.lower() in SECRET_HEADERS
        found[name] = headers[name] = _secret()
    found["client_secret"], found["refresh_token"] = _secret(), _secret()
    found["subprotocol key"] = "sk-proj-" + _secret()
    found["escaped key"] = "sk-proj-" + _secret()
    found["close reason key"] = "sk-" + _secret()
    found["error key"] = "sk-" + _secret()
    query = f"?client_secret={found['client_secret']}&refresh_token={found['refresh_token']}"
    out = tmp_path / "shapes.trace"
    with serving(UpstreamServer()) as upstream:
        recorder = Recorder(out)
        proxy = RecordingProxy(f"ws://127.0.0.1:{upstream.port}", recorder)
        with serving(proxy):
            url = f"ws://127.0.0.1:{proxy.port}/v1/responses{query}"
            offered = [f"openai-insecure-api-key.{found['subprotocol key']}", "realtime"]
            with connect(url, additional_headers=headers, subprotocols=offered) as ws:
                escaped = found["escaped key"].replace("-", "\\u002d")  # JSON escapes
                ws.send('{"type": "response.create", "input": "my key: ' + escaped + '"}')
                while json.loads(ws.recv(timeout=10))["type"] != "response.completed":
                    pass
                ws.send('{"type": "nonsense", "note": "' + found["error key"] + '"}')
                ws.recv(timeout=10)
                ws.close(1000, f"bye {found['close reason key']}")
        recorder.close()
    raw = out.read_bytes() + decompressed(out)
    for what, value in found.items():
        assert value.encode() not in raw, what
        assert value[-20:].encode() not in raw, what  # nor its tail (a key's prefix kept)
    for args in (["inspect", "--json"], ["frames", "--json", "--payload"], ["verify", "--json"]):
        proc = run_tracer(args[0], str(out), *args[1:])
        assert proc.returncode == 0, proc.stderr
        for what, value in found.items():
            assert value not in proc.stdout, (args, what)


TOOLS = json.dumps([{"type": "function", "name": "exec_command", "parameters": {}}])


def _split_key_script(key: str) -> Script:
    """A script whose function call streams ``key`` over several 8-byte argument deltas."""
    call = {"name": "exec_command", "arguments": {"cmd": f"export OPENAI_API_KEY={key}; run"}}
    return Script.from_dict({"turns": [{"text": "Setting the key.", "calls": [call]}]})


def test_keys_split_across_fragments_and_deltas_are_redacted(tmp_path: Path):
    """A key the client sends in WebSocket fragments, and keys the upstream streams in runs
    of argument deltas (over WebSocket and over HTTP SSE): none reaches the trace, and the
    deltas still join to the same text with a marker where the key was."""
    sent, streamed = "sk-proj-" + _secret(), "sk-proj-" + _secret()
    out = tmp_path / "split.trace"
    with serving(UpstreamServer(_split_key_script(streamed))) as upstream:
        recorder = Recorder(out)
        proxy = RecordingProxy(f"ws://127.0.0.1:{upstream.port}", recorder)
        with serving(proxy):
            with connect(f"ws://127.0.0.1:{proxy.port}/v1/responses") as ws:
                message = (
                    '{"type": "response.create", "tools": ' + TOOLS + ', "input": "my key is '
                    + sent + '"}'
                )  # fmt: skip
                cut = message.index(sent) + 11
                ws.send([message[:cut], message[cut:]])  # two fragments, the key in both
                seen = []
                while (event := json.loads(ws.recv(timeout=10)))["type"] != "response.completed":
                    seen.append(event)
            assert sum(e["type"].endswith("arguments.delta") for e in seen) > 5
            request = urllib.request.Request(
                f"http://127.0.0.1:{proxy.port}/v1/responses",
                data=json.dumps(
                    {"input": "again", "stream": True, "tools": json.loads(TOOLS)}
                ).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                body = answer.read()
            assert streamed[-12:].encode() in body  # the client got the real key
        recorder.close()
    raw = out.read_bytes() + decompressed(out)
    for value in (sent, streamed):
        for part in (value, value[:12], value[-12:]):
            assert part.encode() not in raw, part
    client = [f for f in read_trace(out) if isinstance(f, Frame) and f.direction == 0]
    ends = [f.fin for f in client].index(True)
    assert ends >= 1  # still fragments, and they join to the message with a marker
    first = json.loads(b"".join(f.payload for f in client[: ends + 1]))
    assert first["input"] == f"my key is {marker(sent)}"
    for conn in {f.conn for f in read_trace(out) if isinstance(f, Frame)}:
        deltas = [
            json.loads(f.payload)["delta"]
            for f in read_trace(out)
            if isinstance(f, Frame) and f.conn == conn and b"arguments.delta" in f.payload
        ]
        if deltas:
            joined = json.loads("".join(deltas))["cmd"]
            assert joined == f"export OPENAI_API_KEY={marker(streamed)}; run"
