"""The recording proxy, in-process: fidelity, concurrency and faults, on real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tracer.capture.proxy import RecordingProxy
from tracer.capture.recorder import Recorder
from tracer.trace import Close, Direction, Frame, Opcode, Open, open_trace
from tracer.upstream import Fault, Script, Timing, TurnScript, UpstreamServer
from tracer.wire import accept_websocket, read_request_head

TERMINAL = {"response.completed", "response.failed", "response.incomplete", "error"}


def read_records(path: Path) -> list:
    with open_trace(path) as reader:
        records = list(reader)
        assert reader.truncated is False
    return records


@contextlib.asynccontextmanager
async def proxied(tmp_path: Path, script: Script | None = None, upstream_url: str | None = None):
    """An upstream (unless a URL is given), a recording proxy in front of it, and the trace."""
    upstream = None
    if upstream_url is None:
        upstream = UpstreamServer(script)
        await upstream.start()
        upstream_url = f"ws://127.0.0.1:{upstream.port}"
    recorder = Recorder(tmp_path / "proxy.trace")
    proxy = RecordingProxy(upstream_url, recorder)
    await proxy.start()
    try:
        yield proxy, recorder
    finally:
        await proxy.close()
        recorder.close()
        if upstream is not None:
            await upstream.close()


def ws_url(proxy: RecordingProxy) -> str:
    return f"ws://127.0.0.1:{proxy.port}/v1/responses"


def test_many_concurrent_connections_are_recorded_apart(tmp_path: Path):
    words = " ".join(f"w{i}" for i in range(300))
    script = Script(
        turns=(TurnScript(text=words),),
        timing=Timing(ttfe_ms=0, ttft_ms=0, tokens_per_s=1e6, jitter=0),
    )
    n_clients = 50

    async def client(proxy, i):
        received = []
        async with connect(ws_url(proxy), compression=None) as ws:
            sent = json.dumps({"type": "response.create", "input": f"client {i}"}).encode()
            await ws.send(sent.decode())
            while True:
                raw = await ws.recv(decode=False)
                received.append(raw)
                if json.loads(raw)["type"] in TERMINAL:
                    break
        return sent, received

    async def main():
        async with proxied(tmp_path, script) as (proxy, _):
            return await asyncio.gather(*(client(proxy, i) for i in range(n_clients)))

    results = asyncio.run(main())
    records = read_records(tmp_path / "proxy.trace")
    opens = [r for r in records if type(r) is Open]
    assert len(opens) == n_clients
    by_conn: dict[int, list[Frame]] = {}
    for r in records:
        if type(r) is Frame and r.opcode in (Opcode.TEXT, Opcode.BINARY):
            by_conn.setdefault(r.conn, []).append(r)
    # Match each client to its connection by the create it sent; every frame is there once,
    # in order, and no frame of another connection is mixed in.
    matched = set()
    for sent, received in results:
        assert len(received) > 300
        conns = [c for c, fs in by_conn.items() if fs[0].payload == sent]
        assert len(conns) == 1
        conn = conns[0]
        matched.add(conn)
        frames = by_conn[conn]
        assert [f.payload for f in frames if f.direction is Direction.CLIENT] == [sent]
        assert [f.payload for f in frames if f.direction is Direction.SERVER] == received
        assert [f.t_ns for f in frames] == sorted(f.t_ns for f in frames)
    assert len(matched) == n_clients


async def _echo_upstream(seen: list, subprotocol: str = "bar"):
    """A tracer.wire server that echoes every data frame as it came (fragments included)."""

    async def handle(reader, writer):
        head = await read_request_head(reader)
        ws = await accept_websocket(reader, writer, head, subprotocols=[subprotocol])
        while (frame := await ws.recv_frame()) is not None:
            seen.append((frame.opcode, bytes(frame.data), frame.fin))
            if frame.opcode.name in ("TEXT", "BINARY", "CONT"):
                await ws.send_frame(frame.opcode, bytes(frame.data), frame.fin)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize("compression", ["deflate", None])
def test_frames_are_forwarded_unchanged(tmp_path: Path, compression):
    seen: list = []

    async def main():
        server, port = await _echo_upstream(seen)
        try:
            upstream = f"ws://127.0.0.1:{port}"
            async with (
                proxied(tmp_path, upstream_url=upstream) as (proxy, _),
                connect(
                    ws_url(proxy) + "?mode=test",
                    subprotocols=["foo", "bar"],
                    compression=compression,
                ) as ws,
            ):
                assert ws.subprotocol == "bar"
                await ws.send(["frag-1 ", "frag-2 ", "frag-3"])  # one fragmented message
                assert await ws.recv() == "frag-1 frag-2 frag-3"
                await ws.send(b"\x00\x01binary\xff")
                assert await ws.recv() == b"\x00\x01binary\xff"
                pong = await ws.ping(b"are you there")
                await asyncio.wait_for(pong, 5)
                await ws.close(4001, "done here")
        finally:
            server.close()

    asyncio.run(main())
    records = read_records(tmp_path / "proxy.trace")
    frames = [r for r in records if type(r) is Frame]
    client = [(f.opcode, f.payload, f.fin) for f in frames if f.direction is Direction.CLIENT]
    # websockets sends a fragmented message as its pieces and an empty final fragment.
    assert client[:5] == [
        (Opcode.TEXT, b"frag-1 ", False),
        (Opcode.CONT, b"frag-2 ", False),
        (Opcode.CONT, b"frag-3", False),
        (Opcode.CONT, b"", True),
        (Opcode.BINARY, b"\x00\x01binary\xff", True),
    ]
    assert (Opcode.PING, b"are you there", True) in client
    assert client[-1][0] is Opcode.CLOSE
    # The upstream saw the same fragments, not a reassembled message.
    assert [(op.name, data, fin) for op, data, fin in seen[:4]] == [
        ("TEXT", b"frag-1 ", False),
        ("CONT", b"frag-2 ", False),
        ("CONT", b"frag-3", False),
        ("CONT", b"", True),
    ]
    server_side = [(f.opcode, f.payload) for f in frames if f.direction is Direction.SERVER]
    assert server_side[:3] == [
        (Opcode.TEXT, b"frag-1 "),
        (Opcode.CONT, b"frag-2 "),
        (Opcode.CONT, b"frag-3"),
    ]
    (open_record,) = [r for r in records if type(r) is Open]
    assert open_record.url == "/v1/responses?mode=test"
    assert open_record.subprotocol == "bar"
    assert open_record.handshake_ns is not None and open_record.handshake_ns > 0
    (close,) = [r for r in records if type(r) is Close]
    assert (close.code, close.reason, close.by) == (4001, "done here", "client")


def test_unreachable_upstream_gives_502_and_a_close_record(tmp_path: Path):
    async def main():
        # A port that was free a moment ago: nothing listens there.
        probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = probe.sockets[0].getsockname()[1]
        probe.close()
        await probe.wait_closed()
        async with proxied(tmp_path, upstream_url=f"ws://127.0.0.1:{port}") as (proxy, _):
            with pytest.raises(InvalidStatus) as info:
                async with connect(ws_url(proxy)):
                    pass
            assert info.value.response.status_code == 502

    asyncio.run(main())
    records = read_records(tmp_path / "proxy.trace")
    (op,) = [r for r in records if type(r) is Open]
    (close,) = [r for r in records if type(r) is Close]
    assert op.status == 502
    assert "cannot connect" in close.error


def test_refused_upgrade_status_is_passed_to_the_client(tmp_path: Path):
    async def refuse(reader, writer):
        await read_request_head(reader)
        body = b'{"error": "bad key"}'
        writer.write(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(refuse, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with proxied(tmp_path, upstream_url=f"ws://127.0.0.1:{port}") as (proxy, _):
                with pytest.raises(InvalidStatus) as info:
                    async with connect(
                        ws_url(proxy), additional_headers={"Authorization": "Bearer sk-wrong"}
                    ):
                        pass
                assert info.value.response.status_code == 401
                assert info.value.response.body == b'{"error": "bad key"}'
        finally:
            server.close()

    asyncio.run(main())
    records = read_records(tmp_path / "proxy.trace")
    (op,) = [r for r in records if type(r) is Open]
    assert op.status == 401
    assert ("Authorization", "Bearer sk-wrong") not in op.request_headers


def test_upstream_close_code_and_drop_reach_the_client(tmp_path: Path):
    closing = Script(
        turns=(
            TurnScript(text="a b c d", fault=Fault(kind="close", after_events=4, code=1013)),
            TurnScript(text="x y z", fault=Fault(kind="drop", after_events=3)),
            TurnScript(text="fine"),
        )
    )

    async def session(proxy, history):
        async with connect(ws_url(proxy)) as ws:
            await ws.send(json.dumps({"type": "response.create", "input": history}))
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    await ws.recv()
            return info.value

    async def main():
        async with proxied(tmp_path, closing) as (proxy, _):
            closed = await session(proxy, "first")
            assert closed.rcvd is not None and closed.rcvd.code == 1013
            assistant = {"role": "assistant", "content": "earlier"}
            dropped = await session(proxy, [{"role": "user", "content": "a"}, assistant])
            assert dropped.rcvd is None  # mirrored as a drop, no close frame
            # The proxy still serves new connections after both faults.
            async with connect(ws_url(proxy)) as ws:
                two = [
                    {"role": "user", "content": "a"},
                    assistant,
                    {"role": "user", "content": "b"},
                ]
                two += [assistant]
                await ws.send(json.dumps({"type": "response.create", "input": two}))
                while json.loads(await ws.recv())["type"] not in TERMINAL:
                    pass

    asyncio.run(main())
    closes = [r for r in read_records(tmp_path / "proxy.trace") if type(r) is Close]
    assert len(closes) == 3
    assert (closes[0].code, closes[0].by, closes[0].error) == (1013, "server", None)
    assert closes[1].by == "server" and closes[1].code is None and closes[1].error
    assert closes[2].by == "client" and closes[2].code == 1000


def test_client_that_disappears_is_recorded_and_the_upstream_released(tmp_path: Path):
    slow = Script(
        turns=(TurnScript(text=" ".join(["slow"] * 50)),),
        timing=Timing(ttfe_ms=0, ttft_ms=0, tokens_per_s=100, jitter=0),
    )

    async def main():
        async with proxied(tmp_path, slow) as (proxy, _):
            _, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            async with connect(ws_url(proxy)) as ws:
                await ws.send(json.dumps({"type": "response.create", "input": "go"}))
                await ws.recv()
                ws.transport.abort()  # the client vanishes mid-response
            writer.close()
            await asyncio.sleep(0.3)
            assert not proxy._sessions  # both sides were released

    asyncio.run(main())
    records = read_records(tmp_path / "proxy.trace")
    (close,) = [r for r in records if type(r) is Close]
    assert close.by == "client" and close.error


def test_stopping_the_proxy_closes_both_sides_with_1001(tmp_path: Path):
    slow = Script(
        turns=(TurnScript(text=" ".join(["slow"] * 50)),),
        timing=Timing(ttfe_ms=0, ttft_ms=0, tokens_per_s=50, jitter=0),
    )

    async def main():
        upstream = UpstreamServer(slow)
        await upstream.start()
        recorder = Recorder(tmp_path / "proxy.trace")
        proxy = RecordingProxy(f"ws://127.0.0.1:{upstream.port}", recorder)
        await proxy.start()
        async with connect(ws_url(proxy)) as ws:
            await ws.send(json.dumps({"type": "response.create", "input": "go"}))
            await ws.recv()
            await proxy.close()
            recorder.close()
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        await upstream.close()

    asyncio.run(main())
    records = read_records(tmp_path / "proxy.trace")
    (close,) = [r for r in records if type(r) is Close]
    assert close.code == 1001
