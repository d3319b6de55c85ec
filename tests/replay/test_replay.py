"""Replay and rerun, end to end, with the official openai SDK and raw clients."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.capture.test_record_cli import FAKE_KEY, SDK_CLIENT, frames_by_direction
from tests.conftest import ROOT, run_tracer
from tracer.trace import Direction
from tracer.upstream import Call, Script, TurnScript, running_upstream

SCRIPT = Script(
    turns=(
        TurnScript(text="Looking it up.", calls=(Call("lookup", '{"q":"a"}'),)),
        TurnScript(text="Once more.", calls=(Call("lookup", '{"q":"b"}'),)),
        TurnScript(text="The answer is 42."),
    )
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_replay(trace: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracer", "replay", str(trace), "--listen",
         f"127.0.0.1:{port}", "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    assert info["event"] == "listening"
    return proc, info["base_url"]


def test_sdk_session_replays_identically_offline(tmp_path: Path):
    client = tmp_path / "client.py"
    client.write_text(SDK_CLIENT)
    recorded = tmp_path / "recorded.trace"
    with running_upstream(SCRIPT) as upstream:
        proc = run_tracer(
            "record", "--upstream", f"ws://127.0.0.1:{upstream.port}", "-o", str(recorded),
            "--", sys.executable, str(client), str(tmp_path / "live.trace"), FAKE_KEY,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    # The upstream is gone: the same client code now talks to the replay server only.
    replay, base_url = start_replay(recorded, "--once", "--speed", "0")
    try:
        run = subprocess.run(
            [sys.executable, str(client), str(tmp_path / "replayed.trace"), FAKE_KEY],
            env={**__import__("os").environ, "OPENAI_BASE_URL": base_url},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout) == {"turns": 3}
        out, err = replay.communicate(timeout=30)
    finally:
        replay.kill()
    assert replay.returncode == 0, err
    summary = json.loads(out)
    assert summary["mismatches"] == [] and summary["turns"] == 3
    live = frames_by_direction(tmp_path / "live.trace")
    replayed = frames_by_direction(tmp_path / "replayed.trace")
    assert len(live[Direction.SERVER]) > 40
    assert replayed[Direction.SERVER] == live[Direction.SERVER]  # the same payloads, in order
    assert replayed[Direction.CLIENT] == live[Direction.CLIENT]


@pytest.mark.parametrize("verbose", [False, True])
def test_a_changed_message_gets_the_documented_mismatch_error(tmp_path: Path, verbose: bool):
    trace = ROOT / "traces" / "incremental.trace"
    creates = [
        json.loads(json.loads(line)["payload"])
        for line in run_tracer(
            "frames", str(trace), "--json", "--payload", "--from", "client"
        ).stdout.splitlines()
    ]
    options = ["--verbose-mismatch"] if verbose else []
    replay, base_url = start_replay(trace, "--once", "--speed", "0", *options)
    try:
        with connect(base_url.replace("http", "ws") + "/responses") as ws:
            ws.send(json.dumps(creates[0]))  # the warm-up, as recorded
            while json.loads(ws.recv())["type"] != "response.completed":
                pass
            changed = dict(creates[1], model="another-model")
            ws.send(json.dumps(changed))
            error = json.loads(ws.recv())
        out, _ = replay.communicate(timeout=30)
    finally:
        replay.kill()
    assert error["type"] == "error"
    assert error["error"]["code"] == "replay_mismatch"
    message = error["error"]["message"]
    assert "message 2 of recorded connection 1" in message
    assert "$.model" in message and "another-model" in message
    # What the recording holds reaches the client only when asked for.
    assert (creates[1]["model"] in message) is verbose
    assert replay.returncode == 1  # --once exits non-zero after a mismatch
    mismatches = json.loads(out)["mismatches"]
    assert mismatches and creates[1]["model"] in mismatches[0]  # the local operator sees it


def test_replay_keeps_the_recorded_gaps_at_speed_1():
    trace = ROOT / "traces" / "incremental.trace"
    creates = [
        json.loads(line)
        for line in run_tracer("frames", str(trace), "--json", "--payload").stdout.splitlines()
    ]
    first_create = next(f for f in creates if f["from"] == "client")
    replies = [f for f in creates if f["from"] == "server"][:6]
    replay, base_url = start_replay(trace, "--speed", "1")
    try:
        with connect(base_url.replace("http", "ws") + "/responses") as ws:
            t0 = time.monotonic()
            ws.send(first_create["payload"])
            arrivals = [time.monotonic() - t0 for _ in range(3) if ws.recv()]
    finally:
        replay.terminate()
        replay.wait(timeout=10)
    recorded = [r["t"] - first_create["t"] for r in replies[:3]]
    for got, want in zip(arrivals, recorded, strict=True):
        assert want - 0.002 <= got <= want + 0.05, (got, want)


def test_rerun_keeps_the_turn_structure(tmp_path: Path):
    with running_upstream() as upstream:
        url = f"ws://127.0.0.1:{upstream.port}"
        same = run_tracer("rerun", str(ROOT / "traces" / "incremental.trace"), "--upstream", url,
                          "-o", str(tmp_path / "again.trace"), "--json")  # fmt: skip
        full_resend = str(ROOT / "traces" / "full-resend.trace")
        cheaper = run_tracer("rerun", full_resend, "--upstream", url, "-o",
                             str(tmp_path / "inc.trace"), "--incremental", "--json")  # fmt: skip
    assert same.returncode == 0, same.stderr
    assert cheaper.returncode == 0, cheaper.stderr

    def inspect(path: Path) -> dict:
        return json.loads(run_tracer("inspect", "--json", str(path)).stdout)

    original = inspect(ROOT / "traces" / "incremental.trace")
    again = inspect(tmp_path / "again.trace")
    assert len(again["turns"]) == len(original["turns"]) == 14
    turns = again["turns"]
    assert all(b["previous_response_id"] == a["response_id"] for a, b in pairwise(turns))
    assert [t["status"] for t in turns] == [t["status"] for t in original["turns"]]
    full = inspect(ROOT / "traces" / "full-resend.trace")
    made = inspect(tmp_path / "inc.trace")
    assert json.loads(cheaper.stdout)["made_incremental"] == 12
    assert len(made["turns"]) == len(full["turns"]) == 13
    assert made["summary"]["bytes_sent"] < full["summary"]["bytes_sent"]
    assert made["summary"]["resent_bytes"] == 0 < full["summary"]["resent_bytes"]


def test_pytest_plugin_replays_and_records(pytester, tmp_path: Path):
    cassette = ROOT / "traces" / "incremental.trace"
    frames = run_tracer("frames", str(cassette), "--json", "--payload", "--from", "client")
    warmup = json.loads(frames.stdout.splitlines()[0])["payload"]
    pytester.makepyfile(
        test_agent=f"""
        import json
        import pytest
        from websockets.sync.client import connect

        WARMUP = {warmup!r}

        @pytest.mark.tracer_cassette({str(cassette)!r})
        def test_replayed(tracer_replay):
            assert tracer_replay.mode == "replay"
            with connect(tracer_replay.ws_url) as ws:
                ws.send(WARMUP)
                types = []
                while not types or types[-1] != "response.completed":
                    types.append(json.loads(ws.recv())["type"])
            assert types[0] == "response.created"

        @pytest.mark.tracer_cassette({str(cassette)!r})
        def test_mismatch_fails(tracer_replay):
            with connect(tracer_replay.ws_url) as ws:
                ws.send(json.dumps({{"type": "response.create", "input": "something else"}}))
                assert json.loads(ws.recv())["error"]["code"] == "replay_mismatch"

        def test_records_when_missing(tracer_replay):
            assert tracer_replay.mode == "record"
            with connect(tracer_replay.ws_url) as ws:
                ws.send(json.dumps({{"type": "response.create", "input": "hi"}}))
                while json.loads(ws.recv())["type"] != "response.completed":
                    pass
        """
    )
    with running_upstream() as upstream:
        result = pytester.runpytest(
            "--tracer-record=once", f"--tracer-upstream=ws://127.0.0.1:{upstream.port}", "-p",
            "no:cacheprovider",
        )  # fmt: skip
    result.assert_outcomes(passed=2, failed=1)  # the mismatch fails the test in its call
    assert "tracer replay mismatch" in result.stdout.str()
    recorded = pytester.path / "cassettes" / "test_records_when_missing.trace"
    assert recorded.exists()
    again = pytester.runpytest("-k", "records_when_missing", "-p", "no:cacheprovider")
    again.assert_outcomes(passed=0, failed=1)  # now it replays, and mode is "replay"


def test_a_live_redaction_marker_is_no_wildcard():
    """A client that sends a marker does not match whatever the recording holds there (it
    could read a recording field by field); a marker in the recording stands for the
    client's secret, whatever it is."""
    from tracer.replay.recorded import match

    marker = "[REDACTED:0123456789]"
    recorded = json.dumps({"type": "response.create", "input": "secret text"}).encode()
    probe = json.dumps({"type": "response.create", "input": marker}).encode()
    for mode in ("tolerant", "strict"):
        assert match(probe, recorded, mode) is not None, mode
    redacted = json.dumps({"type": "response.create", "key": marker}).encode()
    live = json.dumps({"type": "response.create", "key": "sk-the-clients-own-key"}).encode()
    for mode in ("tolerant", "strict"):
        assert match(live, redacted, mode) is None, mode


def test_tolerant_matching_skips_what_codex_changes_from_run_to_run():
    """What two runs of the Codex CLI sent differently (seen in the matrix): prefixed UUID
    item ids, a create_time, client_metadata. A different prefix, or another value, still
    mismatches."""
    from tracer.replay.recorded import match

    def create(item_id: str, text: str, t: float, session: str) -> bytes:
        item = {"id": item_id, "type": "message", "role": "user", "content": text,
                "internal_chat_message_metadata_passthrough": {"create_time": t}}  # fmt: skip
        meta = {"x-codex-turn-metadata": session}
        return json.dumps(
            {"type": "response.create", "input": [item], "client_metadata": meta}
        ).encode()

    recorded = create("msg_38330cf7-0051-5df3-9995-aa5fbdeffb0e", "hi", 1796186884.17, "a")
    live = create("msg_f7d8ee46-773d-51ff-9163-76b0f03c7c9b", "hi", 1796186886.44, "b")
    assert match(live, recorded, "tolerant") is None
    assert match(live, recorded, "strict") is not None
    other_prefix = create("fc_f7d8ee46-773d-51ff-9163-76b0f03c7c9b", "hi", 1.0, "b")
    assert match(other_prefix, recorded, "tolerant").where == "$.input[0].id"
    other_text = create("msg_f7d8ee46-773d-51ff-9163-76b0f03c7c9b", "bye", 1.0, "b")
    assert match(other_text, recorded, "tolerant").where == "$.input[0].content"
