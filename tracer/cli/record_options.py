"""The options of ``tracer record`` that must go together, checked before anything runs,
and the recording session they make."""

from __future__ import annotations

import ssl
import sys
from pathlib import Path

from tracer.capture.forward import DEFAULT_INTERCEPT, parse_connect_to
from tracer.capture.proxy import upstream_ws_base
from tracer.capture.session import ForwardMode, ProxyOptions, RecordingSession, TraceWriting
from tracer.cli.app import CLIError, TimeResolution
from tracer.cli.options import ListenAt
from tracer.trace.redact import Redactor
from tracer.views.output import stderr_console

__all__ = ["check_options", "forward_mode", "open_session"]


def forward_mode(
    upstream: str | None,
    forward: bool,
    intercept: list[str] | None,
    connect_to: list[str] | None,
    upstream_ca: Path | None,
) -> ForwardMode | None:
    """The forward proxy's settings, or None for a reverse proxy (CLIError when the options
    do not go together)."""
    if not forward:
        if upstream is None:
            raise CLIError("give --upstream URL, or --forward for a forward proxy", exit_code=2)
        given = [n for n, v in (("--intercept", intercept), ("--connect-to", connect_to),
                                ("--upstream-ca", upstream_ca)) if v]  # fmt: skip
        if given:
            raise CLIError(f"{given[0]} goes with --forward", exit_code=2)
        return None
    if upstream is not None:
        raise CLIError("--forward and --upstream do not go together", exit_code=2)
    if upstream_ca is not None and not upstream_ca.is_file():
        raise CLIError(f"--upstream-ca: no such file {str(upstream_ca)!r}", exit_code=2)
    try:
        mapping = parse_connect_to(connect_to or [])
    except ValueError as exc:
        raise CLIError(str(exc), exit_code=2) from None
    return ForwardMode(
        intercept=(*DEFAULT_INTERCEPT, *(intercept or [])),
        connect_to=mapping,
        upstream_ca=str(upstream_ca) if upstream_ca else None,
    )


def check_options(
    upstream: str | None,
    listen: str,
    allow_remote: bool,
    redact: list[str],
    no_redact: bool,
    json: bool,
    *,
    launched: bool,
) -> tuple[str, int, Redactor]:
    """The listening address and the redactor, or a CLIError for options that do not go."""
    try:
        if upstream is not None:
            upstream_ws_base(upstream)
    except ValueError as exc:
        raise CLIError(str(exc), exit_code=2) from None
    at = ListenAt.of(listen, allow_remote=allow_remote, why=": the proxy sees API keys")
    host, port = at.host, at.port
    if launched and listen == "127.0.0.1:8787":
        port = 0  # a launched command learns the port from its environment
    warn = stderr_console()
    if not at.loopback and not json:
        warn.print(f"tracer: warning: listening on {host}, reachable from other machines")
    try:
        redactor = Redactor(redact, enabled=not no_redact)
    except Exception as exc:  # re.error for a bad --redact pattern
        raise CLIError(f"invalid --redact pattern: {exc}", exit_code=2) from None
    if no_redact and not json:
        warn.print("tracer: warning: --no-redact: API keys will be written into the trace")
    return host, port, redactor


def open_session(
    upstream: str | None,
    output: Path,
    command: list[str] | None,
    redactor: Redactor,
    options: ProxyOptions,
    mode: ForwardMode | None,
    *,
    flush_interval: float,
    time_resolution: TimeResolution,
    quiet_errors: bool,
) -> RecordingSession:
    """The recording session: the trace file created, the proxy ready to listen."""
    writing = TraceWriting(
        redactor=redactor,
        # Only the program: an argument may be a secret that the redactor learns only
        # later, from a header; the whole command line is annotated at the end.
        metadata={
            "source": "tracer record",
            "upstream": redactor.url(upstream) if upstream else "forward proxy",
            "command": [Path(command[0]).name] if command else [],
            **({"server_timing": True} if options.add_headers else {}),
        },
        flush_interval=flush_interval,
        time_unit_ns=time_resolution.unit_ns,
        on_write_error=None if quiet_errors else _report_write_error,
    )
    try:
        session = RecordingSession(upstream, output, writing=writing, proxy=options, forward=mode)
    except ssl.SSLError as exc:
        raise CLIError(f"cannot use --upstream-ca: {exc}", exit_code=2) from None
    except OSError as exc:
        raise CLIError(f"cannot create {str(output)!r}: {exc.strerror}") from None
    session.command = command
    session.launched = bool(command)
    return session


def _report_write_error(message: str) -> None:
    """Said the moment writing fails (from the writer thread); the proxy keeps forwarding."""
    sys.stderr.write(
        f"tracer record: cannot write the trace: {message}; still forwarding traffic, but "
        "from now on frames are not recorded (the summary lists them)\n"
    )
    sys.stderr.flush()
