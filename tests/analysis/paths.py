"""A trace's report read both ways: frame by frame, and a frame batch at a time."""

from __future__ import annotations

import json
import os

from tracer.analysis.load import batches, run_groups
from tracer.analysis.session import Session
from tracer.trace.reader import open_trace


def report_json(path: str | os.PathLike[str], *, by_batch: bool, **options: bool) -> str:
    """The report of ``path`` as canonical JSON, its frames fed one by one (``by_batch``
    False: the reader's records) or as the reader's frame batches (``FrameRun``)."""
    session = Session(**options)
    with open_trace(path) as reader:
        for group in run_groups(reader.runs()) if by_batch else batches(reader):
            session.feed(group)
    return json.dumps(session.finish().to_json(), sort_keys=True, default=str)


def assert_both_paths_agree(path: str | os.PathLike[str]) -> None:
    """Every figure of the report is the same read either way."""
    rows = report_json(path, by_batch=False)
    assert json.loads(rows)["summary"] is not None
    assert report_json(path, by_batch=True) == rows, path
