"""``tracer diff``: two sessions, turn by turn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tracer.analysis import diff_files
from tracer.analysis.diff import parse_fail_on
from tracer.analysis.load import active_pricing
from tracer.cli.app import CLIError, app
from tracer.cli.options import JsonFlag, PricingOpt
from tracer.views.diff import render_diff
from tracer.views.output import (
    emit_json,
    shallow,
    stderr_console,
    stdout_console,
    warn_truncated,
)

EXIT_REGRESSION = 3


@app.command()
def diff(
    a: Annotated[Path, typer.Argument(help="The baseline trace.", show_default=False)],
    b: Annotated[Path, typer.Argument(help="The trace to compare with it.", show_default=False)],
    fail_on: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-on",
            help="METRIC>T or METRIC<T (T: a number, N% or Nms): exit 3 when B is worse.",
        ),
    ] = None,
    json: JsonFlag = False,
    pricing: PricingOpt = None,
) -> int:
    """Align two sessions' turns and show what changed: context, cache, latency, content."""
    try:
        conditions = [parse_fail_on(text) for text in fail_on or []]
    except ValueError as exc:
        raise CLIError(str(exc), exit_code=2) from None
    result, la, lb = diff_files(a, b, active_pricing(pricing))
    for side in (la, lb):
        warn_truncated(side.path, side.truncated, quiet=json)
    failures = [msg for c in conditions if (msg := c.check(result))]
    if json:
        emit_json({**shallow(result), "failed": failures})  # to_json(), not copied
    else:
        render_diff(result, stdout_console())
        for msg in failures:
            stderr_console().print(f"tracer: regression: {msg}", markup=False)
    if failures:
        return EXIT_REGRESSION
    return 0
