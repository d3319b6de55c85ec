"""Local servers serve local agents, not web pages: every server of tracer (the recording
proxy, replay, the scripted upstream) refuses a foreign Origin or Host with a 403, and a
page in a real browser cannot read a replayed session."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.conftest import ROOT, assert_clean_error, run_tracer
from tracer.capture.proxy import RecordingProxy
from tracer.capture.recorder import Recorder
from tracer.replay.recorded import load_connections
from tracer.replay.server import ReplayServer
from tracer.trace import open_trace
from tracer.upstream.server import UpstreamServer
from tracer.wire.service import TCPService

SAMPLE = ROOT / "traces" / "incremental.trace"


@contextlib.contextmanager
def serving(server: TCPService) -> Iterator[TCPService]:
    """Run a tracer server on 127.0.0.1 in a thread of its own."""
    loop = asyncio.new_event_loop()
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def _replay(**options) -> ReplayServer:
    with open_trace(SAMPLE) as reader:
        return ReplayServer(load_connections(reader), speed=0, **options)


def each_server(tmp_path: Path, **options) -> Iterator[tuple[str, TCPService]]:
    """The three servers in turn, each running while the caller tests it."""
    with serving(UpstreamServer(**options)) as upstream:
        yield "upstream", upstream
        recorder = Recorder(tmp_path / "p.trace")
        proxy = RecordingProxy(f"ws://127.0.0.1:{upstream.port}", recorder, **options)
        with serving(proxy):
            yield "proxy", proxy
        recorder.close()
    with serving(_replay(**options)) as replay:
        yield "replay", replay


def raw_request(port: int, request: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode())
        return sock.recv(65536).decode("latin-1")


def test_a_foreign_origin_is_refused_by_every_server(tmp_path: Path):
    for name, server in each_server(tmp_path):
        url = f"ws://127.0.0.1:{server.port}/v1/responses"
        with pytest.raises(InvalidStatus) as info:
            connect(url, origin="http://evil.example", open_timeout=10)
        assert info.value.response.status_code == 403, name
        assert b"Origin" in info.value.response.body, name
        # The same request without an Origin, as agents send it, is served.
        with connect(url, open_timeout=10) as ws:
            assert ws.protocol.state.name == "OPEN", name


def test_a_foreign_host_is_refused_by_every_server(tmp_path: Path):
    """DNS rebinding: a page's host name mapped to 127.0.0.1 arrives as its Host."""
    upgrade = (
        "GET /v1/responses HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    )
    for name, server in each_server(tmp_path):
        refused = raw_request(server.port, upgrade.format(host=f"rebound.example:{server.port}"))
        assert refused.startswith("HTTP/1.1 403"), (name, refused[:80])
        served = raw_request(server.port, upgrade.format(host=f"localhost:{server.port}"))
        assert served.startswith("HTTP/1.1 101"), (name, served[:80])


def test_http_requests_with_an_origin_are_refused_too(tmp_path: Path):
    body = json.dumps({"model": "m", "input": "hi"})
    post = (
        "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "{origin}Content-Length: {n}\r\nConnection: close\r\n\r\n{body}"
    )
    for name, server in each_server(tmp_path):
        if name == "replay":
            continue  # replay serves WebSocket connections only
        refused = raw_request(
            server.port,
            post.format(origin="Origin: http://evil.example\r\n", n=len(body), body=body),
        )
        assert refused.startswith("HTTP/1.1 403"), (name, refused[:80])
        served = raw_request(server.port, post.format(origin="", n=len(body), body=body))
        assert served.startswith("HTTP/1.1 200"), (name, served[:80])


def test_an_allowed_origin_is_served(tmp_path: Path):
    for name, server in each_server(tmp_path, allow_origins=["http://my-tool.example"]):
        url = f"ws://127.0.0.1:{server.port}/v1/responses"
        with connect(url, origin="http://my-tool.example", open_timeout=10) as ws:
            assert ws.protocol.state.name == "OPEN", name


def test_replay_can_require_a_token(tmp_path: Path):
    with serving(_replay(token="s3cret-token")) as replay:
        url = f"ws://127.0.0.1:{replay.port}/v1/responses"
        with pytest.raises(InvalidStatus) as info:
            connect(url, open_timeout=10)
        assert info.value.response.status_code == 403
        with pytest.raises(InvalidStatus):
            connect(url, additional_headers={"Authorization": "Bearer wrong"}, open_timeout=10)
        with connect(url, additional_headers={"Authorization": "Bearer s3cret-token"}):
            pass
        with connect(url, additional_headers={"x-tracer-token": "s3cret-token"}):
            pass
        with connect(f"ws://127.0.0.1:{replay.port}/t/s3cret-token/v1/responses"):
            pass


def test_the_proxy_refuses_a_target_that_is_not_a_path(tmp_path: Path):
    """'GET @127.0.0.1:OTHER/...' appended to --upstream would reach another host."""
    with serving(UpstreamServer()) as upstream:
        recorder = Recorder(tmp_path / "p.trace")
        proxy = RecordingProxy(f"http://127.0.0.1:{upstream.port}", recorder)
        with serving(proxy):
            answer = raw_request(
                proxy.port,
                f"GET @127.0.0.1:{upstream.port}/v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            )
        recorder.close()
    assert answer.startswith("HTTP/1.1 403"), answer[:80]


def test_the_proxy_does_not_forward_a_browsers_or_a_proxys_headers(tmp_path: Path):
    seen: list[dict[str, str]] = []
    upstream = UpstreamServer(on_connect=lambda ws, head: seen.append(dict(head.headers)))
    headers = {"Cookie": "session=abc", "Proxy-Authorization": "Basic dXNlcjpwdw==",
               "X-Agent": "kept"}  # fmt: skip
    with serving(upstream):
        for keep in ([], ["cookie"]):
            recorder = Recorder(tmp_path / "p.trace")
            proxy = RecordingProxy(
                f"ws://127.0.0.1:{upstream.port}", recorder, allow_origins=["http://ok.example"],
                keep_headers=keep,
            )  # fmt: skip
            with serving(proxy):
                url = f"ws://127.0.0.1:{proxy.port}/v1/responses"
                with connect(url, origin="http://ok.example", additional_headers=headers):
                    pass
            recorder.close()
    lowered = [{k.lower(): v for k, v in h.items()} for h in seen]
    assert [("cookie" in h, "origin" in h, "proxy-authorization" in h) for h in lowered] == [
        (False, False, False),
        (True, False, False),
    ]
    assert all(h["x-agent"] == "kept" for h in lowered)


def test_credentials_in_upstream_are_refused_without_echoing_them(tmp_path: Path):
    proc = run_tracer("record", "--upstream", "https://user:hunter2@api.example", "-o",
                      str(tmp_path / "t.trace"))  # fmt: skip
    assert_clean_error(proc)
    assert "hunter2" not in proc.stderr and "credentials" in proc.stderr


PAGE = """<!doctype html><title>a web page</title><script>
window.attempt = (url) => new Promise((done) => {
  const got = []; let opened = false; let ws;
  try { ws = new WebSocket(url); } catch (e) { done({url, opened, got, error: String(e)}); return; }
  ws.onopen = () => { opened = true;
    ws.send(JSON.stringify({type: "response.create", input: "give me the session"})); };
  ws.onmessage = (e) => got.push(String(e.data));
  ws.onclose = () => done({url, opened, got});
  setTimeout(() => { try { ws.close(); } catch (e) {} done({url, opened, got}); }, 4000);
});
</script>"""


def test_a_web_page_in_chromium_cannot_read_a_replay(tmp_path: Path):
    """A page served from another origin, and the same page under a host name mapped to
    127.0.0.1 (DNS rebinding), try to read the replay: neither opens a socket. The control:
    an origin the replay is told to allow does open one, so the page could have."""
    from tests.report.cdp import Browser

    (tmp_path / "page.html").write_text(PAGE)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args):
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    page_port = site.server_address[1]
    browser = Browser(tmp_path / "profile", ("--host-resolver-rules=MAP rebound.test 127.0.0.1",))
    try:
        for allowed, expect_open in (([], False), ([f"http://rebound.test:{page_port}"], True)):
            with serving(_replay(allow_origins=allowed)) as replay:
                browser.events.clear()
                browser.open(f"http://rebound.test:{page_port}/page.html")
                targets = [f"ws://127.0.0.1:{replay.port}/v1/responses"]
                if not expect_open:
                    targets.append(f"ws://rebound.test:{replay.port}/v1/responses")
                for target in targets:
                    result = browser.call(
                        "Runtime.evaluate",
                        expression=f"attempt({json.dumps(target)})",
                        awaitPromise=True,
                        returnByValue=True,
                    )["result"]["value"]
                    assert result["opened"] is expect_open, result
                    if not expect_open:
                        assert result["got"] == [], result
    finally:
        browser.close()
        site.shutdown()
