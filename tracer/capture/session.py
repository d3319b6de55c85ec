"""A recording session: the recorder and its proxy, from start to a finished trace.

``tracer record`` (with or without its live inspector) and the pytest plugin's cassettes
share it: ``start`` the proxy, let clients talk through it (or ``run_command``), ``stop``,
then ``finish``: close the trace, recompress it, verify it and summarise the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracer.capture.children import signal_group
from tracer.capture.compactor import compact_if_unchanged, start_background_compaction
from tracer.capture.forward import DEFAULT_INTERCEPT, ForwardProxy, intercepts
from tracer.capture.launch import Forwarding
from tracer.capture.proxy import UPSTREAM_TIMEOUT, RecordingProxy
from tracer.capture.recorder import Recorder
from tracer.trace.format import RECORDER_TIME_UNIT_NS
from tracer.trace.redact import Redactor
from tracer.trace.verify import Integrity, verify_trace
from tracer.wire import DEFAULT_MAX_SIZE

if TYPE_CHECKING:
    from tracer.capture.ca import RunCA

__all__ = [
    "COMPACT_LIMIT",
    "Finished",
    "ForwardMode",
    "ProxyOptions",
    "RecordingSession",
    "TraceWriting",
    "wait_for_child",
]

COMPACT_LIMIT = 256 * 1024 * 1024
"""Payload bytes up to which a trace is recompressed on exit (level 19 takes ~0.2 s a MB)."""


@dataclass(slots=True)
class Finished:
    """What finishing a recording found: the trace's integrity, and what went wrong."""

    integrity: Integrity
    compacted: bool
    compact_error: str | None  # recompressing failed: the trace stays as recorded
    compact_skipped: bool  # too large to recompress on exit
    compacting_pid: int | None = None  # recompressing in the background, by this process


@dataclass(frozen=True, slots=True)
class ForwardMode:
    """``tracer record --forward``: what to intercept, and how to reach and trust it."""

    intercept: tuple[str, ...] = DEFAULT_INTERCEPT
    connect_to: dict[tuple[str, int], tuple[str, int]] | None = None  # --connect-to
    upstream_ca: str | None = None  # another CA to trust for the real hosts (--upstream-ca)


@dataclass(frozen=True, slots=True)
class TraceWriting:
    """How a recording is written: what is redacted, the header's metadata, how often it
    is flushed, the unit of its times, and who hears of a write error."""

    redactor: Redactor | None = None  # None: the default redaction
    metadata: dict[str, Any] | None = None
    flush_interval: float = 0.1
    time_unit_ns: int = RECORDER_TIME_UNIT_NS
    on_write_error: Callable[[str], None] | None = None


@dataclass(frozen=True, slots=True)
class ProxyOptions:
    """How the recording proxy listens and forwards."""

    host: str = "127.0.0.1"
    port: int = 0
    max_frame: int = DEFAULT_MAX_SIZE
    insecure: bool = False  # skip TLS verification of the upstream
    allow_origins: Sequence[str] = ()
    keep_headers: Sequence[str] = ()
    add_headers: Sequence[tuple[str, str]] = ()  # sent upstream on every upgrade and request
    upstream_timeout: float = UPSTREAM_TIMEOUT
    log: Callable[[str], None] | None = None


class RecordingSession:
    """One recording through the proxy in front of ``upstream`` into ``output`` (with
    ``forward``: a forward proxy, whose CA lives as long as the session)."""

    def __init__(
        self,
        upstream: str | None,
        output: str | os.PathLike[str],
        *,
        writing: TraceWriting = TraceWriting(),
        proxy: ProxyOptions = ProxyOptions(),
        forward: ForwardMode | None = None,
    ) -> None:
        """Creates the trace file at once (``OSError`` when it cannot be)."""
        self.output = Path(output)
        self.redactor = writing.redactor or Redactor()
        self.recorder = Recorder(
            self.output,
            metadata=writing.metadata,
            redactor=self.redactor,
            flush_interval=writing.flush_interval,
            time_unit_ns=writing.time_unit_ns,
            on_write_error=writing.on_write_error,
        )
        options: dict[str, Any] = dict(
            host=proxy.host, port=proxy.port, insecure=proxy.insecure, max_size=proxy.max_frame,
            allow_origins=proxy.allow_origins, keep_headers=proxy.keep_headers,
            add_headers=proxy.add_headers,
            upstream_timeout=proxy.upstream_timeout, log=proxy.log,
        )  # fmt: skip
        self.ca: RunCA | None = None
        self.proxy: RecordingProxy
        self.forward = forward
        if forward is not None:
            from tracer.capture.ca import RunCA  # cryptography: only a forward proxy needs it

            self.ca = RunCA(permitted=forward.intercept)
            try:
                self.proxy = ForwardProxy(
                    self.recorder, self.ca, intercept=forward.intercept,
                    connect_to=forward.connect_to, upstream_ca=forward.upstream_ca, **options,
                )  # fmt: skip
            except BaseException:
                self.ca.close()
                raise
        else:
            assert upstream is not None, "a reverse proxy needs an upstream"
            self.proxy = RecordingProxy(upstream, self.recorder, **options)
        self.command: list[str] | None = None  # a launched command, annotated at the end
        self.launched = False  # a command was launched (its line is annotated at the end)

    @property
    def base_url(self) -> str:
        """Where clients point: ``http://HOST:PORT/v1`` once started."""
        return self.proxy.base_url

    async def start(self) -> None:
        """Listen (``OSError`` when the address is taken)."""
        await self.proxy.start()

    def forwarding(self) -> Forwarding | None:
        """How a launched command reaches the forward proxy and trusts its CA (or None)."""
        if self.ca is None or self.forward is None:
            return None
        patterns = self.forward.intercept
        assert isinstance(self.proxy, ForwardProxy)
        return Forwarding(
            self.proxy.proxy_url, str(self.ca.bundle), lambda host: intercepts(host, patterns)
        )

    async def stop(self) -> None:
        """Stop the proxy: open connections are closed and recorded as such. The forward
        proxy's CA (and its key) is deleted."""
        try:
            await self.proxy.close()
        finally:
            if self.ca is not None:
                self.ca.close()

    def close(self) -> None:
        """Finish the trace file (footer); a launched command line goes in last, redacted
        with every secret learned while recording. Idempotent."""
        if self.ca is not None:
            self.ca.close()
        if self.command:
            self.recorder.annotate("tracer.command", shlex.join(self.command))
            self.command = None
        self.recorder.close()

    def finish(self, *, compact: bool = True, background: bool = False) -> Finished:
        """Close, recompress (unless told not to, or the trace is too large), verify.

        With ``background`` the live trace is verified and its recompression left to a
        process of its own (``tracer.capture.compactor``): the recorder stops at once."""
        self.close()
        stats = self.recorder.stats
        compacted, error, skipped, pid = False, None, False, None
        recompress = compact and stats.write_error is None
        if recompress and stats.bytes > COMPACT_LIMIT:
            recompress, skipped = False, True
        if recompress and not background:
            error = compact_if_unchanged(self.output)
            compacted = error is None
        with open(self.output, "rb") as f:
            integrity = verify_trace(f)
        if recompress and background and integrity.ok:
            pid = start_background_compaction(self.output)
        return Finished(integrity, compacted, error, skipped, pid)


async def wait_for_child(
    child: asyncio.subprocess.Process, stop: asyncio.Event, *, group: bool = False
) -> int:
    """The child's exit code; on ``stop`` (Ctrl-C, SIGTERM) pass it on, then wait a little:
    to its whole process group with ``group`` (it leads one of its own). A child killed by
    a signal exits 128 + its number, as a shell says."""
    waiter = asyncio.create_task(child.wait())
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if not waiter.done():
        if not (group and signal_group(child.pid, signal.SIGTERM)):
            with contextlib.suppress(ProcessLookupError):
                child.terminate()
        try:
            async with asyncio.timeout(5):
                await waiter
        except TimeoutError:
            if not (group and signal_group(child.pid, signal.SIGKILL)):
                child.kill()
            await waiter
    stopper.cancel()
    code = waiter.result()
    return code if code >= 0 else 128 - code
