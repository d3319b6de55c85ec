"""Flat rows for tables: connections, frames and turns of one trace (Parquet, DuckDB).

Every turn row carries every figure of ``tracer inspect --json`` ``turns[i]``, plus the trace
it came from, so the rows of many traces can be stacked into one table and queried together.
"""

from __future__ import annotations

import dataclasses
import itertools
import operator
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson

from tracer.analysis.load import load
from tracer.analysis.model import ConnectionReport, InspectReport, TurnReport
from tracer.trace.reader import FrameRun
from tracer.trace.records import FRAME_KINDS, Frame, Header, Record, kind_byte

__all__ = [
    "CONNECTION_COLUMNS",
    "FRAME_COLUMNS",
    "TURN_COLUMNS",
    "FrameTee",
    "columns_of",
    "connection_rows",
    "frame_rows",
    "query_tables",
    "turn_columns",
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


def turn_columns(report: InspectReport, header: Header, trace: str) -> dict[str, list[Any]]:
    """The turns table of one trace as columns (``TURN_COLUMNS``), from the report's
    columnar view of its turns."""
    n = len(report.turns)
    columns: dict[str, list[Any]] = {"trace": [trace] * n, "trace_id": [trace_id(header)] * n}
    anchor = header.anchor_unix_ns
    columns["started_unix_ns"] = [anchor + t.start_ns for t in report.turns]
    columns.update(report.turn_columns())
    return columns


def turn_rows(report: InspectReport, header: Header, trace: str) -> list[dict[str, Any]]:
    """The turns table of one trace as rows: ``turn_columns``, a dict per turn."""
    columns = turn_columns(report, header, trace)
    return [dict(zip(columns, v, strict=True)) for v in zip(*columns.values(), strict=True)]


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


_FROM: list[str] = [""] * 256  # a frame kind byte's direction, opcode and fin, by value
_OPCODE: list[str] = [""] * 256
_FIN: list[bool] = [True] * 256
for _b, (_d, _op, _fin) in FRAME_KINDS.items():
    _FROM[_b], _OPCODE[_b], _FIN[_b] = _d.label, _op.label, _fin


class FrameTee:
    """Passes a reader's runs through to the analysis and their frames, in parts of
    columns (``FRAME_COLUMNS``), to the frames table: one read feeds both, a frame batch
    taken column by column."""

    PART_ROWS = 65_536
    PART_BYTES = 16 * 1024 * 1024

    def __init__(
        self,
        header: Header,
        trace: str,
        payload: bool,
        put: Callable[[dict[str, list[Any]]], None],
    ) -> None:
        self.header, self.trace, self.payload, self.put = header, trace, payload, put
        self.rows = 0
        self._conn: list[int] = []
        self._t_ns: list[int] = []
        self._kinds = bytearray()
        self._size: list[int] = []
        self._payload: list[bytes] = []
        self._held = 0

    def runs(self, runs: Iterable[FrameRun | tuple[Record, ...]]) -> Iterator[Record | FrameRun]:
        """``runs`` (``TraceReader.runs``) as ``Session.feed`` takes them; their frames go
        to the table on the way."""
        for run in runs:
            if isinstance(run, FrameRun):
                conn, payloads = run.conn, run.payloads
                self._conn += itertools.repeat(conn, run.n) if isinstance(conn, int) else conn
                self._t_ns += run.times
                self._kinds += run.kinds
                self._size += map(len, payloads)
                if self.payload:
                    self._payload += payloads
                self._held += run.payload_bytes
                yield run
            else:
                for r in run:
                    if type(r) is Frame:
                        self._conn.append(r.conn)
                        self._t_ns.append(r.t_ns)
                        self._kinds.append(kind_byte(r.direction, r.opcode, r.fin))
                        self._size.append(len(r.payload))
                        if self.payload:
                            self._payload.append(r.payload)
                        self._held += len(r.payload)
                    yield r
            if len(self._conn) >= self.PART_ROWS or self._held >= self.PART_BYTES:
                self._write()
        if self._conn or not self.rows:
            self._write()

    def _write(self) -> None:
        n, kinds = len(self._conn), self._kinds
        columns: dict[str, list[Any]] = {
            "trace": [self.trace] * n,
            "trace_id": [trace_id(self.header)] * n,
            "index": list(range(self.rows, self.rows + n)),
            "conn": self._conn,
            "t": list(map(operator.truediv, self._t_ns, itertools.repeat(1e9))),
            "t_ns": self._t_ns,
            "from": list(map(_FROM.__getitem__, kinds)),
            "opcode": list(map(_OPCODE.__getitem__, kinds)),
            "fin": list(map(_FIN.__getitem__, kinds)),
            "size": self._size,
        }
        if self.payload:
            columns["payload"] = self._payload
        self.put(columns)
        self.rows += n
        self._conn, self._t_ns, self._kinds, self._size, self._payload = [], [], bytearray(), [], []
        self._held = 0


def query_tables(path: str) -> dict[str, Any]:
    """The turns (as columns), connections and traces rows of one trace (runs in a worker
    process)."""
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
        "turns": turn_columns(report, header, path),
        "connections": connection_rows(report, header, path),
        "traces": [summary],
    }
