"""``tracer record``: the recording proxy, on its own or around a command it launches."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tracer.capture.launch import DEFAULT_INTERCEPT, FORWARD_PRESETS, PRESETS
from tracer.capture.upstream import UPSTREAM_TIMEOUT
from tracer.cli.app import AllowOrigin, TimeResolution, app
from tracer.cli.options import AllowRemote, JsonFlag, Listen
from tracer.trace.reader import DEFAULT_MAX_RECORD_SIZE
from tracer.wire import DEFAULT_MAX_SIZE

MAX_RECORDABLE_FRAME = DEFAULT_MAX_RECORD_SIZE - 64 * 1024
"""The largest frame a trace can hold: the reader's record limit less a record's framing."""
_PRESET_HELP = "; ".join(f"{name}: {what}" for name, what in PRESETS)
_FORWARD_HELP = "; ".join(f"{name}: {what}" for name, what in FORWARD_PRESETS)


@app.command(
    context_settings={"allow_interspersed_args": False},
)
# Over 60 lines: a typer command: its signature is the CLI; the body is short.
def record(
    output: Annotated[Path, typer.Option("-o", "--output", help="Trace file to write.")],
    upstream: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Upstream origin (and path prefix), e.g. wss://api.openai.com (or --forward).",
        ),
    ] = None,
    command: Annotated[
        list[str] | None,
        typer.Argument(help="After --: a command to run with its clients pointed at the proxy."),
    ] = None,
    listen: Listen = "127.0.0.1:8787",
    allow_remote: AllowRemote = False,
    insecure: Annotated[
        bool, typer.Option(help="Skip TLS certificate verification of the upstream.")
    ] = False,
    redact: Annotated[
        list[str] | None,
        typer.Option("--redact", help="Another regular expression to scrub from payloads."),
    ] = None,
    no_redact: Annotated[
        bool, typer.Option("--no-redact", help="Record secrets as they are (not recommended).")
    ] = False,
    compact: Annotated[bool, typer.Option(help="Recompress the trace when recording ends.")] = True,
    wait_compact: Annotated[
        bool,
        typer.Option(
            "--wait-compact",
            help="Recompress before exiting (by default a background process does, and "
            "tracer exits at once).",
        ),
    ] = False,
    flush_interval: Annotated[
        float, typer.Option(min=0.001, help="Seconds between crash-safe flushes.")
    ] = 0.1,
    time_resolution: Annotated[
        TimeResolution,
        typer.Option(help="The unit the trace stores times in (ns, us or ms)."),
    ] = TimeResolution.us,
    max_frame: Annotated[
        int,
        typer.Option(
            min=1024,
            max=MAX_RECORDABLE_FRAME,
            help="Largest message in bytes either side may send (1009 past it); at most what "
            "a trace can store (128 MiB less a record's framing).",
            show_default="64 MiB",
        ),
    ] = DEFAULT_MAX_SIZE,
    tui: Annotated[
        bool,
        typer.Option(
            "--tui",
            help="Watch the session live in the inspector while recording (a launched "
            "command's output goes to OUTPUT.log); q stops.",
        ),
    ] = False,
    allow_origin: AllowOrigin = None,
    keep_header: Annotated[
        list[str] | None,
        typer.Option(
            "--keep-header",
            help="Forward this request header too (Cookie, Origin and Proxy-Authorization "
            "are dropped by default).",
        ),
    ] = None,
    server_timing: Annotated[
        bool,
        typer.Option(
            "--server-timing",
            help="Ask the service for its timing of each response (the request header "
            "x-responsesapi-include-timing-metrics: true), to split time to first token.",
        ),
    ] = False,
    upstream_timeout: Annotated[
        float,
        typer.Option(
            min=0.1,
            metavar="SECONDS",
            help="How long an HTTP upstream may stay silent before the client gets a 502.",
        ),
    ] = UPSTREAM_TIMEOUT,
    no_preset: Annotated[
        bool,
        typer.Option(
            "--no-preset",
            help="Set only OPENAI_BASE_URL for a launched command, not the presets "
            f"({_PRESET_HELP}).",
        ),
    ] = False,
    forward: Annotated[
        bool,
        typer.Option(
            "--forward",
            help="Be a forward (CONNECT) proxy instead, keeping the real host names: "
            "intercepted hosts are recorded through a CA made for this run, others tunnelled "
            f"untouched. A launched command gets {_FORWARD_HELP}.",
        ),
    ] = False,
    intercept: Annotated[
        list[str] | None,
        typer.Option(
            "--intercept",
            metavar="HOST",
            help="With --forward, record this host too (*.example.com: its subdomains); "
            f"by default {', '.join(DEFAULT_INTERCEPT)}.",
        ),
    ] = None,
    connect_to: Annotated[
        list[str] | None,
        typer.Option(
            "--connect-to",
            metavar="HOST:PORT:ADDRESS:PORT",
            help="With --forward, reach HOST:PORT at ADDRESS:PORT, keeping its name for TLS "
            "and Host (as curl's --connect-to).",
        ),
    ] = None,
    upstream_ca: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="With --forward, also trust these PEM CAs when verifying the real hosts.",
        ),
    ] = None,
    json: JsonFlag = False,
) -> int:
    """Record WebSocket sessions through a local proxy in front of UPSTREAM.

    Point a client at http://HOST:PORT/v1 (the OpenAI SDKs derive ws://HOST:PORT/v1/responses
    from it), or give a command after -- to run it with OPENAI_BASE_URL set to the proxy.
    With --forward, clients keep their real endpoint and reach it through HTTPS_PROXY.
    """
    from tracer.cli.recording import run_record

    return run_record(
        output=output,
        upstream=upstream,
        command=command,
        listen=listen,
        allow_remote=allow_remote,
        insecure=insecure,
        redact=redact,
        no_redact=no_redact,
        compact=compact,
        wait_compact=wait_compact,
        flush_interval=flush_interval,
        time_resolution=time_resolution,
        max_frame=max_frame,
        tui=tui,
        allow_origin=allow_origin,
        keep_header=keep_header,
        server_timing=server_timing,
        upstream_timeout=upstream_timeout,
        no_preset=no_preset,
        forward=forward,
        intercept=intercept,
        connect_to=connect_to,
        upstream_ca=upstream_ca,
        json=json,
    )
