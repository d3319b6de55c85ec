"""Every credential shape the redaction table lists, each with a distinct random secret,
through the recording proxy: none of them reaches the trace (raw or decompressed), an
export, or a command's output."""

from __future__ import annotations

import json
import secrets
import string
from pathlib import Path

from websockets.sync.client import connect

from tests.capture.test_record_cli import decompressed
from tests.conftest import run_tracer
from tests.hardening.test_browser_isolation import serving
from tracer.capture.proxy import RecordingProxy
from tracer.capture.recorder import Recorder
from tracer.trace.redact import SECRET_HEADERS
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
