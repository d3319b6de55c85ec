"""Analyses of a session: turn metrics, context (cache) and latency accounting (sans-I/O)."""

from __future__ import annotations

from tracer.analysis.report import (
    CacheLoss,
    ConnectionReport,
    InspectReport,
    Summary,
    TurnReport,
    analyse,
    canonical_item,
)

__all__ = [
    "CacheLoss",
    "ConnectionReport",
    "InspectReport",
    "Summary",
    "TurnReport",
    "analyse",
    "canonical_item",
]
