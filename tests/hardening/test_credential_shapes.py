"""Every credential shape the redaction table lists, each with a distinct random secret,
through the recording proxy: none of them reaches the trace (raw or decompressed), an
export, or a command's output."""

from __future__ import annotations

import json
import secrets
import string
import subprocess
import sys
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
from websockets.sync.client import connect

from tests.capture.test_record_cli import decompressed
from tests.conftest import ROOT, run_tracer
from tests.hardening.test_browser_isolation import serving
from tracer import read_trace
from tracer.capture.proxy import RecordingProxy
from tracer.capture.recorder import Recorder
from tracer.trace.records import Frame
from tracer.trace.redact import SECRET_HEADERS, SECRET_QUERY_KEYS, Redactor, marker
from tracer.upstream.script import Script
from tracer.upstream.server import UpstreamServer

NEW_HEADERS = ["Ocp-Apim-Subscription-Key", "x-portkey-api-key", "cf-aig-authorization",
               "x-codex-api-key", "chatgpt-account-id",
               "xi-api-key", "x-access-token", "private-token", "apikey"]  # fmt: skip
NEW_QUERY_KEYS = ["client_secret", "refresh_token", "subscription-key", "access-token",
                  "auth_token", "jwt"]  # fmt: skip


def _secret() -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(28))


def test_every_credential_shape_is_absent_from_the_trace(tmp_path: Path):
    found: dict[str, str] = {}
    headers = {}
    for name in NEW_HEADERS:
        assert name.lower() in SECRET_HEADERS
        found[name] = headers[name] = _secret()
    for name in NEW_QUERY_KEYS:
        assert name in SECRET_QUERY_KEYS
        found[name] = _secret()
    found["subprotocol key"] = "sk-proj-" + _secret()
    found["subprotocol token"] = _secret()
    found["escaped key"] = "sk-proj-" + _secret()
    found["close reason key"] = "sk-" + _secret()
    found["error key"] = "sk-" + _secret()
    query = "?" + "&".join(f"{name}={found[name]}" for name in NEW_QUERY_KEYS)
    out = tmp_path / "shapes.trace"
    with serving(UpstreamServer()) as upstream:
        recorder = Recorder(out)
        proxy = RecordingProxy(f"ws://127.0.0.1:{upstream.port}", recorder)
        with serving(proxy):
            url = f"ws://127.0.0.1:{proxy.port}/v1/responses{query}"
            offered = [f"openai-insecure-api-key.{found['subprotocol key']}", "realtime",
                       "token", found["subprotocol token"]]  # fmt: skip
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
    # The URL reaches the HTML report, Perfetto and Parquet: none of them holds a value.
    report, perfetto = tmp_path / "r.html", tmp_path / "p.json"
    assert run_tracer("report", str(out), "-o", str(report)).returncode == 0
    assert run_tracer("export", str(out), "-f", "perfetto", "-o", str(perfetto)).returncode == 0
    assert (
        run_tracer("export", str(out), "-f", "parquet", "-o", str(tmp_path / "pq")).returncode == 0
    )
    tables = b"".join(str(pq.read_table(tmp_path / "pq" / t).to_pylist()).encode()
                      for t in ("turns", "connections", "frames"))  # fmt: skip
    for what, value in found.items():
        for blob in (report.read_bytes(), perfetto.read_bytes(), tables):
            assert value.encode() not in blob, what


def test_urls_are_kept_byte_for_byte_but_for_the_redacted_values():
    """No parse and re-encode: %20, a bare ?flag, ; and + stay as sent; only the values
    of credential keys change."""
    r = Redactor()
    kept = "/v1/responses?q=a%20b;c&flag&x=1+2&empty=#frag"
    assert r.url(kept) == kept
    secret = _secret()
    assert r.url(f"/v1?k%65y={secret}") == f"/v1?k%65y={marker(secret)}"  # "key", encoded
    assert r.url(f"/v1/realtime?model=gpt%2Drealtime&key={secret}&flag") == (
        f"/v1/realtime?model=gpt%2Drealtime&key={marker(secret)}&flag"
    )


def test_the_record_banner_and_errors_echo_no_query_credential(tmp_path: Path):
    secret = _secret()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracer", "record", "--upstream",
         f"wss://example.invalid/v1?api_key={secret}", "-o", str(tmp_path / "t.trace"),
         "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    banner = proc.stderr.readline()
    proc.terminate()
    rest = proc.communicate(timeout=30)
    assert "example.invalid/v1?api_key=[REDACTED:" in banner, banner
    assert secret not in banner + rest[0] + rest[1]
    rerun = run_tracer(
        "rerun", str(ROOT / "traces" / "incremental.trace"), "--upstream",
        f"ws://127.0.0.1:9/v1?key={secret}", "-o", str(tmp_path / "r.trace"),
    )  # fmt: skip
    assert rerun.returncode != 0 and secret not in rerun.stdout + rerun.stderr


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
