"""The live views against a recording in progress: `tracer watch --json` and the live TUI.

A real `tracer record` subprocess proxies a real WebSocket client to the scripted upstream;
each turn must show up in the watcher within a second of its last frame.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from textual.widgets import DataTable, Static
from websockets.sync.client import ClientConnection, connect

from tests.conftest import assert_clean_error, run_tracer
from tests.tui.test_tui import static_text
from tracer.tui.app import InspectorApp
from tracer.upstream import running_upstream

LATENCY_BOUND_S = 1.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Recording:
    def __init__(self, proc: subprocess.Popen[str], port: int, path: Path) -> None:
        self.proc, self.port, self.path = proc, port, path
        self.previous: str | None = None

    def turn(self, ws: ClientConnection, text: str) -> float:
        """One turn; returns the monotonic time its last event arrived."""
        body: dict[str, Any] = {"type": "response.create", "model": "m", "input": text}
        if self.previous:
            body["previous_response_id"] = self.previous
        ws.send(json.dumps(body))
        while True:
            event = json.loads(ws.recv())
            if event["type"] == "response.completed":
                self.previous = event["response"]["id"]
                return time.monotonic()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


@pytest.fixture
def recording(tmp_path: Path) -> Iterator[Recording]:
    out = tmp_path / "live.trace"
    port = _free_port()
    with running_upstream() as upstream:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tracer", "record", "--upstream",
             f"ws://127.0.0.1:{upstream.port}", "-o", str(out), "--listen", f"127.0.0.1:{port}"],
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert proc.stderr is not None
            assert "listening" in proc.stderr.readline()
            yield Recording(proc, port, out)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)


def test_watch_json_reports_each_turn_within_a_second(recording: Recording):
    watcher = subprocess.Popen(
        [sys.executable, "-m", "tracer", "watch", str(recording.path), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen: list[tuple[float, dict[str, Any]]] = []

    def read() -> None:
        assert watcher.stdout is not None
        for line in watcher.stdout:
            seen.append((time.monotonic(), json.loads(line)))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    lags = []
    try:
        with connect(f"ws://127.0.0.1:{recording.port}/v1/responses") as ws:
            for k in range(4):
                done = recording.turn(ws, f"turn {k}")
                deadline = done + 5
                while time.monotonic() < deadline:
                    hit = [t for t, o in seen if o["event"] == "turn" and o["turn"]["index"] == k]
                    if hit:
                        lags.append(hit[0] - done)
                        break
                    time.sleep(0.01)
                else:
                    pytest.fail(f"turn {k} did not appear within 5 s; got {seen}")
                time.sleep(0.3)  # the agent's own time between turns
        recording.stop()
        assert watcher.wait(timeout=30) == 0, watcher.stderr.read() if watcher.stderr else ""
    finally:
        if watcher.poll() is None:
            watcher.kill()
    reader.join(timeout=5)
    print(f"watch --json lag per turn (s): {[round(x, 3) for x in lags]}")
    assert max(lags) < LATENCY_BOUND_S, lags
    events = [o for _, o in seen]
    progress = [o for o in events if o["event"] == "progress"]
    assert progress and progress[-1]["turns"] == 4
    end = events[-1]
    assert end["event"] == "end" and end["how"] == "finished"
    # The running totals end where the finished trace's report does.
    final = json.loads(run_tracer("inspect", str(recording.path), "--json").stdout)["summary"]
    for key in ("turns", "bytes_sent", "referenced_bytes", "resent_bytes", "cached_tokens"):
        assert end["summary"][key] == final[key], key
    turns = [o["turn"] for o in events if o["event"] == "turn"]
    assert [t["index"] for t in turns] == [0, 1, 2, 3]
    assert all(t["status"] == "completed" for t in turns)
    assert [t["referenced_items"] > 0 for t in turns] == [False, True, True, True]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_live_tui_shows_turns_as_they_happen(recording: Recording):
    app = InspectorApp(str(recording.path), live=recording.path)
    lags = []
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one("#turns", DataTable)
        with connect(f"ws://127.0.0.1:{recording.port}/v1/responses") as ws:
            for k in range(3):
                done = await anyio.to_thread.run_sync(recording.turn, ws, f"turn {k}")
                while table.row_count < k + 1 and time.monotonic() - done < 5:
                    await pilot.pause(0.02)
                lags.append(time.monotonic() - done)
                assert table.row_count == k + 1
                assert table.cursor_row == k  # the view follows the newest turn
                summary = static_text(app.query_one("#summary", Static))
                turns = "1 turn," if k == 0 else f"{k + 1} turns"
                assert "● following" in summary and turns in summary
                await anyio.sleep(0.2)
        await anyio.to_thread.run_sync(recording.stop)
        deadline = time.monotonic() + 5
        while app.live_state != "recording finished" and time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert app.live_state == "recording finished"
        assert "recording finished" in static_text(app.query_one("#summary", Static))
    print(f"live tui lag per turn (s): {[round(x, 3) for x in lags]}")
    assert max(lags) < LATENCY_BOUND_S, lags


def test_watch_refuses_bad_input_in_one_line(tmp_path: Path):
    bad = tmp_path / "bad.trace"
    bad.write_bytes(b"garbage" * 10)
    assert_clean_error(run_tracer("watch", str(bad), "--json"))
