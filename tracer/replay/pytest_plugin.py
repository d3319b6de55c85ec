"""The pytest plugin: replay recorded sessions to your tests, or record them (cassettes).

Registered through the ``pytest11`` entry point, so installing tracer enables it. A test asks
for the ``tracer_replay`` fixture and points its client at ``tracer_replay.base_url``::

    @pytest.mark.tracer_cassette("cassettes/agent.trace")
    def test_agent(tracer_replay):
        client = openai.OpenAI(api_key="unused", base_url=tracer_replay.base_url)
        ...

``--tracer-record`` says what happens (as VCR.py's record modes do):
- ``none`` (default): replay the cassette; a missing cassette fails the test;
- ``once``: replay the cassette if it exists, else record it through the proxy to the real
  upstream (``--tracer-upstream``, default ``wss://api.openai.com``);
- ``all``: always record anew.
A replay that meets a message it cannot match fails the test at teardown.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from tracer.capture.session import RecordingSession
from tracer.replay.recorded import load_connections
from tracer.replay.server import ReplayServer
from tracer.trace.reader import open_trace

__all__ = ["Cassette"]


class _Loop:
    """An event loop in a background thread, for servers used by synchronous tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


class Cassette:
    """What a test gets from ``tracer_replay``: where to connect, and what happened."""

    def __init__(self, path: Path, mode: str, base_url: str) -> None:
        self.path = path
        self.mode = mode  # "replay" or "record"
        self.base_url = base_url  # http://127.0.0.1:PORT/v1, for an OpenAI SDK
        self.mismatches: list[str] = []

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + "/responses"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tracer", "tracer cassettes")
    group.addoption(
        "--tracer-record",
        choices=("none", "once", "all"),
        default="none",
        help="none: replay cassettes; once: record missing ones; all: record every one.",
    )
    group.addoption(
        "--tracer-upstream",
        default="wss://api.openai.com",
        help="Where cassettes are recorded from (with --tracer-record once/all).",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "tracer_cassette(path): the trace file that tracer_replay serves or records"
    )


def _cassette_path(request: pytest.FixtureRequest) -> Path:
    marker = request.node.get_closest_marker("tracer_cassette")
    base = Path(request.node.fspath).parent
    if marker and marker.args:
        path = Path(marker.args[0])
        return path if path.is_absolute() else base / path
    return base / "cassettes" / f"{request.node.name}.trace"


@pytest.fixture
def tracer_replay(request: pytest.FixtureRequest) -> Iterator[Cassette]:
    """A replay server for this test's cassette (or a recording proxy, when recording)."""
    path = _cassette_path(request)
    record_mode = request.config.getoption("--tracer-record")
    record = record_mode == "all" or (record_mode == "once" and not path.exists())
    if not record and not path.exists():
        pytest.fail(f"tracer cassette {path} does not exist (record it: --tracer-record=once)")
    loop = _Loop()
    stop: Callable[[], Coroutine[Any, Any, None]]
    try:
        if record:
            path.parent.mkdir(parents=True, exist_ok=True)
            session = RecordingSession(
                request.config.getoption("--tracer-upstream"),
                path,
                metadata={"source": "pytest", "test": request.node.nodeid},
            )
            loop.run(session.start())
            cassette = Cassette(path, "record", session.base_url)

            async def stop_recording() -> None:
                await session.stop()
                session.finish()

            stop = stop_recording
        else:
            with open_trace(path) as reader:
                recorded = load_connections(reader)
            server = ReplayServer(recorded, speed=0.0)
            loop.run(server.start())
            cassette = Cassette(path, "replay", server.base_url)
            cassette.mismatches = server.stats.mismatches
            stop = server.close
        yield cassette
        loop.run(stop())
    finally:
        loop.stop()
    if cassette.mismatches:
        pytest.fail("tracer replay mismatch: " + "; ".join(cassette.mismatches), pytrace=False)
