"""Running asyncio services from the CLI until they finish, Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tracer.cli.app import CLIError

__all__ = ["LOOPBACK", "Stop", "parse_listen", "run_until_signal"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")

T = TypeVar("T")


class Stop(asyncio.Event):
    """The event that asks a service to stop, and the signal that asked (None: none did)."""

    signum: int | None = None

    def stop(self, signum: int) -> None:
        self.signum = signum
        self.set()


def run_until_signal(main: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run ``main(stop)``; SIGINT and SIGTERM set ``stop`` (a ``Stop``, which remembers the
    signal) so it can finish cleanly."""

    async def runner() -> T:
        stop = Stop()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.stop, sig)
        try:
            return await main(stop)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    return asyncio.run(runner())


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
        raise CLIError(f"--listen takes HOST:PORT, not {value!r}", exit_code=2) from None
    return host.strip("[]") or "127.0.0.1", number
