"""One turn in full: its request items and its reassembled output (for ``tracer turn``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from tracer.analysis.items import summarise_item
from tracer.analysis.load import batches
from tracer.analysis.model import InspectReport
from tracer.analysis.session import Session
from tracer.trace.records import Record

__all__ = ["summarise_item", "turn_detail"]


def turn_detail(
    records: Iterable[Record], index: int, report: InspectReport, *, everything: bool = False
) -> dict[str, Any]:
    """The request and output of turn ``index`` (as numbered in ``report``): the first
    ``DETAIL_ITEMS`` input items and ``TEXT_LIMIT`` characters of text, or ``everything``."""
    base = next((t for t in report.turns if t.index == index), None)
    if base is None:
        raise IndexError(index)
    session = Session(details=True, everything=everything)
    for batch in batches(records, 256):
        if any(t.index == index for t in session.feed(batch)):
            break  # stop reading once the turn has ended
    session.finish()
    detail = session.detail(index)
    data: dict[str, Any] = {"turn": asdict(base)}
    if detail is not None:
        data.update(detail.to_json())
    return data
