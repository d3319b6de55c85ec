"""The pytest plugin: replay recorded sessions to your tests, or record them (cassettes).

Registered through the ``pytest11`` entry point, so installing tracer enables it. A test asks
for the ``tracer_replay`` fixture and points its client at ``tracer_replay.base_url``::

    @pytest.mark.tracer_cassette("cassettes/agent.trace", ignore=["$.metadata.*"])
    def test_agent(tracer_replay):
        client = openai.OpenAI(api_key="unused", base_url=tracer_replay.base_url)
        ...

``--tracer-record`` says what happens (VCR.py's record modes):
- ``none`` (default): replay the cassette; a missing cassette fails the test;
- ``once``: replay the cassette if it exists, else record it through the proxy to the real
  upstream (``--tracer-upstream``, default ``wss://api.openai.com``);
- ``new_episodes``: replay what the cassette holds; a connection or request that matches
  nothing goes to the upstream and is recorded, and appended to the cassette at the end;
- ``all``: always record anew.
A request that matches nothing (in ``none`` and ``once``) gets the mismatch error, which the
client raises inside the test; a test that swallowed it still fails, in its call, with the
mismatch text. A recording in which the test made no request leaves no cassette and fails.
Matching skips the per-run paths of ``DEFAULT_IGNORE`` and those of the marker's ``ignore``
argument and the ``tracer_ignore`` ini option; the marker's ``match`` sets the mode.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from tracer.capture.session import RecordingSession, TraceWriting
from tracer.files import atomic_write
from tracer.replay.recorded import MODES, Ignore, read_recording
from tracer.replay.server import ReplayServer
from tracer.trace.merge import append_trace
from tracer.trace.reader import open_trace
from tracer.trace.records import Open

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
        self.mode = mode  # "replay", "record" or "new_episodes"
        self.base_url = base_url  # http://127.0.0.1:PORT/v1, for an OpenAI SDK
        self.mismatches: list[str] = []

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + "/responses"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tracer", "tracer cassettes")
    group.addoption(
        "--tracer-record",
        choices=RECORD_MODES,
        default="none",
        help="none: replay cassettes; once: record missing ones; new_episodes: record "
        "what matches nothing and append it; all: record every one.",
    )
    group.addoption(
        "--tracer-upstream",
        default="wss://api.openai.com",
        help="Where cassettes are recorded from (with --tracer-record once/all).",
    )

    parser.addini(
        "tracer_ignore",
        type="linelist",
        default=[],
        help="JSON paths replay matching skips in every cassette ($.key, $.metadata.*).",
    )


RECORD_MODES = ("none", "once", "new_episodes", "all")
_CASSETTE = pytest.StashKey["Cassette"]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "tracer_cassette(path, ignore=[...], match='tolerant'): the trace file that "
        "tracer_replay serves or records, the JSON paths matching skips, the match mode",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """A mismatch fails the test in its call, even when the test swallowed the error the
    client raised (the client's own error already fails it, with its traceback)."""
    result = yield
    cassette = item.stash.get(_CASSETTE, None)
    if cassette is not None and cassette.mismatches:
        pytest.fail("tracer replay mismatch: " + "; ".join(cassette.mismatches), pytrace=False)
    return result


def _matching(request: pytest.FixtureRequest) -> tuple[Ignore, str]:
    marker = request.node.get_closest_marker("tracer_cassette")
    kwargs = marker.kwargs if marker else {}
    paths = list(request.config.getini("tracer_ignore")) + list(kwargs.get("ignore", []))
    mode = kwargs.get("match", "tolerant")
    if mode not in MODES:
        pytest.fail(f"tracer_cassette: match takes {', '.join(MODES)}, not {mode!r}")
    try:
        return Ignore(paths), mode
    except ValueError as exc:
        pytest.fail(f"tracer_cassette: {exc}")


def _cassette_path(request: pytest.FixtureRequest) -> Path:
    marker = request.node.get_closest_marker("tracer_cassette")
    base = Path(request.node.fspath).parent
    if marker and marker.args:
        path = Path(marker.args[0])
        return path if path.is_absolute() else base / path
    return base / "cassettes" / f"{cassette_name(request.node.name)}.trace"


def cassette_name(test_name: str) -> str:
    """A test's name as one file name inside ``cassettes/``: a parameter id such as
    ``../x`` or ``a/b`` cannot leave the folder (anything but letters, digits and
    ``_.-[]=,+`` becomes ``_``, and a name cannot start with a dot)."""
    name = re.sub(r"[^A-Za-z0-9_.\-\[\]=,+]", "_", test_name)
    return "_" + name if name.startswith(".") or not name else name


@pytest.fixture
def tracer_replay(request: pytest.FixtureRequest) -> Iterator[Cassette]:
    """A replay server for this test's cassette (or a recording proxy, when recording)."""
    path = _cassette_path(request)
    record_mode = request.config.getoption("--tracer-record")
    upstream = request.config.getoption("--tracer-upstream")
    ignore, mode = _matching(request)
    record = record_mode == "all" or (record_mode in ("once", "new_episodes") and not path.exists())
    if not record and not path.exists():
        pytest.fail(f"tracer cassette {path} does not exist (record it: --tracer-record=once)")
    loop = _Loop()
    metadata = {"source": "pytest", "test": request.node.nodeid}
    session: RecordingSession | None = None
    server: ReplayServer | None = None
    scratch: str | None = None
    try:
        if record:
            path.parent.mkdir(parents=True, exist_ok=True)
            session = RecordingSession(upstream, path, writing=TraceWriting(metadata=metadata))
            loop.run(session.start())
            cassette = Cassette(path, "record", session.base_url)
        else:
            recording = read_recording(path)
            recorded, requests = recording.connections, recording.requests
            fallback = None
            if record_mode == "new_episodes":  # what matches nothing is recorded aside
                fd, scratch = tempfile.mkstemp(suffix=".trace", dir=path.parent)
                os.close(fd)
                session = RecordingSession(
                    upstream, scratch, writing=TraceWriting(metadata=metadata)
                )
                loop.run(session.start())
                fallback = session.base_url.removesuffix("/v1")
            server = ReplayServer(
                recorded, requests=requests, speed=0.0, mode=mode, ignore=ignore,
                fallback=fallback,
            )  # fmt: skip
            loop.run(server.start())
            cassette = Cassette(path, "new_episodes" if fallback else "replay", server.base_url)
            cassette.mismatches = server.stats.mismatches
        request.node.stash[_CASSETTE] = cassette
        yield cassette
        if server is not None:
            loop.run(server.close())
        if session is not None:
            loop.run(session.stop())
            session.finish()
    finally:
        loop.stop()
    if record and session is not None and session.recorder.stats.connections == 0:
        path.unlink(missing_ok=True)
        pytest.fail(
            f"tracer cassette {path}: the test made no request through tracer_replay.base_url,"
            " so nothing was recorded (no cassette written)",
            pytrace=False,
        )
    if scratch is not None:
        _append_episodes(path, scratch)


def _append_episodes(path: Path, scratch: str) -> None:
    """Append what the new_episodes fallback recorded to the cassette, then drop it."""
    try:
        with open_trace(scratch) as reader:
            fresh = any(type(r) is Open for r in reader)
        if fresh:
            with open(path, "rb") as base, open(scratch, "rb") as extra, atomic_write(path) as out:
                append_trace(base, extra, out)
    finally:
        os.unlink(scratch)
