"""Options that several commands take, each with one spelling, one help text and one
default, and the checks that go with them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from tracer.cli.app import CLIError
from tracer.errors import USAGE
from tracer.wire import DEFAULT_MAX_SIZE
from tracer.wire.guard import is_loopback

__all__ = [
    "DEFAULT_MAX_FRAME",
    "AllowRemote",
    "JsonFlag",
    "Listen",
    "ListenAt",
    "MaxFrame",
    "PricingOpt",
    "TraceFile",
    "parse_listen",
]

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only.")]
"""``--json`` of every command that prints a report."""

TraceFile = Annotated[Path, typer.Argument(help="A trace file.", show_default=False)]

Listen = Annotated[str, typer.Option(help="HOST:PORT to listen on (port 0: any free port).")]
"""``--listen`` of every local server: the recording proxy, replay, the scripted upstream."""

AllowRemote = Annotated[bool, typer.Option(help="Allow a non-loopback --listen.")]

DEFAULT_MAX_FRAME = DEFAULT_MAX_SIZE
"""The largest message a local server takes by default (64 MiB), the same for all three."""

MaxFrame = Annotated[
    int,
    typer.Option(
        min=1024,
        help="Largest message in bytes a peer may send (larger: close 1009).",
        show_default="64 MiB",
    ),
]


def parse_listen(value: str) -> tuple[str, int]:
    """HOST:PORT from a --listen option; a one-line error for anything else."""
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = value, "0"
    try:
        number = int(port)
        if not 0 <= number <= 65535:
            raise ValueError
    except ValueError:
        raise CLIError(f"--listen takes HOST:PORT, not {value!r}", exit_code=USAGE) from None
    return host.strip("[]") or "127.0.0.1", number


@dataclass(frozen=True, slots=True)
class ListenAt:
    """Where a local server listens, checked: loopback unless ``--allow-remote``."""

    host: str
    port: int

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @classmethod
    def of(cls, value: str, *, allow_remote: bool, why: str = "") -> ListenAt:
        """``--listen`` checked; ``why`` says what a remote listener would expose."""
        at = cls(*parse_listen(value))
        if not at.loopback and not allow_remote:
            raise CLIError(f"refusing to listen on {at.host}{why}: add --allow-remote", USAGE)
        return at


PricingOpt = Annotated[
    Path | None,
    typer.Option(
        "--pricing",
        help="A pricing file (.json or .toml) over the default table; also TRACER_PRICING.",
        show_default=False,
    ),
]
