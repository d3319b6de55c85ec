"""The export formats, one entry each: what ``tracer export -f NAME`` and the library run.

``FORMATS`` maps a format's name to an ``Exporter``: its file suffix, whether it writes a
directory (Parquet: one table per directory) or holds every frame until it writes, and the
function that exports one trace. ``export_trace`` opens the trace (streamed, once), runs
the exporter and says what it wrote; the CLI only picks the paths and prints the result.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import orjson

from tracer.analysis.session import analyse
from tracer.export.har_write import write_har
from tracer.export.jsonl import jsonl_lines
from tracer.export.otlp import export_otlp
from tracer.export.perfetto import export_perfetto
from tracer.files import atomic_write
from tracer.trace.caps import frames_cap
from tracer.trace.reader import TraceReader, open_trace

__all__ = ["FORMATS", "ExportFormat", "Exporter", "export_trace"]


class ExportFormat(StrEnum):
    """The names ``tracer export -f`` takes."""

    JSONL = "jsonl"
    HAR = "har"
    PERFETTO = "perfetto"
    OTLP = "otlp"
    PARQUET = "parquet"
    VCR = "vcr"


@dataclass(frozen=True, slots=True)
class Exporter:
    """One export format."""

    name: str
    suffix: str  # of the file written for a trace in an output directory
    run: Callable[[TraceReader, Path | None, str, bool | None], dict[str, Any]]
    directory: bool = False  # -o names a directory of tables, never a file
    in_memory: bool = False  # holds every frame until it writes (a frames cap applies)


@contextlib.contextmanager
def _sink(dest: Path | None) -> Iterator[IO[bytes]]:
    """Where an export goes: stdout, or a file written whole or not at all (0600)."""
    if dest is None:
        yield sys.stdout.buffer
        sys.stdout.flush()
        return
    with atomic_write(dest) as f:
        yield f


def _jsonl(
    reader: TraceReader, dest: Path | None, path: str, payload: bool | None
) -> dict[str, Any]:
    frames = 0
    with _sink(dest) as sink:
        for line in jsonl_lines(reader, payload=payload is not False):
            sink.write(line)
            frames += 1
    return {"frames": frames}


def _har(reader: TraceReader, dest: Path | None, path: str, payload: bool | None) -> dict[str, Any]:
    with _sink(dest) as sink:  # streamed: payloads are spilled, never held together
        written = write_har(reader.header, reader, sink)
    return {"entries": written.entries, "bytes": written.bytes}


def _vcr(reader: TraceReader, dest: Path | None, path: str, _: bool | None) -> dict[str, Any]:
    from tracer.export.vcr import export_vcr

    text, interactions = export_vcr(reader)
    data = text.encode()
    with _sink(dest) as sink:
        sink.write(data)
    return {"interactions": interactions, "bytes": len(data)}


def _json_doc(doc: Any, dest: Path | None) -> int:
    data = orjson.dumps(doc) + b"\n"
    with _sink(dest) as sink:
        sink.write(data)
    return len(data)


def _perfetto(reader: TraceReader, dest: Path | None, path: str, _: bool | None) -> dict[str, Any]:
    report = analyse(reader)
    doc = export_perfetto(report, title=f"tracer: {Path(path).name}")
    return {"events": len(doc["traceEvents"]), "turns": report.summary.turns,
            "bytes": _json_doc(doc, dest)}  # fmt: skip


def _otlp(reader: TraceReader, dest: Path | None, path: str, _: bool | None) -> dict[str, Any]:
    report = analyse(reader)
    source = reader.header.metadata.get("source")
    service = source if isinstance(source, str) and source else "agent"
    doc = export_otlp(report, reader.header, service_name=service)
    spans = len(doc["resourceSpans"][0]["scopeSpans"][0]["spans"])
    return {"spans": spans, "turns": report.summary.turns, "bytes": _json_doc(doc, dest)}


PARQUET_SCHEMA_VERSION = 2
"""The Parquet tables' layout and columns (docs/export.md); 2: Hive-style partitions."""


def _partition(value: Any) -> str:
    """A Hive partition value: every byte but letters, digits and ``-_.`` percent-escaped
    (Hive escapes fewer; Spark, Trino and DuckDB unescape ``%XX`` alike)."""
    text = str(value) if value not in (None, "") else "unknown"
    return quote(text, safe="-_.")


def _parquet(
    reader: TraceReader, dest: Path | None, path: str, payload: bool | None
) -> dict[str, Any]:
    """OUT/{turns,connections,frames}/date=DAY/[model=MODEL/]<name>.parquet, partitioned
    as Hive lays tables out (the trace's start day; each turn's model); the frames table is
    written as the trace is read, in row groups: its payloads are never held together."""
    from tracer.export.parquet import arrow_columns, arrow_table, parquet_parts, write_parquet
    from tracer.export.tables import (
        CONNECTION_COLUMNS,
        FRAME_COLUMNS,
        TURN_COLUMNS,
        FrameTee,
        connection_rows,
        turn_columns,
    )

    assert dest is not None
    _write_schema(dest)
    name = f"{Path(path).name.removesuffix('.trace')}.parquet"
    frame_cols = FRAME_COLUMNS + ([("payload", "bytes")] if payload else [])
    header = reader.header
    day = f"date={dt.datetime.fromtimestamp(header.anchor_unix_ns / 1e9, dt.UTC).date()}"
    with parquet_parts(dest / "frames" / day / name, frame_cols) as put:
        tee = FrameTee(header, path, bool(payload), put)
        report = analyse(tee.runs(reader.runs()))
    connections = arrow_table(connection_rows(report, header, path), CONNECTION_COLUMNS)
    write_parquet(connections, dest / "connections" / day / name)
    columns = turn_columns(report, header, path)
    by_model: dict[str, list[int]] = {}
    for i, model in enumerate(columns["model"]):
        by_model.setdefault(_partition(model), []).append(i)
    turn_cols = [c for c in TURN_COLUMNS if c[0] != "model"]  # the partition holds it
    for model, rows in by_model.items():
        part = {n: [columns[n][i] for i in rows] for n, _ in turn_cols}
        table = arrow_columns(part, turn_cols)
        write_parquet(table, dest / "turns" / day / f"model={model}" / name)
    return {"frames": tee.rows, "turns": len(report.turns), "connections": connections.num_rows}


def _write_schema(dest: Path) -> None:
    """OUT/_tracer_schema.json: the layout's version and each table's columns (the leading
    underscore keeps it out of Spark's, Trino's and DuckDB's reads)."""
    from tracer.export.tables import CONNECTION_COLUMNS, FRAME_COLUMNS, TURN_COLUMNS

    doc = {
        "schema_version": PARQUET_SCHEMA_VERSION,
        "partitions": {"turns": ["date", "model"], "connections": ["date"], "frames": ["date"]},
        "tables": {"turns": TURN_COLUMNS, "connections": CONNECTION_COLUMNS,
                   "frames": [*FRAME_COLUMNS, ("payload", "bytes")]},
    }  # fmt: skip
    from tracer.export.parquet import private_dirs

    private_dirs(dest)
    with atomic_write(dest / "_tracer_schema.json") as out:
        out.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2))


FORMATS: dict[str, Exporter] = {
    e.name: e
    for e in (
        Exporter(ExportFormat.JSONL, ".jsonl", _jsonl),
        Exporter(ExportFormat.HAR, ".har", _har, in_memory=True),
        Exporter(ExportFormat.PERFETTO, ".perfetto.json", _perfetto),
        Exporter(ExportFormat.OTLP, ".otlp.json", _otlp),
        Exporter(ExportFormat.PARQUET, "", _parquet, directory=True),
        Exporter(ExportFormat.VCR, ".yaml", _vcr, in_memory=True),
    )
}
assert set(FORMATS) == set(ExportFormat)


def export_trace(path: str, fmt: str, out: str | None, payload: bool | None) -> dict[str, Any]:
    """Export one trace in format ``fmt`` to ``out`` (None: stdout); what was written.
    Raises ``TraceError`` for a file that is not a trace, ``KeyError`` for an unknown
    format."""
    exporter = FORMATS[fmt]
    dest = Path(out) if out is not None else None
    result: dict[str, Any] = {"trace": path, "format": fmt, "output": out or "-"}
    with open_trace(path, max_frames=frames_cap(in_memory=exporter.in_memory)) as reader:
        result.update(exporter.run(reader, dest, path, payload))
        if reader.truncated:
            result["truncated"] = True
    return result
