"""Loading trace files into reports: the one door from a file to its figures.

Everything that shows a trace (the CLI, the TUI, the HTML report, ``tracer query``) calls
``load``, ``load_turn``, ``stats_row`` or ``diff_files``; the exports stream a trace
through ``export.registry.export_trace``; replay reads it with
``replay.recorded.read_recording``. No command opens a trace to analyse it itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tracer.analysis.model import FullTurn, InspectReport, TraceStats, TurnDetail
from tracer.analysis.pricing import DEFAULT_PRICING, Pricing, load_pricing
from tracer.analysis.session import FRAME_BUDGET, Session
from tracer.errors import TracerError
from tracer.trace.caps import frames_cap
from tracer.trace.format import TraceError
from tracer.trace.reader import FrameRun, open_trace
from tracer.trace.records import Frame, Header, Record

if TYPE_CHECKING:
    from tracer.analysis.diff import DiffReport

__all__ = [
    "Loaded",
    "NoSuchTurn",
    "active_pricing",
    "batches",
    "diff_files",
    "load",
    "load_turn",
    "run_groups",
    "stats_row",
]

_BATCH = 4096  # records per Session.feed call at most
_BATCH_BYTES = 4 * 1024 * 1024  # and payload bytes: a batch of huge frames stays small


@dataclass(slots=True)
class Loaded:
    """A trace file, analysed: its report, the session behind it, and whether it was cut."""

    path: str
    report: InspectReport
    session: Session
    truncated: bool  # the file ends mid-record (a crash): analysed up to the cut
    header: Header | None = None  # the trace's header (its anchor, metadata)


def active_pricing(path: str | os.PathLike[str] | None = None) -> Pricing:
    """The prices figures are computed with: the default table, extended by the file
    ``TRACER_PRICING`` names, then by ``path`` (``--pricing``). ``PricingError`` for a file
    that cannot be read or is not a pricing table."""
    pricing = DEFAULT_PRICING
    for source in (os.environ.get("TRACER_PRICING"), path):
        if source:
            pricing = load_pricing(source, pricing)
    return pricing


def load(
    path: str | os.PathLike[str],
    *,
    details: bool = False,
    contents: bool = False,
    frame_budget: int = FRAME_BUDGET,
    pricing: Pricing | None = None,
) -> Loaded:
    """Read and analyse a whole trace file in one pass. With ``details`` the session keeps
    each turn's detail (``session.detail(i)``), with ``contents`` what a diff compares;
    costs with ``pricing`` (``active_pricing()`` when None). Raises ``TraceError`` for a
    file that is not a trace."""
    session = Session(
        details=details,
        contents=contents,
        frame_budget=frame_budget,
        pricing=pricing if pricing is not None else active_pricing(),
    )
    from tracer.export.foreign import import_recording, is_trace_file

    if not is_trace_file(path):  # a HAR or a cassette: imported in memory
        imported = import_recording(path)
        for batch in batches(imported.records):
            session.feed(batch)
        return Loaded(str(path), session.finish(), session, False, imported.header)
    with open_trace(path, max_frames=frames_cap()) as reader:
        for group in run_groups(reader.runs()):
            session.feed(group)
        truncated = bool(reader.truncated)
        header = reader.header
    report = session.finish()
    return Loaded(str(path), report, session, truncated, header)


def stats_row(path: str, pricing: Pricing | None = None) -> TraceStats:
    """One trace's ``tracer stats`` row: its summary, or the one-line reason it failed."""
    try:
        loaded = load(path, pricing=pricing)
    except TraceError as exc:
        return TraceStats(path, str(exc), False, None)
    return TraceStats(path, None, loaded.truncated, loaded.report.summary)


class NoSuchTurn(TracerError, LookupError):
    """A turn index the trace does not have (``path``, ``index``, ``turns``)."""

    def __init__(self, path: str, index: int, turns: int) -> None:
        self.path, self.index, self.turns = path, index, turns
        held = f"{turns} turns (0 to {turns - 1})" if turns else "no turns"
        super().__init__(f"{path} has {held}; there is no turn {index}")


def load_turn(
    path: str | os.PathLike[str],
    index: int,
    *,
    everything: bool = False,
    pricing: Pricing | None = None,
) -> tuple[FullTurn, bool]:
    """Turn ``index`` in full, read in one pass that stops once the turn has ended (the
    first ``DETAIL_ITEMS`` input items and ``TEXT_LIMIT`` characters of text, or
    ``everything``); and whether the file is truncated. Raises ``NoSuchTurn``."""
    session = Session(
        details=True,
        everything=everything,
        pricing=pricing if pricing is not None else active_pricing(),
    )
    found = None
    with open_trace(path, max_frames=frames_cap()) as reader:
        for batch in batches(reader, 256):
            found = next((t for t in session.feed(batch) if t.index == index), None)
            if found is not None:
                break  # stop reading once the turn has ended
        truncated = bool(reader.truncated)
    report = session.finish()
    if found is None:
        found = next((t for t in report.turns if t.index == index), None)
    if found is None:
        raise NoSuchTurn(str(path), index, len(report.turns))
    detail = session.detail(index) or TurnDetail(index=index, input=[], request_fields={})
    return FullTurn(found, detail), truncated


def batches(
    records: Iterable[Record], count: int = _BATCH, size: int = _BATCH_BYTES
) -> Iterator[list[Record]]:
    """Records in lists of at most ``count`` records or about ``size`` payload bytes, so
    that a batch of frames of a mebibyte each holds a few of them, not thousands."""
    batch: list[Record] = []
    held = 0
    for record in records:
        batch.append(record)
        if type(record) is Frame:
            held += len(record.payload)
        if len(batch) >= count or held >= size:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch


def run_groups(
    runs: Iterable[FrameRun | tuple[Record, ...]], count: int = _BATCH, size: int = _BATCH_BYTES
) -> Iterator[list[Record | FrameRun]]:
    """A reader's runs (``TraceReader.runs``) in lists of about ``count`` frames or ``size``
    payload bytes, a frame batch kept whole, for ``Session.feed`` to read a batch at a
    time."""
    group: list[Record | FrameRun] = []
    frames = held = 0
    for run in runs:
        if isinstance(run, FrameRun):
            group.append(run)
            frames += run.n
            held += run.payload_bytes
        else:
            group += run
            frames += len(run)
        if frames >= count or held >= size:
            yield group
            group, frames, held = [], 0, 0
    if group:
        yield group


def diff_files(
    a: str | os.PathLike[str] | Loaded,
    b: str | os.PathLike[str] | Loaded,
    pricing: Pricing | None = None,
) -> tuple[DiffReport, Loaded, Loaded]:
    """The turn-by-turn diff of two trace files, each read once (or already loaded with
    ``contents``); also returns both sides."""
    from tracer.analysis.diff import diff_sessions  # (only a diff needs it)

    sides = [x if isinstance(x, Loaded) else load(x, contents=True, pricing=pricing)
             for x in (a, b)]  # fmt: skip
    la, lb = sides
    result = diff_sessions(
        la.path, la.report, la.session.contents(), lb.path, lb.report, lb.session.contents()
    )
    return result, la, lb
