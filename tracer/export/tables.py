"""Flat rows for tables: connections, frames and turns of one trace (Parquet, DuckDB).

Every turn row carries every figure of ``tracer inspect --json`` ``turns[i]``, plus the trace
it came from, so the rows of many traces can be stacked into one table and queried together.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson

from tracer.analysis.load import load
from tracer.analysis.model import ConnectionReport, InspectReport, TurnReport, VoiceReport
from tracer.trace.records import Frame, Header, Record

__all__ = [
    "CONNECTION_COLUMNS",
    "FRAME_COLUMNS",
    "TURN_COLUMNS",
    "FrameTee",
    "columns_of",
    "connection_rows",
    "frame_rows",
    "query_tables",
    "turn_rows",
]


def columns_of(cls: type, extra: list[tuple[str, str]], prefix: str = "") -> list[tuple[str, str]]:
    """(name, type) pairs: type is one of int, float, str, bool, list[str], json. A part
    that is itself a report dataclass (a turn's ``voice``) becomes its own columns, each
    named ``part_field``: null where the turn has no such part."""
    hints = typing.get_type_hints(cls)
    cols = list(extra)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
            hint = args[0]
        if dataclasses.is_dataclass(hint):
            cols += columns_of(hint, [], f"{prefix}{f.name}_")  # type: ignore[arg-type]
            continue
        if hint in (int, float, str, bool):
            kind = hint.__name__
        elif typing.get_origin(hint) is list:
            kind = "list[str]" if typing.get_args(hint) == (str,) else "list[int]"
        else:
            kind = "json"
        cols.append((prefix + f.name, kind))
    return cols


def _flatten(row: dict[str, Any], part: str, cls: type) -> None:
    """A nested part's fields as ``part_field`` columns of the row."""
    value = row.pop(part, None) or {}
    for f in dataclasses.fields(cls):
        row[f"{part}_{f.name}"] = value.get(f.name)


_TRACE_COLUMNS = [("trace", "str"), ("trace_id", "str")]
TURN_COLUMNS = columns_of(TurnReport, [*_TRACE_COLUMNS, ("started_unix_ns", "int")])
CONNECTION_COLUMNS = columns_of(ConnectionReport, _TRACE_COLUMNS)
FRAME_COLUMNS = [
    *_TRACE_COLUMNS,
    ("index", "int"),
    ("conn", "int"),
    ("t", "float"),
    ("t_ns", "int"),
    ("from", "str"),
    ("opcode", "str"),
    ("fin", "bool"),
    ("size", "int"),
]


def trace_id(header: Header) -> str:
    """A stable identifier of a recording: its anchor time (hex ns), unique enough per fleet."""
    return f"{header.anchor_unix_ns:016x}"


def turn_rows(report: InspectReport, header: Header, trace: str) -> list[dict[str, Any]]:
    tid = trace_id(header)
    rows = []
    for t in report.turns:
        row: dict[str, Any] = {"trace": trace, "trace_id": tid}
        row["started_unix_ns"] = header.anchor_unix_ns + t.start_ns
        row.update(dataclasses.asdict(t))
        _flatten(row, "voice", VoiceReport)
        rows.append(row)
    return rows


def connection_rows(report: InspectReport, header: Header, trace: str) -> list[dict[str, Any]]:
    tid = trace_id(header)
    rows = []
    for c in report.connections:
        row: dict[str, Any] = {"trace": trace, "trace_id": tid}
        row.update(dataclasses.asdict(c))
        row["message_types"] = orjson.dumps(row["message_types"]).decode()
        rows.append(row)
    return rows


def frame_rows(
    records: Iterable[Record],
    header: Header,
    trace: str,
    *,
    payload: bool = False,
    start: int = 0,
) -> Iterator[dict[str, Any]]:
    """One row per frame; ``index`` counts from ``start`` (a table written in parts)."""
    tid = trace_id(header)
    index = start
    for r in records:
        if type(r) is not Frame:
            continue
        row = {
            "trace": trace,
            "trace_id": tid,
            "index": index,
            "conn": r.conn,
            "t": r.t_ns / 1e9,
            "t_ns": r.t_ns,
            "from": r.direction.label,
            "opcode": r.opcode.label,
            "fin": r.fin,
            "size": len(r.payload),
        }
        if payload:
            row["payload"] = r.payload
        index += 1
        yield row


class FrameTee:
    """Passes records through to the analysis and their frames, in parts, to the frames
    table: one read feeds both."""

    PART_ROWS = 65_536
    PART_BYTES = 16 * 1024 * 1024

    def __init__(
        self,
        header: Header,
        trace: str,
        payload: bool,
        put: Callable[[list[dict[str, Any]]], None],
    ) -> None:
        self.header, self.trace, self.payload, self.put = header, trace, payload, put
        self.rows = 0

    def records(self, records: Iterable[Record]) -> Iterator[Record]:
        part: list[Record] = []
        held = 0
        for r in records:
            if type(r) is Frame:
                part.append(r)
                held += len(r.payload)
                if len(part) >= self.PART_ROWS or held >= self.PART_BYTES:
                    self._write(part)
                    part, held = [], 0
            yield r
        if part or not self.rows:
            self._write(part)

    def _write(self, part: list[Record]) -> None:
        rows = list(
            frame_rows(part, self.header, self.trace, payload=self.payload, start=self.rows)
        )
        self.put(rows)
        self.rows += len(rows)


def query_tables(path: str) -> dict[str, Any]:
    """The turns, connections and traces rows of one trace (runs in a worker process)."""
    loaded = load(path)
    header, report, truncated = loaded.header, loaded.report, loaded.truncated
    assert header is not None
    summary: dict[str, Any] = {"trace": path, "trace_id": trace_id(header)}
    summary["started_unix_ns"] = header.anchor_unix_ns + report.summary.t0_ns
    summary["truncated"] = truncated
    for name, value in report.to_json()["summary"].items():
        summary[name] = value
    return {
        "trace": path,
        "turns": turn_rows(report, header, path),
        "connections": connection_rows(report, header, path),
        "traces": [summary],
    }
