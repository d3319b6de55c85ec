"""The analysis of a session (sans-I/O): turn metrics, context (cache) and latency.

The one boundary between trace files and what shows them: ``load`` (a file into a report),
``diff_files``, ``analyse`` (records into a report) and the streaming ``Session``; the
report model (``InspectReport`` and its parts) owns every figure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tracer._lazy import lazy_exports
from tracer.analysis.items import identity, json_bytes, summarise_item
from tracer.analysis.load import Loaded, diff_files, load
from tracer.analysis.model import (
    CacheLoss,
    ConnectionReport,
    InspectReport,
    Summary,
    TurnDetail,
    TurnReport,
)
from tracer.analysis.session import FRAME_BUDGET, Session, analyse, select_frames

if TYPE_CHECKING:
    from tracer.analysis.diff import DiffReport, TurnDiff

# The diff's model loads with the first use of its names: `tracer inspect` never needs it.
__getattr__ = lazy_exports(
    __name__, {"DiffReport": "tracer.analysis.diff", "TurnDiff": "tracer.analysis.diff"}
)

__all__ = [
    "FRAME_BUDGET",
    "CacheLoss",
    "ConnectionReport",
    "DiffReport",
    "InspectReport",
    "Loaded",
    "Session",
    "Summary",
    "TurnDetail",
    "TurnDiff",
    "TurnReport",
    "analyse",
    "diff_files",
    "identity",
    "json_bytes",
    "load",
    "select_frames",
    "summarise_item",
]
