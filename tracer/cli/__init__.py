"""The ``tracer`` command line: thin typer commands over the core."""

from __future__ import annotations

import sys

import typer

from tracer.cli.app import CLIError, app
from tracer.trace.format import TraceError

__all__ = ["app", "main"]

# Importing the command modules registers their commands on ``app``.
import contextlib

from tracer.cli import (  # noqa: F401
    analysis_cmds,
    capture_cmds,
    diff_cmds,
    export_cmds,
    replay_cmds,
    trace_cmds,
    tui_cmds,
    upstream_cmds,
)


def _error(message: str) -> None:
    sys.stderr.write(f"tracer: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every failure is one line on stderr and a non-zero exit code."""
    try:
        result = app(args=argv, prog_name="tracer", standalone_mode=False)
    except typer.TyperException as exc:  # usage errors and bad parameters
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        message = exc.format_message() or "a command is needed"  # `tracer` alone
        _error(f"{message}{hint}")
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        _error("interrupted")
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except (TraceError, CLIError) as exc:
        _error(str(exc))
        return getattr(exc, "exit_code", 1)
    except BrokenPipeError:
        return 0  # `tracer frames big.trace | head` is not an error
    except OSError as exc:
        _error(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        return 1
    except Exception as exc:  # a bug: still one line, never a traceback
        _error(f"internal error: {type(exc).__name__}: {exc} (please report this)")
        return 70
    return result if isinstance(result, int) else 0


def run() -> None:
    """Console-script entry point."""
    code = main()
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.flush()
    sys.exit(code)
