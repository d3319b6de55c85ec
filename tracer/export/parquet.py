"""Arrow tables and Parquet files of the tables in ``tables`` (needs the ``parquet`` extra)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from tracer.errors import TracerError
from tracer.files import atomic_write

__all__ = [
    "MissingExtra",
    "arrow_columns",
    "arrow_table",
    "parquet_parts",
    "private_dirs",
    "require_pyarrow",
    "write_parquet",
]


class MissingExtra(TracerError):
    """An optional dependency is not installed; the message says how to install it."""


def require_pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError:
        raise MissingExtra(
            "Parquet needs pyarrow, which is not installed: pip install 'tracer-agents[parquet]'"
        ) from None
    return pyarrow


def _arrow_type(pa: Any, kind: str) -> Any:
    return {
        "int": pa.int64(),
        "float": pa.float64(),
        "str": pa.string(),
        "bool": pa.bool_(),
        "json": pa.string(),
        "list[str]": pa.list_(pa.string()),
        "list[int]": pa.list_(pa.int64()),
        "bytes": pa.binary(),
    }[kind]


def arrow_table(rows: Iterable[dict[str, Any]], columns: list[tuple[str, str]]) -> Any:
    """A ``pyarrow.Table`` with exactly ``columns`` (name, kind), typed even when empty. A
    ``json`` column's values that are not text yet are written as JSON text."""
    pa = require_pyarrow()
    schema = pa.schema([(name, _arrow_type(pa, kind)) for name, kind in columns])
    as_json = [name for name, kind in columns if kind == "json"]
    table = list(rows)
    for row in table:
        for name in as_json:
            value = row.get(name)
            if value is not None and not isinstance(value, str):
                row[name] = orjson.dumps(value).decode()
    return pa.Table.from_pylist(table, schema=schema)


def arrow_columns(columns: dict[str, list[Any]], spec: list[tuple[str, str]]) -> Any:
    """A ``pyarrow.Table`` of exactly the ``spec`` columns (name, kind) taken from
    ``columns`` (name -> values); a ``json`` column's values that are not text yet are
    written as JSON text."""
    pa = require_pyarrow()
    schema = pa.schema([(name, _arrow_type(pa, kind)) for name, kind in spec])
    data: dict[str, list[Any]] = {}
    for name, kind in spec:
        values = columns[name]
        if kind == "json":
            values = [v if v is None or isinstance(v, str) else orjson.dumps(v).decode()
                      for v in values]  # fmt: skip
        data[name] = values
    return pa.Table.from_pydict(data, schema=schema)


def private_dirs(folder: Path) -> None:
    """Create ``folder`` and every missing folder above it 0700 (``mkdir(parents=True)``
    would give the ones above the default mode)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for each in reversed(missing):
        each.mkdir(mode=0o700, exist_ok=True)


def write_parquet(table: Any, path: Path) -> None:
    """Write a table whole or not at all, 0600 (with ``--payload`` it holds every payload),
    in folders created 0700."""
    import pyarrow.parquet as pq

    private_dirs(path.parent)
    with atomic_write(path) as out:
        pq.write_table(table, out, compression="zstd")


@contextlib.contextmanager
def parquet_parts(
    path: Path, columns: list[tuple[str, str]]
) -> Iterator[Callable[[dict[str, list[Any]]], None]]:
    """A function that appends columns (name -> values) to a Parquet file as a row group
    each call: a large
    table (frames with their payloads) is written as it is read, never held whole. The
    file is 0600 and appears whole when the block ends, or not at all."""
    pa = require_pyarrow()
    import pyarrow.parquet as pq

    schema = pa.schema([(name, _arrow_type(pa, kind)) for name, kind in columns])
    private_dirs(path.parent)
    with atomic_write(path) as out:
        writer = pq.ParquetWriter(out, schema, compression="zstd")
        try:
            yield lambda part: writer.write_table(pa.Table.from_pydict(part, schema=schema))
        finally:
            writer.close()
