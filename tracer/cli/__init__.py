"""The ``tracer`` command line: thin typer commands over the core."""

from __future__ import annotations

import contextlib
import importlib
import sys

import typer

from tracer.cli.app import app
from tracer.errors import TracerError
from tracer.trace.redact import Redactor

__all__ = ["app", "main"]

_HOMES = {
    "analysis_cmds": ["inspect", "cache", "latency", "turn", "stats", "cost", "findings",
                      "whatif"],
    "capture_cmds": ["record"],
    "diff_cmds": ["diff"],
    "export_cmds": ["export", "import", "query"],
    "replay_cmds": ["replay", "rerun"],
    "trace_cmds": ["verify", "frames", "compact"],
    "tui_cmds": ["tui", "watch", "report"],
    "upstream_cmds": ["upstream", "demo"],
}  # fmt: skip
"""The module that registers each command on ``app`` (importing it does), in --help order."""
_HOME = {name: module for module, names in _HOMES.items() for name in names}


def _register(argv: list[str]) -> None:
    """Import the command modules a run needs: the one that defines the command named in
    ``argv``, or every one (``--help``, no command, a mistyped one). ``tracer record`` so
    never loads the analyses, nor ``tracer inspect`` the proxy and websockets."""
    name = next((a for a in argv if not a.startswith("-")), None)
    home = _HOME.get(name or "")
    for module in [home] if home is not None else _HOMES:
        importlib.import_module(f"tracer.cli.{module}")


_WORDS = {"int": "N", "integer": "N", "int range": "N", "integer range": "N",
          "float": "NUMBER", "float range": "NUMBER", "str": "TEXT", "text": "TEXT",
          "path": "FILE", "filename": "FILE"}  # fmt: skip
"""A parameter type's name (click's ``ParamType.name``, as every typer release keeps it)
to the word ``--help`` shows for it."""
_NAMED = {"listen": "HOST:PORT", "upstream": "URL", "output": "FILE", "file": "FILE",
          "files": "FILE...", "command": "CMD ARGS...", "jobs": "N", "max_frame": "BYTES",
          "flush_interval": "SECONDS", "idle": "SECONDS", "speed": "FACTOR",
          "redact": "REGEX", "allow_origin": "ORIGIN", "keep_header": "NAME",
          "ignore": "PATH", "token": "TOKEN", "script": "FILE"}  # fmt: skip


def _kind(p: object) -> str:
    """The name of ``p``'s type: click's ``ParamType.name`` (typer before 0.29), or the
    same words from typer 0.29's annotation-based descriptor (which has no click type)."""
    desc = getattr(p, "type_descriptor", None)
    if desc is None:
        return str(getattr(getattr(p, "type", None), "name", ""))
    if desc.annotation is bool:
        return "boolean"
    if desc.is_choice:
        return "choice"
    if desc.is_path:
        return "path"
    item = desc.annotation.__args__[0] if desc.is_list else desc.annotation
    return {int: "int", float: "float", str: "str"}.get(item, "")


def _metavars(command: typer.core.TyperGroup) -> None:
    """Metavars in words for ``--help``: none on a flag, FILE or N or HOST:PORT instead of
    <bool>, <path>, <int range> or <str>; an argument's name says it all. Read from each
    parameter's type as :func:`_kind` names it."""
    for sub in [command, *command.commands.values()]:
        help_option = sub.get_help_option(sub.context_class(sub, info_name=sub.name))
        for p in [*sub.params, *([help_option] if help_option is not None else [])]:
            if isinstance(p, typer.core.TyperArgument):  # no type column: FILE says it
                p.__dict__["display_type_rich"] = lambda ctx: None  # typer 0.29
                click_type = getattr(p, "type", None)  # typer before 0.29: its metavar
                if click_type is not None:
                    click_type.__dict__["get_metavar"] = lambda *args, **kwargs: ""
            if p.metavar is not None:
                continue
            kind = _kind(p)
            if getattr(p, "is_flag", False) or kind == "boolean":
                p.metavar = ""
            elif kind == "choice":
                continue  # its choices say it
            elif p.name in _NAMED:
                p.metavar = _NAMED[p.name]
            else:
                p.metavar = _WORDS.get(kind, "VALUE")


_COMMAND: dict[int, typer.core.TyperGroup] = {}


def _command(argv: list[str] | None = None) -> typer.core.TyperGroup:
    """The command group for a run of ``argv`` (all commands when None)."""
    _register([] if argv is None else argv)
    registered = len(app.registered_commands)  # grows as modules load; never shrinks
    if registered not in _COMMAND:
        command = typer.main.get_command(app)
        assert isinstance(command, typer.core.TyperGroup)
        _metavars(command)
        for sub in command.commands.values():  # the list's line: one paragraph, not its breaks
            if sub.short_help is None and sub.help:
                sub.short_help = " ".join(sub.help.split("\n\n", 1)[0].split())
        _COMMAND[registered] = command
    return _COMMAND[registered]


def _error(message: str) -> None:
    # An error may quote what the user typed (an upstream URL with ?key=...): never a secret.
    sys.stderr.write(f"tracer: error: {Redactor().message(message)}\n")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every failure is one line on stderr and a non-zero exit code."""
    try:
        args = sys.argv[1:] if argv is None else argv
        result = _command(args).main(args=args, prog_name="tracer", standalone_mode=False)
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
