"""The recording session shared by `tracer record` and the pytest plugin."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from websockets.asyncio.client import connect

from tracer.analysis import load
from tracer.capture.session import RecordingSession
from tracer.upstream import running_upstream


def test_a_session_records_finishes_and_compacts(tmp_path: Path):
    out = tmp_path / "s.trace"
    with running_upstream() as upstream:
        session = RecordingSession(f"ws://127.0.0.1:{upstream.port}", out)

        async def main() -> None:
            await session.start()
            async with connect(session.base_url.replace("http", "ws", 1) + "/responses") as ws:
                await ws.send(json.dumps({"type": "response.create", "input": "hi"}))
                while json.loads(await ws.recv())["type"] != "response.completed":
                    pass
            await session.stop()

        asyncio.run(main())
        done = session.finish()
    assert done.integrity.ok and done.compacted and done.compact_error is None
    report = load(out).report
    assert [t.status for t in report.turns] == ["completed"]


def test_a_failed_recompression_is_reported_and_the_trace_kept(tmp_path: Path):
    out = tmp_path / "s.trace"
    session = RecordingSession("ws://127.0.0.1:9", out)
    session.close()
    out.write_bytes(b"not a trace any more")  # what compaction then meets
    done = session.finish()
    assert done.compact_error is not None and "not a tracer trace" in done.compact_error
    assert not done.compacted and not done.integrity.ok
    assert out.read_bytes() == b"not a trace any more"  # left as it was
