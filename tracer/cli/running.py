"""Running asyncio services from the CLI until they finish, Ctrl-C or SIGTERM; or beside the
live inspector, for `tracer record --tui`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from tracer.capture.children import Reaper, die_with_parent, signal_group
from tracer.capture.session import wait_for_child
from tracer.cli.app import CLIError

__all__ = ["Stop", "record_with_tui", "run_until_signal"]


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


def record_with_tui(
    main: Callable[[asyncio.Event], Awaitable[int | None]],
    finish: Callable[[], None],
    output: Path,
    listening: threading.Event,
    banner: Callable[[], str],
) -> int | None:
    """Run the proxy in a thread of its own and the live inspector in this one."""
    from tracer.tui.app import InspectorApp

    outcome: dict[str, Any] = {}
    running: dict[str, Any] = {}

    def record_thread() -> None:
        async def run() -> int | None:
            running["loop"], running["stop"] = asyncio.get_running_loop(), Stop()
            return await main(running["stop"])

        try:
            outcome["code"] = asyncio.run(run())
        except BaseException as exc:  # re-raised in the main thread
            outcome["error"] = exc
        finally:
            finish()  # the footer tells the inspector that the recording finished
            listening.set()

    thread = threading.Thread(target=record_thread, name="tracer-record", daemon=True)
    thread.start()
    listening.wait()
    try:
        if "error" not in outcome:
            InspectorApp(str(output), live=output, banner=banner()).run()
    finally:
        loop, stop = running.get("loop"), running.get("stop")
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already finished
                loop.call_soon_threadsafe(stop.stop, signal.SIGINT)  # quitting interrupts
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
    code: int | None = outcome.get("code")
    return code


async def run_child(
    command: list[str],
    env: dict[str, str],
    stop: asyncio.Event,
    log: Path | None = None,
    *,
    quiet_stdout: bool = False,
) -> int:
    """Run the command; with ``quiet_stdout`` (``--json``) its stdout goes to stderr, so
    that tracer's stdout holds JSON only. It is stopped with tracer and dies with it
    (``tracer.capture.children``): in a process group of its own unless it reads a terminal."""
    own_group = log is not None or not sys.stdin.isatty()
    options: dict[str, Any] = {"preexec_fn": die_with_parent}
    if own_group:
        options["process_group"] = 0
    try:
        if log is None:
            out = sys.stderr if quiet_stdout else None
            child = await asyncio.create_subprocess_exec(*command, env=env, stdout=out, **options)
        else:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)  # the agent's output can quote what the session holds
            with os.fdopen(fd, "wb") as out:
                child = await asyncio.create_subprocess_exec(
                    *command, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
                    **options,
                )  # fmt: skip
    except OSError as exc:
        raise CLIError(f"cannot run {command[0]!r}: {exc.strerror}", exit_code=127) from None
    reaper = Reaper(child.pid) if own_group else None
    try:
        return await wait_for_child(child, stop, group=own_group)
    finally:
        if reaper is not None:
            signal_group(child.pid, signal.SIGTERM)  # what the command left running
            reaper.close()
