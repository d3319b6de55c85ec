"""Commands that meet other tools: export, import, query."""

# Over 400 lines: export, import and query share their option types and helpers here.

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from tracer.analysis.model import Summary
from tracer.cli.app import CLIError, app
from tracer.cli.options import JsonFlag
from tracer.export.parquet import (
    MissingExtra,
    arrow_columns,
    arrow_table,
    require_pyarrow,
)
from tracer.export.registry import FORMATS, ExportFormat, export_trace
from tracer.export.tables import (
    CONNECTION_COLUMNS,
    TURN_COLUMNS,
    columns_of,
    query_tables,
)
from tracer.trace.format import TraceError
from tracer.trace.writer import create_trace
from tracer.views.output import emit_json, stderr_console, stdout_console
from tracer.views.query import render_query
from tracer.vocab import plural

JobsOpt = Annotated[
    int | None,
    typer.Option(
        "--jobs", "-j", min=1, help="Traces processed in parallel.", show_default="one per CPU"
    ),
]


def _run_many(
    fn: Callable[..., dict[str, Any]],
    jobs: list[tuple[Any, ...]],
    workers: int | None,
    label: str,
    show_progress: bool,
) -> list[dict[str, Any]]:
    """Run ``fn(*job)`` for every job, in parallel processes when there are several."""
    if len(jobs) == 1:
        return [fn(*jobs[0])]
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    n = min(workers or os.cpu_count() or 1, len(jobs))
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    errors: list[str] = []
    with (
        concurrent.futures.ProcessPoolExecutor(max_workers=n) as pool,
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=stderr_console(),
            transient=True,
            disable=not show_progress,
        ) as progress,
    ):
        task = progress.add_task(label, total=len(jobs))
        futures = {pool.submit(fn, *job): i for i, job in enumerate(jobs)}
        for fut in concurrent.futures.as_completed(futures):
            i = futures[fut]
            try:
                results[i] = fut.result()
            except (TraceError, OSError, MissingExtra) as exc:
                errors.append(f"{jobs[i][0]}: {exc}")
            progress.advance(task)
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise CLIError(f"{errors[0]}{more}")
    return [r for r in results if r is not None]


def _outputs(files: list[Path], fmt: str, output: str) -> list[str | None]:
    exporter = FORMATS[fmt]
    if exporter.directory:
        if output == "-" or output.endswith(".parquet") or Path(output).is_file():
            raise CLIError(
                f"--format {fmt} writes a directory of tables (turns/, connections/, "
                f"frames/): give -o DIR, not {'stdout' if output == '-' else repr(output)}",
                exit_code=2,
            )
        return [output] * len(files)
    if len(files) == 1:
        return [None if output == "-" else output]
    if output == "-":
        raise CLIError("several traces export into a directory: give -o DIR", exit_code=2)
    out_dir = Path(output)
    if out_dir.exists() and not out_dir.is_dir():
        raise CLIError(f"{output!r} is not a directory (several traces export into one)", 2)
    out_dir.mkdir(parents=True, exist_ok=True)
    seen: dict[str, int] = {}
    outs: list[str | None] = []
    for f in files:
        stem = f.name.removesuffix(".trace")
        k = seen[stem] = seen.get(stem, 0) + 1
        name = stem if k == 1 else f"{stem}-{k}"
        outs.append(str(out_dir / f"{name}{exporter.suffix}"))
    return outs


@app.command()
def export(
    files: Annotated[list[Path], typer.Argument(help="Trace files.", show_default=False)],
    fmt: Annotated[
        ExportFormat, typer.Option("--format", "-f", help="The format to write.")
    ] = ExportFormat.JSONL,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="Output file ('-' for stdout); a directory for parquet or several traces.",
        ),
    ] = "-",
    payload: Annotated[
        bool | None,
        typer.Option(
            "--payload/--no-payload",
            help="Include payloads (jsonl: yes by default; parquet frames: no by default).",
        ),
    ] = None,
    jobs: JobsOpt = None,
    json: JsonFlag = False,
) -> int:
    """Export traces as JSON Lines, HAR, Perfetto trace events, OTLP JSON spans or Parquet."""
    if fmt is ExportFormat.PARQUET:
        try:
            require_pyarrow()
        except MissingExtra as exc:
            raise CLIError(str(exc)) from None
    files = _trace_files(files)  # a directory: the traces in it, as `tracer query` reads them
    outs = _outputs(files, fmt, output)
    if json and None in outs:
        raise CLIError("--json prints a summary on stdout: give -o FILE for the export", 2)
    job_args = [(str(f), str(fmt), out, payload) for f, out in zip(files, outs, strict=True)]
    try:
        results = _run_many(export_trace, job_args, jobs, "exporting", not json)
    except (TraceError, MissingExtra) as exc:
        raise CLIError(str(exc)) from None
    if json:
        emit_json({"format": str(fmt), "exports": results})
    elif None not in outs:
        console = stderr_console()
        for r in results:
            extra = ", ".join(
                f"{v} {k}" for k, v in r.items() if k not in ("trace", "format", "output")
            )
            console.print(f"{r['trace']} → {r['output']} ({extra})", highlight=False)
    return 0


@app.command("import")
def import_(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="HAR files (DevTools, tracer) or VCR.py cassettes: one trace of them all.",
            show_default=False,
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Trace file to write.")],
    json: JsonFlag = False,
) -> int:
    """Import HAR files' and VCR.py cassettes' traffic as one trace (told apart by content)."""
    from tracer.export.foreign import import_recording, merge_imports

    named = []
    for file in files:
        try:
            named.append((str(file), import_recording(file)))
        except TraceError as exc:
            said = str(exc)
            raise CLIError(said if str(file) in said else f"{file}: {said}") from None
    imported = merge_imports(named)
    file = files[0] if len(files) == 1 else Path(", ".join(map(str, files)))
    with create_trace(output, header=imported.header) as writer:
        for record in imported.records:
            writer.write(record)
    result = {
        "har": str(file),
        "files": [str(f) for f in files],
        "trace": str(output),
        "connections": imported.connections,
        "frames": imported.frames,
        "skipped_entries": imported.skipped_entries,
    }
    if json:
        emit_json(result)
    else:
        stdout_console().print(
            f"{file} → {output}: {plural(imported.connections, 'connection')}, "
            f"{plural(imported.frames, 'frame')}"
            + (
                f" ({imported.skipped_entries} other entries skipped)"
                if imported.skipped_entries
                else ""
            ),
            highlight=False,
        )
    return 0


_TRACE_COLUMNS = columns_of(
    Summary, [("trace", "str"), ("trace_id", "str"), ("started_unix_ns", "int"),
              ("truncated", "bool")]
)  # fmt: skip


def _trace_files(paths: list[Path]) -> list[Path]:
    """Files as given, and the ``*.trace`` files under each directory given."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(p.rglob("*.trace"))
            if not found:
                raise CLIError(f"no trace files (*.trace) in the directory {str(p)!r}")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise CLIError(f"cannot open {str(p)!r}: no such file or directory")
    if not files:
        raise CLIError("no trace files found")
    return files


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="SQL over the tables turns, connections, traces.")],
    traces: Annotated[
        list[Path], typer.Argument(help="Trace files or directories of them.", show_default=False)
    ],
    jobs: JobsOpt = None,
    json: JsonFlag = False,
) -> int:
    """Run SQL (DuckDB) over the turns and connections of many traces."""
    try:
        import duckdb
    except ImportError:
        raise CLIError(
            "tracer query needs DuckDB, which is not installed: pip install 'tracer-agents[query]'"
        ) from None
    try:
        require_pyarrow()
    except MissingExtra as exc:
        raise CLIError(str(exc)) from None
    files = _trace_files(traces)
    try:
        loaded = _run_many(query_tables, [(str(f),) for f in files], jobs, "loading", not json)
    except TraceError as exc:
        raise CLIError(str(exc)) from None
    con = duckdb.connect(":memory:")
    tables = {
        "turns": arrow_columns(
            {n: [v for x in loaded for v in x["turns"][n]] for n, _ in TURN_COLUMNS}, TURN_COLUMNS
        ),
        "connections": arrow_table(
            (r for x in loaded for r in x["connections"]), CONNECTION_COLUMNS
        ),
        "traces": arrow_table((r for x in loaded for r in x["traces"]), _TRACE_COLUMNS),
    }
    for name, table in tables.items():
        con.register(name, table)
    try:
        cursor = con.execute(sql)
        columns = [d[0] for d in cursor.description or []]
        rows = cursor.fetchall()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CLIError(f"SQL: {first}") from None
    if json:
        emit_json(
            {
                "columns": columns,
                "rows": [[_jsonable(v) for v in row] for row in rows],
                "traces": len(files),
            }
        )
    else:
        render_query(columns, rows, stdout_console())
    return 0


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    try:
        return float(v)  # Decimal and friends
    except (TypeError, ValueError):
        return str(v)
