"""Secrets never reach a trace, an export or the terminal.

Every capture path records a session that carries two fake secrets: a key shaped like an
OpenAI key (in the Authorization header, the query string, the payload and the launched
command's arguments) and a shapeless value that only the `api-key` header says is secret
(also repeated in the payload). Then the raw and decompressed traces, every export format
and the output of every command that shows a trace are searched for them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import zstandard
from websockets.sync.client import connect

from tests.conftest import run_tracer
from tests.hardening.helpers import free_port, wait_for_port
from tracer.capture.recorder import Recorder
from tracer.capture.tap import recording_connection_class
from tracer.upstream import running_upstream

KEY = "sk-proj-tracerSECRET0123456789abcdefghijKLMN"
SHAPELESS = "correct-horse-battery-staple-42"
NEEDLES = [KEY, KEY[3:], KEY[8:], SHAPELESS]

CLIENT = textwrap.dedent(
    """
    import http.client, json, sys
    from urllib.parse import urlsplit
    from websockets.sync.client import connect

    def session(base, key, other):
        url = base.replace("http", "ws", 1) + f"/responses?api_key={key}"
        headers = {"Authorization": f"Bearer {key}", "api-key": other}
        with connect(url, additional_headers=headers) as ws:
            previous = None
            for k in range(2):
                body = {"type": "response.create", "model": "m",
                        "input": f"turn {k}: my key is {key} and the password is {other}"}
                if previous:
                    body["previous_response_id"] = previous
                ws.send(json.dumps(body))
                while (event := json.loads(ws.recv()))["type"] != "response.completed":
                    pass
                previous = event["response"]["id"]
        # The same over plain HTTP (server-sent events).
        parts = urlsplit(base)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        body = json.dumps({"model": "m", "stream": True, "input": f"http: {key} {other}"})
        conn.request("POST", f"{parts.path}/responses?key={key}", body=body,
                     headers={**headers, "Content-Type": "application/json"})
        answer = conn.getresponse().read().decode()
        assert "response.completed" in answer, answer
        conn.close()

    if __name__ == "__main__":
        session(sys.argv[1], sys.argv[2], sys.argv[3])
    """
)


def _load_client(tmp_path: Path):
    path = tmp_path / "secret_client.py"
    path.write_text(CLIENT)
    namespace: dict = {}
    exec(compile(CLIENT, str(path), "exec"), namespace)  # the same client, in this process
    return path, namespace["session"]


def record_with_proxy(tmp_path: Path, upstream_port: int, *, redact: bool = True) -> Path:
    out = tmp_path / ("proxy.trace" if redact else "plain.trace")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracer", "record", "--upstream",
         f"ws://127.0.0.1:{upstream_port}", "-o", str(out), "--listen", f"127.0.0.1:{port}",
         *([] if redact else ["--no-redact"])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for_port(port)
    _, session = _load_client(tmp_path)
    session(f"http://127.0.0.1:{port}/v1", KEY, SHAPELESS)
    proc.terminate()
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    if redact:
        scan("record's output", stderr)
    return out


def record_by_launching(tmp_path: Path, upstream_port: int) -> Path:
    out = tmp_path / "launch.trace"
    client, _ = _load_client(tmp_path)
    # The key is also on the launched command line, which the trace's metadata keeps.
    proc = run_tracer(
        "record", "--upstream", f"ws://127.0.0.1:{upstream_port}", "-o", str(out), "--",
        sys.executable, "-c",
        f"import os, runpy, sys; sys.argv = ['c', os.environ['OPENAI_BASE_URL'], {KEY!r}, "
        f"{SHAPELESS!r}]; runpy.run_path({str(client)!r}, run_name='__main__')",
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    scan("record's output", proc.stdout + proc.stderr)
    return out


def record_with_tap(tmp_path: Path, upstream_port: int) -> Path:
    out = tmp_path / "tap.trace"
    recorder = Recorder(out)
    url = f"ws://127.0.0.1:{upstream_port}/v1/responses?api_key={KEY}"
    headers = {"Authorization": f"Bearer {KEY}", "api-key": SHAPELESS}
    cls = recording_connection_class(recorder)
    with connect(url, additional_headers=headers, create_connection=cls) as ws:
        ws.send(json.dumps({"type": "response.create", "input": f"{KEY} {SHAPELESS}"}))
        while json.loads(ws.recv())["type"] != "response.completed":
            pass
    recorder.close()
    return out


def scan(where: str, data: str | bytes) -> None:
    raw = data.encode() if isinstance(data, str) else data
    for needle in NEEDLES:
        assert needle.encode() not in raw, f"{needle!r} found in {where}"


def scan_files(where: str, root: Path) -> int:
    files = [p for p in root.rglob("*") if p.is_file()]
    for path in files:
        scan(f"{where}: {path.name}", path.read_bytes())
        if path.suffix == ".parquet":  # compressed pages: look at the decoded values too
            scan(f"{where}: {path.name} (decoded)", json.dumps(pq.read_table(path).to_pylist(),
                                                               default=str))  # fmt: skip
    return len(files)


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("secrets")
    with running_upstream() as upstream:
        return {
            "proxy": record_with_proxy(tmp, upstream.port),
            "launch": record_by_launching(tmp, upstream.port),
            "tap": record_with_tap(tmp, upstream.port),
        }


@pytest.mark.parametrize("path", ["proxy", "launch", "tap"])
def test_no_secret_in_the_trace_file(traces: dict[str, Path], path: str):
    trace = traces[path]
    assert trace.stat().st_mode & 0o777 == 0o600
    raw = trace.read_bytes()
    scan(f"{path} trace (raw)", raw)
    plain = zstandard.ZstdDecompressor().decompressobj().decompress(raw[16:])
    scan(f"{path} trace (decompressed)", plain)
    # The secrets were there to be found: markers replaced them in headers, query and body.
    assert plain.count(b"[REDACTED:") >= 4


@pytest.mark.parametrize("path", ["proxy", "launch", "tap"])
def test_no_secret_in_any_export(traces: dict[str, Path], path: str, tmp_path: Path):
    trace = traces[path]
    for fmt in ("jsonl", "har", "perfetto", "otlp", "parquet"):
        out = tmp_path / fmt
        proc = run_tracer("export", str(trace), "-f", fmt, "-o", str(out))
        assert proc.returncode == 0, proc.stderr
        scan(f"export {fmt} output", proc.stdout + proc.stderr)
        assert scan_files(f"{path} export {fmt}", out if out.is_dir() else out.parent) >= 1
    report = tmp_path / "report.html"
    assert run_tracer("report", str(trace), str(trace), "-o", str(report)).returncode == 0
    scan(f"{path} report", report.read_bytes())


@pytest.mark.parametrize("path", ["proxy", "launch", "tap"])
def test_no_secret_in_any_terminal_output(traces: dict[str, Path], path: str):
    trace = str(traces[path])
    turns = json.loads(run_tracer("inspect", trace, "--json").stdout)["turns"]
    assert turns
    commands = [
        ["verify", trace], ["verify", trace, "--json"],
        ["frames", trace, "--payload"], ["frames", trace, "--json", "--payload"],
        ["inspect", trace], ["inspect", trace, "--json"], ["cache", trace], ["latency", trace],
        ["stats", trace], ["diff", trace, trace], ["diff", trace, trace, "--json"],
        ["watch", trace, "--json"],
        ["query", "select * from turns", trace, "--json"],
    ] + [["turn", trace, str(t["index"]), *j] for t in turns for j in ([], ["--json"])]  # fmt: skip
    for args in commands:
        proc = run_tracer(*args)
        assert proc.returncode == 0, (args, proc.stderr)
        scan(" ".join(args[:1] + args[2:]), proc.stdout + proc.stderr)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_no_secret_on_the_inspector_screens(traces: dict[str, Path]):
    from textual.widgets import DataTable

    from tests.tui.test_tui import screen_text
    from tracer.analysis import load
    from tracer.tui.app import InspectorApp

    trace = traces["proxy"]
    app = InspectorApp(str(trace), load(trace, details=True).session, path=trace)
    async with app.run_test(size=(200, 60)) as pilot:
        table = app.query_one("#turns", DataTable)
        for row in range(table.row_count):
            scan(f"tui turn {row}", screen_text(app))
            await pilot.press("f")
            scan(f"tui frames of turn {row}", screen_text(app))
            for _ in range(5):
                await pilot.press("down")
                scan(f"tui a frame of turn {row}", screen_text(app))
            await pilot.press("escape", "down")


def test_secrets_really_reach_the_recorder(tmp_path: Path):
    """The control: with --no-redact the same session does put the key in the trace, so the
    searches above would find it if redaction failed."""
    with running_upstream() as upstream:
        out = record_with_proxy(tmp_path, upstream.port, redact=False)
    plain = zstandard.ZstdDecompressor().decompressobj().decompress(out.read_bytes()[16:])
    with pytest.raises(AssertionError):
        scan("unredacted trace", plain)


def test_listening_beyond_loopback_needs_a_flag(tmp_path: Path):
    for args in (
        ["record", "--upstream", "ws://127.0.0.1:9", "-o", str(tmp_path / "t"),
         "--listen", "0.0.0.0:0"],
        ["upstream", "--listen", "0.0.0.0:0"],
        ["upstream", "--host", "0.0.0.0", "--port", "0"],  # the old spelling, still checked
        ["replay", str(Path(__file__).parents[2] / "traces" / "incremental.trace"),
         "--listen", "0.0.0.0:0"],
    ):  # fmt: skip
        proc = run_tracer(*args, timeout=30)
        assert proc.returncode == 2 and "--allow-remote" in proc.stderr, (args, proc.stderr)
