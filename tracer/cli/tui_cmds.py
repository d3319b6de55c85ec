"""``tracer tui`` and ``tracer watch``: the interactive inspector and the live view."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from tracer.analysis import Session, diff_files, load
from tracer.cli.app import CLIError, app
from tracer.cli.options import JsonFlag, TraceFile
from tracer.files import atomic_write
from tracer.live import check_followable, follow
from tracer.trace.records import Record
from tracer.views.output import emit_json, emit_json_line, stderr_console, warn_truncated
from tracer.vocab import plural, size


def run_inspector(file: Path, against: Path | None) -> int:
    """Open the Textual inspector on a finished trace (``tui`` and ``inspect --interactive``)."""
    from tracer.tui.app import InspectorApp

    loaded = load(file, details=True, contents=against is not None)
    warn_truncated(file, loaded.truncated)
    diff = diff_files(loaded, against)[0] if against is not None else None
    InspectorApp(str(file), loaded.session, against=diff, path=file).run()
    return 0


@app.command()
def tui(
    file: TraceFile,
    against: Annotated[
        Path | None,
        typer.Option("--against", help="Another trace: `d` diffs the selected turn with it."),
    ] = None,
    json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Refused: the inspector is interactive; `tracer inspect FILE --json` prints "
            "the same figures as JSON.",
        ),
    ] = False,
) -> int:
    """Browse a session interactively: turns, their detail and waterfall, raw frames, a diff.

    Keys: arrows move, / filters (text, status:error, type:EVENT, conn:N, loss:), f shows the
    turn's frames (/ searches them), d diffs the turn against --against, q quits.
    """
    if json:
        raise CLIError(
            "tracer tui is interactive and prints no JSON: use `tracer inspect FILE --json` "
            "(or `tracer watch FILE --json` for a trace being recorded)",
            exit_code=2,
        )
    return run_inspector(file, against)


@app.command()
def watch(
    file: TraceFile,
    json: Annotated[
        bool, typer.Option("--json", help="Print JSON Lines: one object per event.")
    ] = False,
    idle: Annotated[
        float | None,
        typer.Option(help="Stop after this many seconds without new data (default: never)."),
    ] = None,
) -> int:
    """Follow a trace while it is being recorded: turns as they end, with running totals.

    Without --json it opens the live inspector; it ends when the recording finishes (or on
    Ctrl-C / q). With --json it prints a `progress` object as records arrive (at most four
    a second), a `turn` object per ended turn and an `end` object with the summary.
    """
    if not json:
        from tracer.tui.app import InspectorApp

        check_followable(file)  # a missing or foreign file: one line, not an empty inspector
        InspectorApp(str(file), live=file).run()
        return 0
    session = Session(details=False)
    last = [0.0]

    def on_batch(batch: list[Record]) -> None:
        ended = session.feed(batch)
        report = session.report() if ended else None
        for t in ended:
            emit_json_line({"event": "turn", "turn": asdict(t)})
        now = time.monotonic()
        if report is not None or now - last[0] >= 0.25:
            last[0] = now
            emit_json_line(_progress(session))
        sys.stdout.flush()

    result = follow(file, on_batch, idle=idle)
    report = session.finish() if result.how == "finished" else session.report()
    emit_json_line({"event": "end", "how": result.how, "summary": asdict(report.summary)})
    if result.how not in ("finished", "idle"):
        raise CLIError(f"{file}: following ended: {result.how}")
    return 0


def _progress(session: Session) -> dict[str, Any]:
    progress = session.report().summary.progress()
    return {"event": "progress", "records": session.records, "in_flight": session.in_flight,
            **progress}  # fmt: skip


@app.command()
def report(
    file: TraceFile,
    other: Annotated[
        Path | None,
        typer.Argument(
            help="A second trace: the report adds the diff of the two.", show_default=False
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="The HTML file to write (default: FILE.html)."),
    ] = None,
    json: JsonFlag = False,
) -> int:
    """Write one self-contained HTML page: summary, waterfall, bytes per turn, turn table.

    It loads nothing from the network, so it opens offline and can be attached to an issue.
    With a second trace, the page adds the turn-by-turn diff.
    """
    from tracer._version import __version__
    from tracer.views.html import render_html

    loaded = load(file, contents=other is not None)
    warn_truncated(file, loaded.truncated, quiet=json)
    result = loaded.report
    diff, b_report = None, None
    if other is not None:
        diff, _, b_side = diff_files(loaded, other)
        b_report = b_side.report
    page = render_html(str(file), result, diff=diff, other=b_report, version=__version__).encode()
    target = output or file.with_suffix(".html")
    try:
        with atomic_write(target) as out:
            out.write(page)
    except OSError as exc:
        raise CLIError(f"cannot write {target}: {exc.strerror or exc}") from None
    info = {"output": str(target), "bytes": len(page), "turns": len(result.turns),
            "diff": other is not None}  # fmt: skip
    if json:
        emit_json(info)
    else:
        stderr_console().print(
            f"wrote {target} ({size(len(page))}, {plural(len(result.turns), 'turn')})",
            markup=False,
        )
    return 0
