"""tracer: record, replay, diff and explain WebSocket sessions of AI agents.

The library's front door (see ``docs/api.md``):

- read a trace: ``open_trace``, ``read_trace``;
- analyse it: ``load`` (a file into its report), ``analyse`` (records into a report),
  ``Session`` (records as they arrive), ``diff_files``; the report types
  ``InspectReport``, ``Summary``, ``TurnReport``, ``ConnectionReport``, ``CacheLoss``;
- record a client in-process: ``Recorder`` (a context manager), ``recording_connection_class``
  (for the openai SDK and ``websockets``), ``tap_protocol`` and ``tapping`` (a context
  manager).

Every name loads its module on first use: ``import tracer`` costs nothing, and a recorder
never loads the analyses nor an analysis ``websockets``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from tracer._lazy import lazy_exports
from tracer._version import __version__

if TYPE_CHECKING:
    import os

    from tracer.analysis import (
        CacheLoss,
        ConnectionReport,
        DiffReport,
        InspectReport,
        Loaded,
        Session,
        Summary,
        TurnReport,
        analyse,
        diff_files,
        load,
    )
    from tracer.capture.recorder import Recorder
    from tracer.capture.tap import recording_connection_class, tap_protocol, tapping
    from tracer.trace import Record, TraceError, TraceReader, open_trace

__all__ = [
    "CacheLoss",
    "ConnectionReport",
    "DiffReport",
    "InspectReport",
    "Loaded",
    "Recorder",
    "Session",
    "Summary",
    "TraceError",
    "TraceReader",
    "TurnReport",
    "__version__",
    "analyse",
    "diff_files",
    "load",
    "open_trace",
    "read_trace",
    "recording_connection_class",
    "tap_protocol",
    "tapping",
]


def read_trace(path: str | os.PathLike[str]) -> Iterator[Record]:
    """The records of a trace file, streamed (the file is closed when they run out).
    Raises ``TraceError`` for a file that is not a trace or is damaged."""
    from tracer.trace import open_trace

    with open_trace(path) as reader:
        yield from reader


_LAZY = {  # each layer loads on first use: a recorder never loads the analyses
    **dict.fromkeys(
        [
            "CacheLoss",
            "ConnectionReport",
            "DiffReport",
            "InspectReport",
            "Loaded",
            "Session",
            "Summary",
            "TurnReport",
            "analyse",
            "diff_files",
            "load",
        ],
        "tracer.analysis",
    ),
    **dict.fromkeys(["Record", "TraceError", "TraceReader", "open_trace"], "tracer.trace"),
    "Recorder": "tracer.capture.recorder",
    "recording_connection_class": "tracer.capture.tap",
    "tap_protocol": "tracer.capture.tap",
    "tapping": "tracer.capture.tap",
}
__getattr__ = lazy_exports(__name__, _LAZY)
