"""Commands that read a trace file as it is: verify, frames, compact."""

from __future__ import annotations

import enum
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated

import typer

from tracer.cli.app import CLIError, TimeResolution, app
from tracer.cli.options import JsonFlag, TraceFile
from tracer.files import atomic_write
from tracer.trace.caps import frames_cap
from tracer.trace.compact import compact_trace
from tracer.trace.reader import open_trace
from tracer.trace.records import Direction, Frame, Record
from tracer.trace.verify import verify_trace
from tracer.views.frames import frame_json, frame_line
from tracer.views.output import emit_json, emit_json_line, stderr_console, stdout_console
from tracer.views.verify import render_integrity
from tracer.vocab import plural


class Sender(enum.StrEnum):
    """Who sent a frame (``--from``)."""

    CLIENT = "client"
    SERVER = "server"


@app.command()
def verify(file: TraceFile, json: JsonFlag = False) -> int:
    """Check a trace's integrity: records, connections, frames, truncation, first error."""
    try:
        f = open(file, "rb")  # noqa: SIM115
    except OSError as exc:
        raise CLIError(f"cannot open {str(file)!r}: {exc.strerror}") from None
    with f:
        report = verify_trace(f)
    if json:
        emit_json(report.to_json())
    else:
        render_integrity(str(file), report, stdout_console())
    return 0 if report.ok else 1


FRAMES_LIMIT = 100_000  # rows `tracer frames` lists unless told otherwise
PAYLOAD_LIMIT = 1024 * 1024  # payload bytes `tracer frames --json --payload` shows per frame
PAYLOAD_BUDGET = 16 * 1024 * 1024  # and in all, unless --limit 0


@app.command()
def frames(
    file: TraceFile,
    json: JsonFlag = False,
    payload: Annotated[bool, typer.Option(help="With --json, include each payload.")] = False,
    conn: Annotated[int | None, typer.Option(help="Only this connection id.")] = None,
    sender: Annotated[
        Sender | None, typer.Option("--from", help="Only frames sent by this side.")
    ] = None,
    limit: Annotated[
        int,
        typer.Option(min=0, metavar="N", help="Stop after listing N frames (0: list them all)."),
    ] = FRAMES_LIMIT,
    payload_limit: Annotated[
        int,
        typer.Option(
            min=0,
            metavar="BYTES",
            help="With --payload, cut each payload to BYTES and mark it (0: whole payloads).",
        ),
    ] = PAYLOAD_LIMIT,
) -> int:
    """List frames, one line each: time, connection, direction, opcode, size, preview."""
    want_dir = None if sender is None else Direction[sender.name]
    console = None if json else stdout_console()
    markup = console is not None and console.is_terminal
    shown = 0
    printed = 0  # payload bytes printed
    stopped = False
    conns: set[int] = set()
    cut = payload_limit or None
    with open_trace(file, max_frames=frames_cap()) as reader:
        for record in _selected(reader, conns, conn, want_dir):
            if limit and (shown >= limit or printed >= PAYLOAD_BUDGET):
                stopped = True
                break
            shown += 1
            if console is None:
                emit_json_line(frame_json(record, payload=payload, payload_limit=cut))
                printed += min(len(record.payload), cut or len(record.payload)) if payload else 0
            elif markup:
                console.print(frame_line(record, markup=True, width=console.width))
            else:
                sys.stdout.write(frame_line(record, markup=False) + "\n")
        truncated = reader.truncated
    if truncated:
        stderr_console().print(
            f"tracer: warning: {file} is truncated; listed every frame before the cut",
            markup=False,
        )
    if stopped and limit == FRAMES_LIMIT:
        what = f"{shown:,} frames" + (
            f" ({PAYLOAD_BUDGET >> 20} MiB of payloads)" if printed >= PAYLOAD_BUDGET else ""
        )
        stderr_console().print(
            f"tracer: listed the first {what}; --limit 0 lists them all", markup=False
        )
    if conn is not None and conn not in conns and not stopped:
        known = ", ".join(map(str, sorted(conns)[:20])) or "none"
        raise CLIError(f"{file} has no frames of connection {conn} (connections: {known})")
    return 0


def _selected(
    records: Iterable[Record], conns: set[int], conn: int | None, direction: Direction | None
) -> Iterator[Frame]:
    """The frames of ``conn`` sent by ``direction`` (None: any); every connection seen is
    added to ``conns``."""
    for record in records:
        if type(record) is not Frame:
            continue
        conns.add(record.conn)
        if (conn is None or record.conn == conn) and (
            direction is None or record.direction is direction
        ):
            yield record


@app.command()
def compact(
    file: TraceFile,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Write here instead of replacing FILE."),
    ] = None,
    level: Annotated[
        int | None,
        typer.Option(
            min=1, max=22, help="zstd level.", show_default="19; 9 past 32 MiB of payload"
        ),
    ] = None,
    time_resolution: Annotated[
        TimeResolution | None,
        typer.Option(help="Store times in this unit (ns, us or ms); by default, the source's."),
    ] = None,
    json: JsonFlag = False,
) -> int:
    """Recompress a finished trace as one high-level zstd frame (smaller, same records)."""
    target = output or file
    try:
        src = open(file, "rb")  # noqa: SIM115
    except OSError as exc:
        raise CLIError(f"cannot open {str(file)!r}: {exc.strerror}") from None
    with src:
        before = os.fstat(src.fileno()).st_size
        with atomic_write(target) as dst:  # a failure never leaves a half-written trace
            reader = compact_trace(
                src,
                dst,
                level=level,
                time_unit_ns=time_resolution.unit_ns if time_resolution else None,
                max_frames=frames_cap(),
            )
    after = target.stat().st_size
    warning = None
    if after > before:
        warning = (
            f"the compacted trace is larger than the source ({after:,} > {before:,} bytes): "
            f"--level {level or 'by size'} compresses less than the source was; "
            "the default 19 is smallest"
        )
    result = {
        "input": str(file),
        "output": str(target),
        "bytes_before": before,
        "bytes_after": after,
        "records": reader.records,
        "truncated_source": bool(reader.truncated),
        "warning": warning,
    }
    if warning is not None:
        stderr_console().print(f"tracer: warning: {warning}", markup=False, soft_wrap=True)
    if json:
        emit_json(result)
    else:
        stdout_console().print(
            f"{target}: {before:,} → {after:,} bytes ({plural(reader.records, 'record')})"
            + (" [yellow](source was truncated)[/yellow]" if reader.truncated else "")
        )
    return 0
