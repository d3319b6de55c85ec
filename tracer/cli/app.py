"""The typer application every command module registers on."""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from tracer.errors import TracerError

__all__ = ["AllowOrigin", "CLIError", "TimeResolution", "app"]


class TimeResolution(enum.StrEnum):
    """The unit a written trace stores times in (``--time-resolution``)."""

    ns = "ns"
    us = "us"
    ms = "ms"

    @property
    def unit_ns(self) -> int:
        """Nanoseconds per stored unit."""
        return {"ns": 1, "us": 1_000, "ms": 1_000_000}[self.value]


class CLIError(TracerError):
    """A command cannot do what was asked; printed as one line, exit code 1 unless set."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


app = typer.Typer(
    name="tracer",
    help="Record, replay, diff and explain WebSocket sessions of AI agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        from tracer._version import __version__

        print(f"tracer {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Record, replay, diff and explain WebSocket sessions of AI agents."""


AllowOrigin = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-origin",
        help="An Origin (a web page) allowed to connect (repeatable); by default none is: "
        "agents send none, and any other gets 403.",
    ),
]
"""The ``--allow-origin`` option of every local server (record's proxy, replay, upstream)."""
