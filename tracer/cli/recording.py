"""What ``tracer record`` does once typer has parsed its arguments: the recording session,
its status and its summary (loaded only when ``record`` runs)."""

from __future__ import annotations

import asyncio
import ctypes
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

from tracer.capture.forward import ForwardProxy
from tracer.capture.launch import plan_launch
from tracer.capture.session import ProxyOptions, RecordingSession
from tracer.capture.stats import RecorderStats
from tracer.cli.app import CLIError, TimeResolution
from tracer.cli.record_options import check_options, forward_mode, open_session
from tracer.cli.running import Stop, record_with_tui, run_child, run_until_signal
from tracer.responses.timing import TIMING_HEADER
from tracer.views.output import emit_json, stderr_console
from tracer.views.record import RecordSummary, live_status, render_summary, title_status
from tracer.vocab import size

__all__ = ["fixed_mmap_threshold", "run_record"]

MMAP_THRESHOLD = 128 * 1024
"""Blocks this large or larger are mapped on their own and given back when freed."""

NOTHING_FORWARDED = (
    "the command made no connection to an intercepted host: its client may not follow "
    "HTTPS_PROXY (Node 20's fetch does not), or talk to a host --intercept does not name "
    "(docs/capture.md)"
)
NOTHING_RECORDED = (
    "the command made no connection through the proxy: its client may take its endpoint "
    "from somewhere tracer does not set (a config file, a variable of its own), or need "
    "the real host name (docs/capture.md)"
)


# Over 60 lines: the whole of a recording, from options to the exit code.
def run_record(
    *,
    output: Path,
    upstream: str | None,
    command: list[str] | None,
    listen: str,
    allow_remote: bool,
    insecure: bool,
    redact: list[str] | None,
    no_redact: bool,
    compact: bool,
    wait_compact: bool,
    flush_interval: float,
    time_resolution: TimeResolution,
    max_frame: int,
    tui: bool,
    allow_origin: list[str] | None,
    keep_header: list[str] | None,
    server_timing: bool,
    upstream_timeout: float,
    no_preset: bool,
    forward: bool,
    intercept: list[str] | None,
    connect_to: list[str] | None,
    upstream_ca: Path | None,
    json: bool,
) -> int:
    """Record as ``tracer record`` was told to; its exit code."""
    fixed_mmap_threshold()
    if tui and json:
        raise CLIError("--tui and --json do not go together", exit_code=2)
    if tui and not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise CLIError(
            "--tui needs a terminal (use `tracer watch FILE --json` instead)", exit_code=2
        )
    mode = forward_mode(upstream, forward, intercept, connect_to, upstream_ca)
    host, port, redactor = check_options(
        upstream, listen, allow_remote, redact or [], no_redact, json, launched=bool(command)
    )
    options = ProxyOptions(
        host=host, port=port, max_frame=max_frame, insecure=insecure,
        allow_origins=allow_origin or [], keep_headers=keep_header or [],
        add_headers=[(TIMING_HEADER, "true")] if server_timing else [],
        upstream_timeout=upstream_timeout, log=None if (tui or json) else _log_refusal,
    )  # fmt: skip
    session = open_session(upstream, output, command, redactor, options, mode,
                            flush_interval=flush_interval, time_resolution=time_resolution,
                            quiet_errors=tui)  # fmt: skip
    log_path = output.with_name(output.name + ".log") if tui and command else None
    listening = threading.Event()
    main = _serve(
        session, upstream, command, log_path, listening, show=not (tui or json),
        presets=not no_preset,
    )  # fmt: skip
    signalled: list[int] = []  # the signal that stopped a launched command, if one did

    async def recording(stop: asyncio.Event) -> int | None:
        code = await main(stop)
        if command and isinstance(stop, Stop) and stop.signum is not None:
            signalled.append(stop.signum)
        return code

    if tui:

        def banner() -> str:  # once the proxy listens (its port may have been 0)
            text = f"recording {_where(session, upstream)}"
            return text + (f"; agent output in {log_path}" if log_path else "")

        exit_code = record_with_tui(recording, session.close, output, listening, banner)
    else:
        try:
            exit_code = run_until_signal(recording)
        finally:
            session.close()
    # Interrupted (Ctrl-C, or q in the inspector): exit 130; SIGTERM: 143; as shells do.
    interrupted = 128 + signalled[0] if signalled else None
    return _finish(
        session,
        exit_code,
        compact=compact,
        background=not wait_compact,
        json=json,
        interrupted=interrupted,
    )


def _where(session: RecordingSession, upstream: str | None) -> str:
    """Where the proxy listens and where it forwards, for the banner."""
    if upstream is not None:  # never echo a credential in the upstream's query
        return f"{session.base_url} → {session.recorder.redactor.url(upstream)}"
    # The proxy URL holds the run's credentials: whoever is to use it must see them.
    url = getattr(session.proxy, "proxy_url", session.proxy.origin)
    return f"{session.proxy.origin} as a forward proxy (HTTPS_PROXY={url})"


def _serve(
    session: RecordingSession,
    upstream: str | None,
    command: list[str] | None,
    log_path: Path | None,
    listening: threading.Event,
    *,
    show: bool,
    presets: bool = True,
) -> Callable[[asyncio.Event], Awaitable[int | None]]:
    """The recording's main coroutine: listen, run the command or wait for a stop, stop."""

    async def main(stop: asyncio.Event) -> int | None:
        try:
            await session.start()
        except OSError as exc:
            where = f"{session.proxy.host}:{session.proxy.port}"
            raise CLIError(f"cannot listen on {where}: {exc.strerror}") from None
        finally:
            listening.set()
        status = None
        title: asyncio.Task[None] | None = None
        if show and command and sys.stderr.isatty():
            # The command owns the terminal: the status goes to its title, never between
            # the command's lines; the summary follows at the end.
            title = asyncio.create_task(_title_updates(session.recorder.stats))
        elif show and not command and sys.stderr.isatty():
            status = live_status(session.recorder.stats, session.base_url, stderr_console())
            status.start()
        elif show and not command:
            stderr_console().print(
                f"tracer record: listening on {_where(session, upstream)}; Ctrl-C stops",
                markup=False,
                soft_wrap=True,
            )
        if show and not command:
            _say_ca(session)
        try:
            if command:
                proxy = session.proxy
                launch = plan_launch(
                    command, dict(os.environ), proxy.base_url, proxy.origin, presets=presets,
                    forward=session.forwarding(),
                )  # fmt: skip
                for note in launch.notes:
                    stderr_console().print(f"tracer record: {note}", markup=False)
                return await run_child(
                    launch.command, launch.env, stop, log_path, quiet_stdout=not show
                )
            await stop.wait()
            return None
        finally:
            if status is not None:
                status.stop()
            if title is not None:
                title.cancel()
                sys.stderr.write("\x1b]0;\x07")  # the title back to the terminal's own
                sys.stderr.flush()
            await session.stop()

    return main


def _say_ca(session: RecordingSession) -> None:
    """A forward proxy's clients must trust its CA: say where it is."""
    if session.ca is not None:
        stderr_console().print(
            f"tracer record: clients must trust this run's CA: SSL_CERT_FILE="
            f"{session.ca.bundle} (the system's CAs and the run's), or NODE_EXTRA_CA_CERTS="
            f"{session.ca.cert_file}; both are deleted when recording ends",
            markup=False,
            soft_wrap=True,
        )


async def _title_updates(stats: RecorderStats) -> None:
    """The recording's status in the terminal's title, twice a second."""
    while True:
        sys.stderr.write(title_status(stats))
        sys.stderr.flush()
        await asyncio.sleep(0.5)


def _finish(
    session: RecordingSession,
    exit_code: int | None,
    *,
    compact: bool,
    background: bool,
    json: bool,
    interrupted: int | None = None,
) -> int:
    """Recompress (or start that) and verify the trace, say how it went; the command's exit
    code wins."""
    done = session.finish(compact=compact, background=background)
    stats = session.recorder.stats
    warn = stderr_console()
    if done.compact_skipped and not json:
        warn.print(
            f"tracer record: {size(stats.bytes)} recorded; not recompressing "
            f"on exit (run `tracer compact {session.output}` when convenient)",
            markup=False,
        )
    if done.compact_error is not None and not json:
        warn.print(
            f"tracer record: warning: could not recompress the trace ({done.compact_error}); "
            "it is kept as recorded",
            markup=False,
        )
    nothing = NOTHING_FORWARDED if session.ca is not None else NOTHING_RECORDED
    if exit_code:  # it failed before it could connect: that, not the endpoint, is the news
        nothing = (
            f"the command exited {exit_code} before making any connection through the proxy "
            "(its own output says why)"
        )
    if session.launched and stats.connections == 0 and not json:
        warn.print(f"tracer record: warning: {nothing}", markup=False)
    summary = RecordSummary(
        trace=str(session.output),
        connections=stats.connections,
        frames=stats.frames,
        bytes=stats.bytes,
        creates=stats.creates,
        dropped_frames=stats.dropped_frames,
        write_error=stats.write_error,
        command_exit=exit_code,
        trace_ok=done.integrity.ok,
        unrecorded=[g.to_json() for g in stats.unrecorded.values()],
        compact_error=done.compact_error,
        compacting_pid=done.compacting_pid,
        warning=nothing if session.launched and stats.connections == 0 else None,
    )
    if isinstance(session.proxy, ForwardProxy):
        summary.tunnelled = session.proxy.tunnelled
        summary.refused_tls = session.proxy.refused_tls
    if json:
        emit_json(summary.to_json())
    else:
        render_summary(summary, warn)
    if interrupted is not None:
        return interrupted
    if exit_code is not None:
        return exit_code
    return 0 if done.integrity.ok and stats.write_error is None else 1


def _log_refusal(line: str) -> None:
    stderr_console().print(f"tracer record: {line}", markup=False, soft_wrap=True)


def fixed_mmap_threshold() -> bool:
    """Keep glibc's mmap threshold at ``MMAP_THRESHOLD`` (its default, 128 KiB, fixed).

    glibc raises the threshold to the size of each mapped block freed, up to 32 MiB: after
    the first full-resend create (hundreds of KB) is freed, every later one is carved from
    the heap, which fragments, and a recorder's RSS grows with the session (about 9 MB over
    ``bench/bench_compact.py``'s 40 turns). A process-wide setting: the CLI makes it for
    its own process only, never the library in someone else's. False where there is no
    glibc ``mallopt``."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_mmap_threshold = -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, MMAP_THRESHOLD))
