"""Exports to the formats other tools read, and imports from them.

Each format module takes records (a ``TraceReader``) or the analysis report and returns
plain Python objects or yields lines; ``export.registry`` names every format
(``FORMATS``) and runs one on a trace file (``export_trace``), which is what
``tracer export`` calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tracer._lazy import lazy_exports

if TYPE_CHECKING:
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

__getattr__ = lazy_exports(  # each format loads on first use: reading a HAR loads no YAML
    __name__,
    {
        "export_har": "tracer.export.har",
        "import_har": "tracer.export.har",
        "jsonl_lines": "tracer.export.jsonl",
        "export_otlp": "tracer.export.otlp",
        "export_perfetto": "tracer.export.perfetto",
        **dict.fromkeys(["FORMATS", "Exporter", "ExportFormat", "export_trace"],
                        "tracer.export.registry"),
        **dict.fromkeys(["connection_rows", "frame_rows", "turn_rows"], "tracer.export.tables"),
    },
)  # fmt: skip
