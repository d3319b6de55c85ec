"""The session report on traces recorded from the scripted upstream, whose truth is known."""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import orjson
import pytest
from websockets.asyncio.client import connect

from tests.conftest import ROOT, assert_clean_error, run_tracer
from tracer.analysis import analyse
from tracer.capture.proxy import RecordingProxy
from tracer.capture.recorder import Recorder
from tracer.demo.agent import AgentConfig, run_agent
from tracer.trace import Direction, Frame, open_trace
from tracer.upstream import Call, Script, Timing, TurnScript, UpstreamServer, default_script
from tracer.upstream.script import parse_profile

SCHEMA = json.loads((ROOT / "docs" / "schema" / "inspect.schema.json").read_text())


def record_demo(path: Path, script: Script | None = None, **options) -> list[dict]:
    """Record the demo agent against the scripted upstream into ``path``; the upstream's
    log (one entry per response it ran, with the usage it sent)."""

    async def main() -> list[dict]:
        server = UpstreamServer(script or default_script())
        await server.start()
        recorder = Recorder(path)
        try:
            await run_agent(AgentConfig(base_url=server.base_url, **options), recorder)
        finally:
            recorder.close()
            await server.close()
        return list(server.engine.log)

    return asyncio.run(main())


def report_of(path: Path):
    with open_trace(path) as reader:
        return analyse(reader)


def client_creates(path: Path) -> list[dict]:
    with open_trace(path) as reader:
        return [
            json.loads(r.payload)
            for r in reader
            if type(r) is Frame and r.direction is Direction.CLIENT and r.opcode.label == "text"
        ]


def test_incremental_session(tmp_path: Path):
    path = tmp_path / "inc.trace"
    record_demo(path)
    report = report_of(path)
    jsonschema.validate(report.to_json(), SCHEMA)
    turns = report.turns
    assert len(turns) == 14  # a warm-up and 13 turns of the default script
    assert turns[0].warmup and turns[0].output_items == 0 and turns[0].ttft_ms is None
    assert all(t.status == "completed" for t in turns)
    # One chain: each turn continues the previous one.
    for before, after in itertools.pairwise(turns):
        assert after.previous_response_id == before.response_id
    # Nothing resent; the chain grows by 3 items a turn (tool output, message, call).
    assert [t.resent_items for t in turns] == [0] * 14
    assert [t.referenced_items for t in turns[1:]] == [3 * k for k in range(13)]
    creates = client_creates(path)
    for t, create in zip(turns, creates, strict=True):
        assert t.input_bytes == sum(len(orjson.dumps(i)) for i in create["input"])
    # Instructions, tools, model and store are resent unchanged every turn after the first.
    assert turns[1].resent_fields == ["instructions", "model", "store", "tools"]
    expected_fields = sum(
        len(orjson.dumps(creates[1][k], option=orjson.OPT_SORT_KEYS))
        for k in ("instructions", "model", "store", "tools")
    )
    assert all(t.resent_field_bytes == expected_fields for t in turns[1:])
    s = report.summary
    assert s.turns == 14 and s.connections == 1 and s.cache_losses == 0
    assert s.resent_bytes == 0 and s.referenced_share == 1.0
    assert s.cached_tokens == sum(t.cached_tokens for t in turns) > 0
    assert s.bytes_sent == sum(len(json.dumps(c).encode()) for c in creates)
    assert s.incremental_bytes == s.bytes_sent - 13 * expected_fields


def test_full_resend_session(tmp_path: Path):
    path = tmp_path / "full.trace"
    record_demo(path, resend_full_history=True)
    report = report_of(path)
    jsonschema.validate(report.to_json(), SCHEMA)
    turns = report.turns
    assert len(turns) == 13
    assert all(t.previous_response_id is None for t in turns)
    # Turn k resends the user message and 3 items per earlier turn; only the tool output is new.
    assert [t.input_items for t in turns] == [1 + 3 * k for k in range(13)]
    assert [t.resent_items for t in turns] == [3 * k for k in range(13)]
    creates = client_creates(path)
    for t, create in zip(turns[1:], creates[1:], strict=True):
        assert t.resent_bytes == sum(len(orjson.dumps(i)) for i in create["input"][:-1])
        assert t.referenced_items == 0 and t.cached_tokens == 0
    assert report.summary.referenced_share == 0.0
    assert report.summary.resent_bytes == sum(t.resent_bytes for t in turns) > 100_000


def test_cache_loss_after_reconnect(tmp_path: Path):
    path = tmp_path / "rc.trace"
    record_demo(path, reconnect_after=4)
    report = report_of(path)
    jsonschema.validate(report.to_json(), SCHEMA)
    assert report.summary.connections == 2
    (loss,) = report.cache_losses
    lost = report.turns[loss.turn]
    assert loss.kind == "reconnect" and lost.conn == 2
    assert lost.status == "error" and lost.error_code == "previous_response_not_found"
    assert lost.referenced_items == 0
    recovery = report.turns[loss.recovery_turn]
    assert recovery.status == "completed" and recovery.previous_response_id is None
    assert recovery.input_items == 13  # the whole history, resent to start a new chain
    assert loss.recovery_input_bytes == recovery.input_bytes
    assert report.turns[loss.recovery_turn + 1].previous_response_id == recovery.response_id


def test_error_turn_and_eviction(tmp_path: Path):
    path = tmp_path / "err.trace"
    record_demo(path, script=Script.load(ROOT / "traces" / "scripts" / "error.toml"))
    report = report_of(path)
    statuses = [(t.status, t.error_code) for t in report.turns]
    assert ("error", "server_error") in statuses
    (loss,) = report.cache_losses
    assert loss.kind == "evicted"  # the error evicted what it referenced, on this connection
    assert report.summary.errors == 2


def test_latency_within_the_injected_delays(tmp_path: Path):
    words = " ".join(["tok"] * 11)
    script = Script(
        turns=(
            TurnScript(text=words, calls=default_script().turns[0].calls),
            TurnScript(text=words),
        ),
        timing=Timing(ttfe_ms=40, ttft_ms=120, tokens_per_s=50, jitter=0),
    )
    path = tmp_path / "lat.trace"
    record_demo(path, script=script, warmup=False, tool_delay=0.25)
    first, second = report_of(path).turns
    # Never faster than injected; the upper bounds leave room for a busy 2-core machine.
    # (The gap between the two has no such floor: a busy proxy may read the first event
    # late and the first token on time.)
    for t in (first, second):
        assert 39 <= t.ttfe_ms <= 140, t
        assert 119 <= t.ttft_ms <= 240, t
        assert 0 < t.ttft_ms - t.ttfe_ms <= 180, t
        # 11 text tokens, then the call's argument pieces, 20 ms apart, then the end.
        assert t.generation_ms >= 10 * 20
    assert second.client_ms is not None and 245 <= second.client_ms <= 400
    assert first.client_ms is None


def test_lanes_are_kept_apart(tmp_path: Path):
    script = Script(
        turns=(TurnScript(text=" ".join(["x"] * 20)),),
        timing=Timing(ttfe_ms=0, ttft_ms=5, tokens_per_s=2000, jitter=0),
    )

    async def main():
        upstream = UpstreamServer(script)
        await upstream.start()
        recorder = Recorder(tmp_path / "lanes.trace")
        proxy = RecordingProxy(f"ws://127.0.0.1:{upstream.port}", recorder)
        await proxy.start()
        received: dict[str, list[str]] = {"a": [], "b": []}
        try:
            async with connect(f"ws://127.0.0.1:{proxy.port}/v1/responses") as ws:
                for lane in ("a", "b"):
                    await ws.send(
                        json.dumps({"type": "response.create", "stream_id": lane, "input": lane})
                    )
                done = 0
                while done < 2:
                    event = json.loads(await ws.recv())
                    received[event["stream_id"]].append(event["type"])
                    done += event["type"] == "response.completed"
        finally:
            await proxy.close()
            recorder.close()
            await upstream.close()
        return received

    received = asyncio.run(main())
    report = report_of(tmp_path / "lanes.trace")
    assert [t.stream_id for t in report.turns] == ["a", "b"]
    for t in report.turns:
        assert t.status == "completed"
        assert t.events == len(received[t.stream_id])
        assert t.output_items == 1
    assert report.connections[0].message_types["server:response.output_text.delta"] == 40


def test_non_responses_traffic_gets_the_generic_view(tmp_path: Path):
    async def main():
        async def echo(reader, writer):
            from tracer.wire import accept_websocket, read_request_head

            ws = await accept_websocket(reader, writer, await read_request_head(reader))
            while (msg := await ws.recv_message()) is not None:
                await ws.send_frame(msg[0], msg[1])

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        recorder = Recorder(tmp_path / "chat.trace")
        proxy = RecordingProxy(f"ws://127.0.0.1:{port}", recorder)
        await proxy.start()
        async with connect(f"ws://127.0.0.1:{proxy.port}/chat") as ws:
            for i in range(5):
                await ws.send(json.dumps({"op": "say", "n": i}))
                await ws.recv()
            await ws.send(b"\x01\x02")
            await ws.recv()
        await proxy.close()
        recorder.close()
        server.close()

    asyncio.run(main())
    report = report_of(tmp_path / "chat.trace")
    jsonschema.validate(report.to_json(), SCHEMA)
    assert report.summary.turns == 0 and report.summary.responses_api is False
    (conn,) = report.connections
    assert conn.url == "/chat"
    assert conn.message_types == {
        "client:None": 5,
        "server:None": 5,
        "client:<binary>": 1,
        "server:<binary>": 1,
    }
    assert conn.protocol is None and report.summary.unknown_connections == 1
    proc = run_tracer("inspect", str(tmp_path / "chat.trace"))
    assert proc.returncode == 0 and "1 connection (not understood), 0 turns" in proc.stdout
    assert "a protocol tracer does not understand" in proc.stdout


@pytest.mark.parametrize("name", ["incremental", "full-resend", "reconnect", "error", "http"])
def test_cli_json_on_the_sample_traces(name):
    path = str(ROOT / "traces" / f"{name}.trace")
    report = json.loads(run_tracer("inspect", "--json", path).stdout)
    jsonschema.validate(report, SCHEMA)
    assert report["summary"]["turns"] == len(report["turns"]) > 0
    cache = json.loads(run_tracer("cache", "--json", path).stdout)
    assert [t["resent_bytes"] for t in cache["turns"]] == [
        t["resent_bytes"] for t in report["turns"]
    ]
    latency = json.loads(run_tracer("latency", "--json", path).stdout)
    assert [t["ttft_ms"] for t in latency["turns"]] == [t["ttft_ms"] for t in report["turns"]]
    turn = json.loads(run_tracer("turn", "--json", path, "1").stdout)
    assert turn["turn"] == report["turns"][1]
    assert turn["text"] or turn["calls"]
    for command in ("inspect", "cache", "latency"):
        proc = run_tracer(command, path)
        assert proc.returncode == 0 and proc.stdout.strip()


def test_stats_over_many_files_and_bad_input(tmp_path: Path):
    paths = [str(ROOT / "traces" / f"{n}.trace") for n in ("incremental", "full-resend", "http")]
    out = json.loads(run_tracer("stats", "--json", *paths).stdout)
    assert [row["trace"] for row in out["traces"]] == paths
    single = [json.loads(run_tracer("inspect", "--json", p).stdout)["summary"] for p in paths]
    assert out["total"]["summary"]["bytes_sent"] == sum(s["bytes_sent"] for s in single)
    assert out["total"]["summary"]["turns"] == sum(s["turns"] for s in single)
    garbage = tmp_path / "g.trace"
    garbage.write_bytes(b"not a trace at all")
    proc = run_tracer("stats", "--json", paths[0], str(garbage))
    assert proc.returncode == 1
    rows = json.loads(proc.stdout)["traces"]
    assert rows[1]["error"].startswith("not a tracer trace")
    for command in ("inspect", "cache", "latency"):
        assert_clean_error(run_tracer(command, str(garbage)))
    assert_clean_error(run_tracer("turn", paths[0], "999"))


def test_identical_answers_resent_are_both_resent(tmp_path: Path):
    """The demo agent resends its whole history; the upstream answers the same text with
    each of its first two calls, so the history holds two identical assistant messages.
    Every resent copy is resent: only the newest tool output is new, as the creates say."""
    same = "Checking the repository."
    script = replace(
        default_script(),
        turns=(
            TurnScript(text=same, calls=(Call("exec_command", '{"cmd":"ls"}'),)),
            TurnScript(text=same, calls=(Call("exec_command", '{"cmd":"git status"}'),)),
            TurnScript(text="Done."),
        ),
    )
    path = tmp_path / "same.trace"
    log = record_demo(path, script, resend_full_history=True)
    turns = report_of(path).turns
    creates = client_creates(path)
    assert [t.response_id for t in turns] == [e["response_id"] for e in log]
    last = creates[-1]["input"]
    texts = [i for i in last if i.get("role") == "assistant" or i.get("type") == "message"]
    assert sum(json.dumps(i).count(same) for i in texts) == 2  # two identical answers sent
    for t, create in zip(turns, creates, strict=True):
        assert t.input_items == len(create["input"])
        assert t.resent_items == max(0, len(create["input"]) - 1)  # all but the newest item


def test_a_multi_agent_session_names_its_agents(tmp_path: Path):
    """``--profile multi-agent``: the root agent answers and a worker makes the calls."""
    script = replace(default_script(), profile=parse_profile("multi-agent"))
    path = tmp_path / "agents.trace"
    record_demo(path, script)
    turns = [t for t in report_of(path).turns if not t.warmup]
    calls = [bool(script.turn(k).calls) for k in range(len(turns))]
    assert [t.agents for t in turns] == [
        ["/root", "/root/worker"] if called else ["/root"] for called in calls
    ]
