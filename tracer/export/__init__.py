"""Exports to the formats other tools read, and imports from them (no I/O of their own).

Each exporter takes records (a ``TraceReader``) or the analysis report and returns plain
Python objects or yields lines; the CLI writes them to files.
"""

from __future__ import annotations

from tracer.export.har import export_har, import_har
from tracer.export.jsonl import jsonl_lines
from tracer.export.otlp import export_otlp
from tracer.export.perfetto import export_perfetto
from tracer.export.tables import connection_rows, frame_rows, turn_rows

__all__ = [
    "connection_rows",
    "export_har",
    "export_otlp",
    "export_perfetto",
    "frame_rows",
    "import_har",
    "jsonl_lines",
    "turn_rows",
]
