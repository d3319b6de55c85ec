"""The ``tracer`` command line: thin typer commands over the core."""

from __future__ import annotations

import sys

import typer

from tracer.cli.app import app
from tracer.errors import TracerError
from tracer.trace.redact import Redactor

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

_WORDS = {int: "N", float: "NUMBER", str: "TEXT"}
_NAMED = {"listen": "HOST:PORT", "upstream": "URL", "output": "FILE", "file": "FILE",
          "files": "FILE...", "command": "CMD ARGS...", "jobs": "N", "max_frame": "BYTES",
          "flush_interval": "SECONDS", "idle": "SECONDS", "speed": "FACTOR",
          "redact": "REGEX", "allow_origin": "ORIGIN", "keep_header": "NAME",
          "ignore": "PATH", "token": "TOKEN", "script": "FILE"}  # fmt: skip


def _metavars(command: typer.core.TyperGroup) -> None:
    """Metavars in words for ``--help``: none on a flag, FILE or N or HOST:PORT instead of
    <bool>, <path>, <int range> or <str>; an argument's name says it all."""
    for sub in [command, *command.commands.values()]:
        help_option = sub.get_help_option(sub.context_class(sub, info_name=sub.name))
        for p in [*sub.params, *([help_option] if help_option is not None else [])]:
            if isinstance(p, typer.core.TyperArgument):
                p.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
            if p.metavar is not None:
                continue
            desc = p.type_descriptor  # type: ignore[attr-defined]
            if getattr(p, "is_flag", False) or desc.annotation is bool:
                p.metavar = ""
            elif desc.is_choice:
                continue  # its choices say it
            elif p.name in _NAMED:
                p.metavar = _NAMED[p.name]
            elif desc.is_path:
                p.metavar = "FILE"
            else:
                base = desc.annotation
                item = base.__args__[0] if desc.is_list else base
                p.metavar = _WORDS.get(item, "VALUE")


_COMMAND: list[typer.core.TyperGroup] = []


def _command() -> typer.core.TyperGroup:
    if not _COMMAND:
        command = typer.main.get_command(app)
        assert isinstance(command, typer.core.TyperGroup)
        _metavars(command)
        _COMMAND.append(command)
    return _COMMAND[0]


def _error(message: str) -> None:
    # An error may quote what the user typed (an upstream URL with ?key=...): never a secret.
    sys.stderr.write(f"tracer: error: {Redactor().message(message)}\n")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every failure is one line on stderr and a non-zero exit code."""
    try:
        result = _command().main(args=argv, prog_name="tracer", standalone_mode=False)
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
    except TracerError as exc:  # what a user can act on: its one line, its exit code
        _error(str(exc))
        return exc.exit_code
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
