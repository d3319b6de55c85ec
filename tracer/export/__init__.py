"""Exports to the formats other tools read, and imports from them.

Each format module takes records (a ``TraceReader``) or the analysis report and returns
plain Python objects or yields lines; ``export.registry`` names every format
(``FORMATS``) and runs one on a trace file (``export_trace``), which is what
``tracer export`` calls.
"""

from __future__ import annotations

from tracer.export.har import export_har, import_har
from tracer.export.jsonl import jsonl_lines
from tracer.export.otlp import export_otlp
from tracer.export.perfetto import export_perfetto
from tracer.export.registry import FORMATS, Exporter, ExportFormat, export_trace
from tracer.export.tables import connection_rows, frame_rows, turn_rows

__all__ = [
    "FORMATS",
    "ExportFormat",
    "Exporter",
    "connection_rows",
    "export_har",
    "export_otlp",
    "export_perfetto",
    "export_trace",
    "frame_rows",
    "import_har",
    "jsonl_lines",
    "turn_rows",
]
