"""docs/api.md's examples run as they are, and the front door holds what it says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tracer.trace import Footer, open_trace

DOC = ROOT / "docs" / "api.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_doc_has_examples():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("code", BLOCKS, ids=[f"example{i}" for i in range(len(BLOCKS))])
def test_every_example_runs(code: str, tmp_path: Path):
    (tmp_path / "traces").symlink_to(ROOT / "traces")
    (tmp_path / "README.md").symlink_to(ROOT / "README.md")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's tracer, wherever installed
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip(), "an example prints what it found"
    assert "Traceback" not in proc.stderr


def test_the_front_door_exports_what_the_doc_lists():
    import tracer

    listed = set(re.findall(r"^\| `([A-Za-z_]+)", DOC.read_text(), re.M))
    for name in listed:
        assert hasattr(tracer, name), name
        assert getattr(tracer, name).__doc__, f"{name} has no docstring"
    assert set(tracer.__all__) >= listed


def test_a_recorder_finishes_its_trace_when_the_code_inside_raises(tmp_path: Path):
    from tracer import Recorder

    path = tmp_path / "t.trace"
    with pytest.raises(RuntimeError), Recorder(path) as recorder:
        recorder.open_connection("/v1/responses")
        raise RuntimeError("the agent failed")
    with open_trace(path) as reader:
        records = list(reader)
        assert not reader.truncated
        assert isinstance(reader.footer, Footer) and reader.footer.connections == 1
    assert len(records) == 1


def test_a_tap_ends_its_connection_in_the_trace_when_its_block_raises(tmp_path: Path):
    from websockets.sync.client import connect

    from tracer import Recorder, load, tapping
    from tracer.upstream import running_upstream

    path = tmp_path / "t.trace"
    with (
        running_upstream() as upstream,
        Recorder(path) as recorder,
        pytest.raises(RuntimeError),
        connect(upstream.ws_url) as ws,
        tapping(ws, recorder),
    ):
        ws.send('{"type": "response.create", "input": "hi"}')
        raise RuntimeError("the agent failed")
    (conn,) = load(path).report.connections
    assert conn.close_error == "the tap ended before the connection did"
