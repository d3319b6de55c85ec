"""Commands that explain a session: inspect, cache, latency, turn, stats, cost, findings,
whatif."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Annotated

import typer

from tracer.analysis import InspectReport, load
from tracer.analysis.findings import find, findings_failures, group
from tracer.analysis.load import active_pricing, load_turn, stats_row
from tracer.analysis.model import Summary, TraceStats
from tracer.cli.app import CLIError, app
from tracer.cli.options import JsonFlag, PricingOpt, TraceFile
from tracer.views.cost import render_cost
from tracer.views.findings import render_findings
from tracer.views.inspect import (
    render_cache,
    render_inspect,
    render_latency,
    render_turn,
)
from tracer.views.output import (
    emit_json,
    note_synthesised,
    stderr_console,
    stdout_console,
    warn_truncated,
)
from tracer.views.stats import render_stats


def load_report(path: Path, *, quiet: bool = False, pricing: Path | None = None) -> InspectReport:
    """Analyse a trace; a truncated one is analysed as far as it goes, with a warning.
    ``pricing``: a pricing file over the default table (``--pricing``)."""
    loaded = load(path, pricing=active_pricing(pricing))
    warn_truncated(path, loaded.truncated, quiet=quiet)
    note_synthesised(path, loaded.header)
    return loaded.report


@app.command()
def inspect(
    file: TraceFile,
    json: JsonFlag = False,
    interactive: Annotated[
        bool, typer.Option("--interactive", "-i", help="Open the interactive inspector (tui).")
    ] = False,
    pricing: PricingOpt = None,
) -> int:
    """The session: summary and one row per turn (context, cache, timing), with a timeline."""
    if interactive and not json:
        from tracer.cli.tui_cmds import run_inspector

        return run_inspector(file, None)
    report = load_report(file, quiet=json, pricing=pricing)
    if json:
        emit_json(report)  # its to_json(), written without the copy
    else:
        render_inspect(report, stdout_console())
    return 0


@app.command()
def cache(file: TraceFile, json: JsonFlag = False) -> int:
    """Context per turn: sent new, resent, referenced; cache losses; the savings."""
    report = load_report(file, quiet=json)
    if json:
        emit_json(report.cache_json())
    else:
        render_cache(report, stdout_console())
    return 0


@app.command()
def latency(file: TraceFile, json: JsonFlag = False) -> int:
    """Where the time went: buckets, percentiles, slowest turns, a waterfall."""
    report = load_report(file, quiet=json)
    if json:
        emit_json(report.latency_json())
    else:
        render_latency(report, stdout_console())
    return 0


@app.command()
def turn(
    file: TraceFile,
    n: Annotated[int, typer.Argument(help="The turn's index (the # column of inspect).")],
    json: JsonFlag = False,
    everything: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Every input item and the whole output text (default: the first 1,000 "
            "items and 256 KiB of text).",
        ),
    ] = False,
) -> int:
    """One turn in full: its request items, its output reassembled, its timings."""
    full, truncated = load_turn(file, n, everything=everything)  # NoSuchTurn: one line
    warn_truncated(file, truncated, quiet=json)
    if json:
        emit_json(full.to_json())
    else:
        render_turn(full, stdout_console())
    return 0


@app.command()
def stats(
    files: Annotated[list[Path], typer.Argument(help="Trace files.", show_default=False)],
    json: JsonFlag = False,
    jobs: Annotated[int, typer.Option(min=1, help="Parallel workers.")] = max(
        1, os.cpu_count() or 1
    ),
) -> int:
    """One summary row per trace and a total, over many files, in parallel."""
    paths = [str(f) for f in files]
    rows: list[TraceStats] = []
    show_progress = not json and len(paths) > 4 and sys.stderr.isatty()
    if jobs == 1 or len(paths) == 1:
        rows = [stats_row(p) for p in paths]
    else:
        with ProcessPoolExecutor(max_workers=min(jobs, len(paths))) as pool:
            results: Iterable[TraceStats] = pool.map(stats_row, paths)
            if show_progress:
                from rich.progress import track

                results = track(results, total=len(paths), console=stderr_console())
            rows = list(results)
    total = TraceStats.totals(rows)
    if json:
        emit_json({"traces": [r.to_json() for r in rows], "total": total.to_json()})
    else:
        render_stats(rows, total, stdout_console())
    return 1 if total.error else 0


@app.command()
def cost(
    files: Annotated[list[Path], typer.Argument(help="Trace files.", show_default=False)],
    json: JsonFlag = False,
    pricing: PricingOpt = None,
) -> int:
    """What each session cost, per model and conversation; what caching saved; resent
    context by reason."""
    table = active_pricing(pricing)
    reports = [(str(f), load_report(f, quiet=json, pricing=pricing)) for f in files]
    if json:
        emit_json(
            {
                "pricing": {"date": table.date, "files": table.sources},
                "traces": [{"trace": name, **report.cost_json()} for name, report in reports],
                "total": Summary.total(report.cost_json()["summary"] for _, report in reports),
            }
        )
    else:
        render_cost(reports, table, stdout_console())
    return 0


@app.command()
def findings(
    files: Annotated[list[Path], typer.Argument(help="Trace files.", show_default=False)],
    json: JsonFlag = False,
    pricing: PricingOpt = None,
    fail_on: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-on",
            help="A finding CODE, or waste_usd>X: exit 3 when the traces have it.",
        ),
    ] = None,
) -> int:
    """What went wrong, what it cost and what to change, ranked; grouped over many traces."""
    found = [(str(f), find(load_report(f, quiet=json, pricing=pricing))) for f in files]
    try:
        failures = findings_failures(found, fail_on or [])
    except ValueError as exc:
        raise CLIError(str(exc), exit_code=2) from None
    if json:
        emit_json(
            {
                "traces": [{"trace": n, "findings": [f.to_json() for f in fs]} for n, fs in found],
                "groups": group(found),
                "failed": failures,
            }
        )
    else:
        render_findings(found, stdout_console())
        for message in failures:
            stderr_console().print(f"tracer: finding: {message}", markup=False)
    return 3 if failures else 0


@app.command()
def whatif(
    file: TraceFile,
    mode: Annotated[
        str,
        typer.Option(
            metavar="websocket-incremental|http-resend",
            help="websocket-incremental: chained over one WebSocket, only new items sent; "
            "http-resend: an HTTP request per turn, each sending its whole context.",
        ),
    ] = "websocket-incremental",
    turns: Annotated[bool, typer.Option("--turns", help="Also one row per turn.")] = False,
    json: JsonFlag = False,
    pricing: PricingOpt = None,
) -> int:
    """What the same session would have sent, cost and waited over another transport (an
    offline projection, estimates marked), side by side with what was recorded."""
    from tracer.analysis.whatif import MODES, project
    from tracer.views.whatif import render_whatif

    if mode not in MODES:
        raise CLIError(f"--mode takes one of {', '.join(MODES)}; not {mode!r}", exit_code=2)
    report = load_report(file, quiet=json, pricing=pricing)
    projection = project(report, mode, active_pricing(pricing))
    if not projection.turns and not json:
        raise CLIError(f"{file} has no Responses API turns: nothing to project", exit_code=1)
    if json:
        emit_json({"trace": str(file), **projection.to_json()})
    else:
        render_whatif(str(file), projection, stdout_console(), turns=turns)
    return 0
