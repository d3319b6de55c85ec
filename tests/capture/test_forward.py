"""``tracer record --forward`` with real clients that keep their default endpoint.

No internet: the "real host" api.openai.com is a local TLS ``tracer upstream`` with a
certificate of its own (trustme's CA, not tracer's), reached through ``--connect-to`` and
trusted through ``--upstream-ca``: the documented test hook. Ground truth comes from the
clients (their own frames, bodies and ids) and from the upstream (its tap and its log).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import trustme

from tests.capture.test_record_cli import FAKE_KEY, SDK_CLIENT, decompressed, frames_by_direction
from tests.conftest import assert_clean_error, run_tracer
from tracer.capture.recorder import Recorder
from tracer.capture.tap import tap_websocket
from tracer.trace import Direction, Frame, Open, open_trace
from tracer.upstream import Call, Script, TurnScript, running_upstream
from tracer.upstream.server import UpstreamServer

SCRIPT = Script(
    turns=(
        TurnScript(text="Looking it up.", calls=(Call("lookup", '{"q":"a"}'),)),
        TurnScript(text="Once more.", calls=(Call("lookup", '{"q":"b"}'),)),
        TurnScript(text="The answer is 42."),
    )
)


@dataclass
class Hosts:
    """The stand-in for api.openai.com, and another host that is not intercepted."""

    ca_file: Path  # the stand-ins' own CA (trustme), which tracer's CA is not
    api: UpstreamServer  # answering as api.openai.com
    other: UpstreamServer  # answering as other.test

    def options(self) -> list[str]:
        return [
            "--forward",
            "--connect-to", f"api.openai.com:443:127.0.0.1:{self.api.port}",
            "--connect-to", f"other.test:443:127.0.0.1:{self.other.port}",
            "--upstream-ca", str(self.ca_file),
        ]  # fmt: skip


def _context(ca: trustme.CA, name: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(name).configure_cert(ctx)
    return ctx


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Hosts]:
    ca = trustme.CA()
    ca_file = tmp_path / "hosts-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    api_tls, other_tls = _context(ca, "api.openai.com"), _context(ca, "other.test")
    with (
        running_upstream(SCRIPT, tls=api_tls, names=["api.openai.com"]) as api,
        running_upstream(SCRIPT, tls=other_tls, names=["other.test"]) as other,
    ):
        yield Hosts(ca_file, api, other)


def _no_base_urls() -> dict[str, str]:
    """The parent's environment without endpoint variables: clients use their defaults."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("OPENAI_BASE_URL", "OPENAI_WEBSOCKET_BASE_URL", "OPENAI_API_BASE")
    }


def _run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``tracer ARGS`` in a subprocess, from an environment with no endpoint variables."""
    env = {**_no_base_urls(), "COLUMNS": "120", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tracer", *args],
        capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


CA_PROBE = textwrap.dedent(
    """
    import os, pathlib, stat
    _ca = pathlib.Path(os.environ["SSL_CERT_FILE"]).parent
    pathlib.Path(sys.argv[3]).write_text(json.dumps({
        "dir": str(_ca), "mode": stat.S_IMODE(_ca.stat().st_mode),
        "files": sorted(p.name for p in _ca.iterdir())}))
    """
)


def test_openai_sdk_websocket_with_its_default_url_is_recorded_byte_exact(
    tmp_path: Path, hosts: Hosts
):
    server_view = Recorder(tmp_path / "server.trace")
    hosts.api.on_connect = lambda ws, head: tap_websocket(
        ws, server_view, head.target, client_side=False
    )
    client = tmp_path / "client.py"
    client.write_text(SDK_CLIENT.replace("key = sys.argv[2]\n", "key = sys.argv[2]\n" + CA_PROBE))
    probe = tmp_path / "probe.json"
    proc = _run(
        "record", *hosts.options(), "-o", str(tmp_path / "proxy.trace"), "--",
        sys.executable, str(client), str(tmp_path / "client.trace"), FAKE_KEY, str(probe),
    )  # fmt: skip
    server_view.close()
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == {"turns": 3}

    proxy = frames_by_direction(tmp_path / "proxy.trace")
    assert len(proxy[Direction.CLIENT]) == 3 and len(proxy[Direction.SERVER]) > 40
    # Byte for byte, in order, as the client and the upstream saw them.
    assert proxy == frames_by_direction(tmp_path / "client.trace")
    assert proxy == frames_by_direction(tmp_path / "server.trace")
    log = list(hosts.api.engine.log)
    assert [e["transport"] for e in log] == ["websocket"] * 3
    assert [e["previous_response_id"] for e in log[1:]] == [e["response_id"] for e in log[:2]]
    with open_trace(tmp_path / "proxy.trace") as reader:
        (op,) = [r for r in reader if type(r) is Open]
    headers = {k.lower(): v for k, v in op.request_headers}
    assert headers["host"] == "api.openai.com"  # the real host name, kept
    assert headers["authorization"].startswith("Bearer [REDACTED:")
    assert FAKE_KEY[3:].encode() not in decompressed(tmp_path / "proxy.trace")
    # The CA lived in a private directory of the run, and is gone with it.
    seen = json.loads(probe.read_text())
    assert seen["mode"] == 0o700 and seen["files"] == ["bundle.pem", "ca.pem"]
    assert not Path(seen["dir"]).exists()


HTTP_CLIENT = textwrap.dedent(
    """
    import json, ssl, sys
    import httpx, openai

    sent = []  # the request bodies as the client sent them
    http = openai.DefaultHttpxClient(event_hooks={"request": [lambda r: sent.append(r.read())]})
    client = openai.OpenAI(api_key="sk-test-forward", max_retries=0, http_client=http)
    tools = [{"type": "function", "name": "lookup",
              "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}]
    history = [{"role": "user", "content": "What is the answer?"}]
    bodies, ids = [], []
    while True:
        raw = client.responses.with_raw_response.create(
            model="m", input=history, tools=tools, stream=True)
        body = raw.http_response.read()
        bodies.append(body.decode())
        done = [json.loads(line[6:]) for line in body.decode().splitlines()
                if line.startswith("data: ") and '"response.completed"' in line][0]["response"]
        ids.append(done["id"])
        calls = [o for o in done["output"] if o["type"] == "function_call"]
        if not calls:
            break
        history += done["output"] + [
            {"type": "function_call_output", "call_id": c["call_id"], "output": "42"}
            for c in calls]
    # A host that is not intercepted, verified against its own CA only: it must reach the
    # real server untouched (tracer's certificate would fail this).
    other = httpx.post("https://other.test/v1/responses", verify=ssl.create_default_context(
        cafile=sys.argv[1]), json={"model": "m", "input": "hello"}, timeout=30)
    print(json.dumps({"sent": [b.decode() for b in sent], "bodies": bodies, "ids": ids,
                      "other": other.json()["id"]}))
    """
)


def _sse_data(body: str) -> list[bytes]:
    return [line[6:].encode() for line in body.splitlines() if line.startswith("data: ")]


def test_openai_sdk_http_is_recorded_and_other_hosts_pass_through(tmp_path: Path, hosts: Hosts):
    client = tmp_path / "http_client.py"
    client.write_text(HTTP_CLIENT)
    out = tmp_path / "proxy.trace"
    proc = _run(
        "record", *hosts.options(), "-o", str(out), "--",
        sys.executable, str(client), str(hosts.ca_file),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.splitlines()[-1])
    assert len(seen["ids"]) == 3
    assert "1 connection to other hosts passed through unrecorded" in proc.stderr

    with open_trace(out) as reader:
        records = list(reader)
    opens = [r for r in records if type(r) is Open]
    assert [o.transport for o in opens] == ["http"] * 3  # the other host's request: absent
    assert {dict((k.lower(), v) for k, v in o.request_headers)["host"] for o in opens} == {
        "api.openai.com"
    }
    for o, sent, body in zip(opens, seen["sent"], seen["bodies"], strict=True):
        frames = [r for r in records if type(r) is Frame and r.conn == o.conn]
        assert frames[0].direction is Direction.CLIENT
        assert frames[0].payload == sent.encode()  # the request body, byte for byte
        assert [f.payload for f in frames[1:]] == _sse_data(body)  # every event, exact
    api_log = list(hosts.api.engine.log)
    assert [e["response_id"] for e in api_log] == seen["ids"]
    other_log = list(hosts.other.engine.log)
    assert [e["response_id"] for e in other_log] == [seen["other"]]
    assert b"other.test" not in decompressed(out)


UNTRUSTING_CLIENT = textwrap.dedent(
    """
    import json, ssl, sys
    import openai

    # Trusts only the stand-ins' own CA, as a client with a pinned trust store would.
    ctx = ssl.create_default_context(cafile=sys.argv[1])
    client = openai.OpenAI(api_key="sk-test-forward", max_retries=0,
                           http_client=openai.DefaultHttpxClient(verify=ctx))
    try:
        client.responses.create(model="m", input="hi")
        print(json.dumps({"outcome": "answered"}))
    except openai.APIConnectionError as exc:
        print(json.dumps({"outcome": "error", "cause": repr(exc.__cause__)}))
    """
)


def test_a_client_that_does_not_trust_the_ca_gets_a_tls_error(tmp_path: Path, hosts: Hosts):
    client = tmp_path / "untrusting.py"
    client.write_text(UNTRUSTING_CLIENT)
    proc = _run(
        "record", *hosts.options(), "-o", str(tmp_path / "t.trace"), "--json", "--",
        sys.executable, str(client), str(hosts.ca_file),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    seen = json.loads(proc.stderr.splitlines()[0])
    assert seen["outcome"] == "error" and "CERTIFICATE_VERIFY_FAILED" in seen["cause"]
    assert summary["refused_tls"] == 1 and summary["connections"] == 0
    assert list(hosts.api.engine.log) == []  # nothing passed


@pytest.mark.parametrize("transport", ["websocket", "http"])
def test_openai_node_sdk_with_its_default_url(
    tmp_path: Path,
    hosts: Hosts,
    node_tools: Path,
    transport: str,
):
    server_view = Recorder(tmp_path / "server.trace")
    hosts.api.on_connect = lambda ws, head: tap_websocket(
        ws, server_view, head.target, client_side=False
    )
    out = tmp_path / "proxy.trace"
    proc = _run(
        "record", *hosts.options(), "-o", str(out), "--",
        "node", str(node_tools / "openai_client.mjs"), transport,
    )  # fmt: skip
    server_view.close()
    assert proc.returncode == 0, proc.stderr
    account = json.loads(proc.stdout.splitlines()[-1])
    log = list(hosts.api.engine.log)
    assert [e["response_id"] for e in log] == account["responses"]
    assert {e["transport"] for e in log} == {transport}
    with open_trace(out) as reader:
        opens = [r for r in reader if type(r) is Open]
    assert len(opens) == (1 if transport == "websocket" else len(account["responses"]))
    if transport == "websocket":
        assert frames_by_direction(out) == frames_by_direction(tmp_path / "server.trace")


def test_forward_option_errors(tmp_path: Path):
    for args in (
        ["--forward", "--upstream", "ws://127.0.0.1:9"],
        ["--intercept", "x.test", "--upstream", "ws://127.0.0.1:9"],
        ["--forward", "--connect-to", "api.openai.com:443"],
        ["--forward", "--upstream-ca", str(tmp_path / "missing.pem")],
        [],
    ):
        proc = run_tracer("record", "-o", str(tmp_path / "t.trace"), *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert_clean_error(proc)


def _standalone_forward(tmp_path: Path) -> subprocess.Popen[str]:
    """``tracer record --forward`` with no command: it prints its banner and waits."""
    env = {**_no_base_urls(), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "tracer", "record", "--forward", "-o", str(tmp_path / "t.trace"),
         "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def test_a_standalone_forward_proxy_names_its_ca_and_deletes_it_on_sigterm(tmp_path: Path):
    proc = _standalone_forward(tmp_path)
    assert proc.stderr is not None
    try:
        banner = [proc.stderr.readline() for _ in range(2)]
        assert "as a forward proxy (HTTPS_PROXY=http://tracer:" in banner[0], banner
        bundle = Path(banner[1].split("SSL_CERT_FILE=")[1].split()[0])
        assert bundle.is_file()
        assert sorted(p.name for p in bundle.parent.iterdir()) == ["bundle.pem", "ca.pem"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0
    assert not bundle.parent.exists()


@pytest.mark.slow
def test_codex_with_no_config_is_recorded_through_the_forward_proxy(tmp_path: Path, hosts: Hosts):
    """The Codex CLI's built-in provider, untouched (no config, no -c override): it talks to
    api.openai.com through HTTPS_PROXY and trusts the run's CA from the launch."""
    from tests.capture.test_record_cli import codex_binary

    codex = codex_binary()
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    trace = tmp_path / "codex.trace"
    env = {**_no_base_urls(), "CODEX_HOME": str(home), "OPENAI_API_KEY": FAKE_KEY}
    proc = subprocess.run(
        [sys.executable, "-m", "tracer", "record", *hosts.options(), "-o", str(trace), "--json",
         "--", str(codex), "exec", "--skip-git-repo-check",
         "--dangerously-bypass-approvals-and-sandbox", "Look around and report."],
        capture_output=True, text=True, timeout=300, cwd=work, env=env,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    log = list(hosts.api.engine.log)
    assert summary["connections"] == 1 and summary["refused_tls"] == 0
    assert summary["creates"] == len(log) >= 2
    assert {e["transport"] for e in log} == {"websocket"}
    assert all(e["previous_response_id"] for e in log[1:])
    with open_trace(trace) as reader:
        (op,) = [r for r in reader if type(r) is Open]
    assert {k.lower(): v for k, v in op.request_headers}["host"] == "api.openai.com"
    assert FAKE_KEY[3:].encode() not in decompressed(trace)


def _ask(port: int, request: bytes) -> bytes:
    """Send one proxy request on a new connection; the proxy's answer head."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        return answer


def test_the_forward_proxy_relays_for_its_own_command_alone(tmp_path: Path):
    """No open relay: without the run's credentials every CONNECT and proxy-form request
    gets 407; with them, loopback and private targets get 403 unless --connect-to names
    them; the local service behind those targets never sees a connection."""
    service = socket.socket()
    service.bind(("127.0.0.1", 0))
    service.listen(8)
    service.settimeout(0.5)
    target = service.getsockname()[1]
    proc = _standalone_forward(tmp_path)
    assert proc.stderr is not None
    try:
        banner = proc.stderr.readline()
        url = urlsplit(banner.split("HTTPS_PROXY=")[1].split(")")[0])
        assert url.username == "tracer" and url.password and len(url.password) >= 24
        port = url.port
        assert port is not None
        good = base64.b64encode(f"tracer:{url.password}".encode()).decode()
        bad = base64.b64encode(b"tracer:guess").decode()
        for auth in ("", f"Proxy-Authorization: Basic {bad}\r\n", "Proxy-Authorization: x\r\n"):
            for request in (
                f"CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n{auth}\r\n",
                f"CONNECT 127.0.0.1:{target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n",
                f"GET http://127.0.0.1:{target}/ HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n",
            ):
                answer = _ask(port, request.encode())
                assert answer.startswith(b"HTTP/1.1 407 "), (request, answer)
                assert b'Proxy-Authenticate: Basic realm="tracer record"' in answer
        auth = f"Proxy-Authorization: Basic {good}\r\n"
        # Loopback only here: were the check broken, nothing may leave the machine (private
        # ranges are checked without sockets in test_forward_parts).
        for host in (f"127.0.0.1:{target}", f"localhost:{target}", f"[::1]:{target}",
                     f"[::ffff:127.0.0.1]:{target}", f"0.0.0.0:{target}"):  # fmt: skip
            for request in (
                f"CONNECT {host} HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n",
                f"GET http://{host}/ HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n",
            ):
                answer = _ask(port, request.encode())
                assert answer.startswith(b"HTTP/1.1 403 "), (request, answer)
        with pytest.raises(TimeoutError):
            service.accept()  # nothing ever reached the local service
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        service.close()
    assert proc.returncode == 0
