"""The ``tracer verify`` report for terminals."""

from __future__ import annotations

from rich.console import Console

from tracer.trace.verify import Integrity
from tracer.vocab import plural

__all__ = ["render_integrity"]


def render_integrity(path: str, report: Integrity, console: Console) -> None:
    if report.ok:
        status = "[green]ok[/green]"
    elif report.truncated and report.error is None:
        status = "[yellow]TRUNCATED[/yellow]"
    else:
        status = "[red]DAMAGED[/red]"
    console.print(f"{path}: {status}")
    console.print(
        f"  format v{report.format_version}, written by tracer {report.tracer_version}"
        if report.format_version
        else "  format: unknown"
    )
    console.print(
        f"  {plural(report.records, 'record')}, {plural(report.connections, 'connection')}, "
        f"{plural(report.frames, 'frame')}, {plural(report.payload_bytes, 'payload byte')}"
    )
    if report.dropped_frames:
        console.print(f"  [yellow]{report.dropped_frames} frames were not recorded[/yellow]")
    if report.truncated_source:
        console.print(
            "  truncated: compacted from a truncated trace (its recorder stopped without "
            "finishing); this copy ends where that one did"
        )
    elif report.truncated:
        console.print("  truncated: the trace ends early (recorder stopped without finishing)")
    if report.error:
        console.print(f"  first error at byte {report.error_offset}: {report.error}")
