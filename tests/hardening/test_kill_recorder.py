"""`tracer record` killed at random moments of a busy session, many times: every trace reads
back, is marked truncated, and holds every frame older than the flush interval. SIGTERM and
Ctrl-C (SIGINT, also to a launched command's whole process group) finish the trace cleanly."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.hardening.helpers import free_port, wait_for_port
from tracer.trace import Frame, TraceReader
from tracer.upstream import Script, Timing, TurnScript, running_upstream

FLUSH_S = 0.1
SLACK_S = 0.15  # between a frame passing the proxy and the client noting it; scheduling
KILLS = 12

BUSY = Script(
    turns=(TurnScript(text=" ".join(f"w{i}" for i in range(40))),),
    timing=Timing(ttfe_ms=2, ttft_ms=5, tokens_per_s=2000, jitter=0),
)


def busy_client(port: int, seen: list[tuple[float, bytes]], stop: threading.Event) -> None:
    """Turn after turn; notes (time, payload) of every frame it sent or received."""
    try:
        with connect(f"ws://127.0.0.1:{port}/v1/responses") as ws:
            k = 0
            while not stop.is_set():
                body = json.dumps({"type": "response.create", "input": f"turn {k}"}).encode()
                ws.send(body.decode())
                seen.append((time.monotonic(), body))
                while True:
                    data = ws.recv(timeout=10)
                    raw = data.encode() if isinstance(data, str) else data
                    seen.append((time.monotonic(), raw))
                    if b'"response.completed"' in raw:
                        break
                k += 1
    except (ConnectionClosed, OSError, TimeoutError):
        pass  # the recorder (and with it the proxy) was killed


def start_recorder(upstream_port: int, out: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracer", "record", "--upstream",
         f"ws://127.0.0.1:{upstream_port}", "-o", str(out), "--listen", f"127.0.0.1:{port}",
         "--flush-interval", str(FLUSH_S), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    wait_for_port(port)
    return proc


def read_frames(path: Path) -> tuple[list[bytes], bool]:
    with open(path, "rb") as f:
        reader = TraceReader(f)
        payloads = [r.payload for r in reader if type(r) is Frame and r.opcode.label == "text"]
        return payloads, bool(reader.truncated)


def test_sigkill_at_random_moments_loses_at_most_the_flush_interval(tmp_path: Path):
    rng = random.Random(20261125)
    checked = 0
    with running_upstream(BUSY) as upstream:
        for i in range(KILLS):
            out = tmp_path / f"kill{i}.trace"
            port = free_port()
            proc = start_recorder(upstream.port, out, port)
            seen: list[tuple[float, bytes]] = []
            stop = threading.Event()
            client = threading.Thread(target=busy_client, args=(port, seen, stop))
            client.start()
            time.sleep(rng.uniform(0.2, 1.2))
            killed_at = time.monotonic()
            proc.kill()
            proc.wait(timeout=30)
            stop.set()
            client.join(30)
            payloads, truncated = read_frames(out)
            assert truncated, f"kill {i}: a killed recorder's trace must read as truncated"
            old = [p for t, p in seen if t < killed_at - FLUSH_S - SLACK_S]
            recorded = list(payloads)
            # Every old frame is there, in the order the client saw them.
            position = 0
            for payload in old:
                position = recorded.index(payload, position) + 1
            checked += len(old)
            assert len(recorded) >= len(old)
    print(f"{KILLS} kills, {checked} frames older than the flush interval, all recorded")
    assert checked > KILLS * 20  # the sessions were busy


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_finish_the_trace(tmp_path: Path, sig: signal.Signals):
    out = tmp_path / "t.trace"
    with running_upstream(BUSY) as upstream:
        port = free_port()
        proc = start_recorder(upstream.port, out, port)
        seen: list[tuple[float, bytes]] = []
        stop = threading.Event()
        client = threading.Thread(target=busy_client, args=(port, seen, stop))
        client.start()
        time.sleep(0.8)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
        stop.set()
        client.join(30)
    assert proc.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["trace_ok"] and summary["dropped_frames"] == 0
    payloads, truncated = read_frames(out)
    assert not truncated  # footer written: a clean end
    sent_and_seen = [p for _, p in seen]
    assert sent_and_seen and all(p in payloads for p in sent_and_seen)


def test_ctrl_c_to_a_launched_agents_process_group(tmp_path: Path):
    """In a terminal, Ctrl-C reaches tracer and the agent it launched: both stop, the trace
    is finished, and tracer exits 130 as an interrupted command does (the agent's own
    status is in the summary)."""
    out = tmp_path / "t.trace"
    agent = tmp_path / "agent.py"
    # Like a real agent, it ends quietly on Ctrl-C (or when its connection goes away first),
    # so that what stderr shows is tracer's own.
    agent.write_text(
        "import json, os, sys\n"
        "from websockets.exceptions import ConnectionClosed\n"
        "from websockets.sync.client import connect\n"
        "url = os.environ['OPENAI_BASE_URL'].replace('http', 'ws', 1) + '/responses'\n"
        "try:\n"
        "    with connect(url) as ws:\n"
        "        while True:\n"
        "            ws.send(json.dumps({'type': 'response.create', 'input': 'again'}))\n"
        "            while json.loads(ws.recv())['type'] != 'response.completed':\n"
        "                pass\n"
        "            print('turn', flush=True)\n"
        "except (KeyboardInterrupt, ConnectionClosed):\n"
        "    sys.exit(130)\n"
    )
    with running_upstream(BUSY) as upstream:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tracer", "record", "--upstream",
             f"ws://127.0.0.1:{upstream.port}", "-o", str(out), "--json", "--",
             sys.executable, str(agent)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        assert proc.stderr is not None  # under --json the agent's stdout goes to stderr
        seen = 0
        while seen < 3:
            line = proc.stderr.readline()
            assert line, "the agent ended early"
            seen += line.strip() == "turn"
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        stdout, stderr = proc.communicate(timeout=60)
    assert "Traceback" not in stderr
    summary = json.loads(stdout)  # stdout holds the summary only
    assert summary["trace_ok"] is True and summary["creates"] >= 3
    assert proc.returncode == 130 and summary["command_exit"] != 0
    _, truncated = read_frames(out)
    assert not truncated


OPEN_TOKEN = b'{"type":"response.output_text.delta","item_id":"m","delta":"my key is sk-pr"}'
HOLD_BOUND_S = 1.0  # tracer.trace.split.HOLD_S


def _holding_server(port: int, ready: threading.Event, stop: threading.Event) -> None:
    """Answers "hold" with a delta that ends in the first part of a key, then nothing (the
    split-key joiner must hold it); answers anything else with itself."""
    import asyncio

    import websockets

    async def handler(ws: websockets.ServerConnection) -> None:
        async for message in ws:
            await ws.send(OPEN_TOKEN.decode() if message == "hold" else message)

    async def main() -> None:
        async with websockets.serve(handler, "127.0.0.1", port):
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)

    asyncio.run(main())


def test_a_held_frame_holds_no_other_connection_and_outlasts_no_bound(tmp_path: Path):
    """Issue #26: one idle connection whose last delta ends in key characters held back
    every record of every connection while another was busy (6 s of traffic, trace still
    157 bytes; SIGKILL lost all). Now, killed after 6 s of another connection's traffic,
    the trace holds the held frame and every frame older than flush interval + hold bound."""
    up_port, stop, ready = free_port(), threading.Event(), threading.Event()
    server = threading.Thread(target=_holding_server, args=(up_port, ready, stop), daemon=True)
    server.start()
    assert ready.wait(10)
    out, port = tmp_path / "held.trace", free_port()
    proc = start_recorder(up_port, out, port)
    sent: list[tuple[float, bytes]] = []
    try:
        with connect(f"ws://127.0.0.1:{port}/v1/responses") as idle:
            idle.send("hold")
            assert idle.recv(timeout=10).encode() == OPEN_TOKEN
            held_at = time.monotonic()
            with connect(f"ws://127.0.0.1:{port}/v1/responses") as busy:
                k = 0
                while time.monotonic() - held_at < 6.0:
                    body = json.dumps({"type": "note", "n": k}).encode()
                    busy.send(body.decode())
                    assert busy.recv(timeout=10).encode() == body
                    sent.append((time.monotonic(), body))
                    k += 1
                killed_at = time.monotonic()
                proc.kill()
                proc.wait(timeout=30)
    except ConnectionClosed:
        pass
    finally:
        stop.set()
    payloads, truncated = read_frames(out)
    assert truncated
    assert OPEN_TOKEN in payloads  # held no longer than the bound, then written and flushed
    old = [b for t, b in sent if t < killed_at - FLUSH_S - HOLD_BOUND_S - SLACK_S]
    assert len(old) > 100, len(old)  # the other connection was busy
    missing = [b for b in old if b not in payloads]
    assert missing == [], f"{len(missing)} of {len(old)} old frames lost"
