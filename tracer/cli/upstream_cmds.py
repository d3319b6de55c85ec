"""Commands around the scripted upstream: ``tracer upstream`` and ``tracer demo``."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tracer.cli.app import AllowOrigin, CLIError, app
from tracer.cli.options import (
    DEFAULT_MAX_FRAME,
    AllowRemote,
    JsonFlag,
    Listen,
    ListenAt,
    MaxFrame,
)
from tracer.trace.verify import verify_trace
from tracer.upstream.engine import DEFAULT_MAX_PENDING
from tracer.upstream.script import PROFILES, Script, ScriptError, default_script, parse_profile
from tracer.views.output import emit_json, emit_json_line, stderr_console, stdout_console

if TYPE_CHECKING:  # the servers, the recorder and the analyses load when a command runs
    import asyncio
    import ssl

    from tracer.trace.verify import Integrity

ScriptOpt = Annotated[
    Path | None,
    typer.Option("--script", help="A script file (.json or .toml); default: a coding-agent loop."),
]


ProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile",
        metavar="NAMES",
        help=f"Variants of real services to play, comma-separated: {', '.join(PROFILES)} "
        "(added to the script's own profile).",
    ),
]


def _load_script(path: Path | None, profile: str | None = None) -> Script:
    try:
        script = default_script() if path is None else Script.load(path)
        if profile:
            script = replace(script, profile=script.profile.merge(parse_profile(profile)))
    except ScriptError as exc:
        raise CLIError(str(exc), exit_code=2 if profile else 1) from None
    return script


def _tls(cert: Path, key: Path | None) -> tuple[ssl.SSLContext, list[str]]:
    """The TLS context of ``--tls-cert``, and the DNS names its certificate holds."""
    import ssl

    from cryptography import x509

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_alpn_protocols(["http/1.1"])
    try:
        ctx.load_cert_chain(cert, key)
        leaf = x509.load_pem_x509_certificate(cert.read_bytes())
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise CLIError(f"cannot use --tls-cert {str(cert)!r}: {exc}", exit_code=2) from None
    try:
        alt = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = list(alt.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = []
    return ctx, names


def _log_upstream(line: str) -> None:
    stderr_console().print(f"tracer upstream: {line}", markup=False)


# Over 60 lines: a typer command: its signature is the CLI.
@app.command()
def upstream(
    script: ScriptOpt = None,
    profile: ProfileOpt = None,
    listen: Listen = "127.0.0.1:8765",
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, hidden=True, help="Old spelling of --listen.")
    ] = None,
    host: Annotated[str | None, typer.Option(hidden=True, help="Old spelling of --listen.")] = None,
    allow_remote: AllowRemote = False,
    single_flight: Annotated[
        bool, typer.Option(help="Reject a second create in flight (response_already_in_flight).")
    ] = False,
    max_frame: MaxFrame = DEFAULT_MAX_FRAME,
    max_pending: Annotated[
        int, typer.Option(min=1, help="Creates queued per connection; more get an error event.")
    ] = DEFAULT_MAX_PENDING,
    allow_origin: AllowOrigin = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Serve https and wss with this PEM certificate chain (it answers as the "
            "names the certificate holds, e.g. to stand in for api.openai.com).",
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="The private key of --tls-cert (default: in it)."),
    ] = None,
    json: JsonFlag = False,
) -> int:
    """Run the scripted Responses-compatible server (WebSocket mode and HTTP SSE)."""
    if host is not None or port is not None:  # --host/--port: kept for old scripts
        base_host, _, base_port = listen.rpartition(":")
        listen = f"{host or base_host}:{base_port if port is None else port}"
    at = ListenAt.of(listen, allow_remote=allow_remote)
    host, port = at.host, at.port
    if tls_key is not None and tls_cert is None:
        raise CLIError("--tls-key needs --tls-cert", exit_code=2)
    tls, names = _tls(tls_cert, tls_key) if tls_cert is not None else (None, [])
    from tracer.cli.running import run_until_signal
    from tracer.upstream.server import UpstreamServer

    server = UpstreamServer(
        _load_script(script, profile),
        host=host,
        port=port,
        single_flight=single_flight,
        max_frame=max_frame,
        max_pending=max_pending,
        allow_origins=allow_origin or [],
        log=None if json else _log_upstream,
        tls=tls,
        names=names,
    )

    async def main(stop: asyncio.Event) -> int:
        try:
            await server.start()
        except OSError as exc:
            raise CLIError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        info = {"event": "listening", "base_url": server.base_url, "ws_url": server.ws_url}
        if json:
            emit_json_line(info)
        else:
            stdout_console().print(
                f"tracer upstream: listening on {server.base_url} "
                f"(WebSocket: {server.ws_url}); Ctrl-C stops"
            )
        sys.stdout.flush()
        await stop.wait()
        await server.close()
        if json:
            emit_json_line({"event": "stopped", "connections": server.connections})
        return 0

    return run_until_signal(main)


# Over 60 lines: a typer command: its signature is the CLI.
@app.command()
def demo(
    output: Annotated[Path, typer.Option("-o", "--output", help="Trace file to write.")] = Path(
        "tracer-demo.trace"
    ),
    resend_full_history: Annotated[
        bool, typer.Option(help="Resend the whole history each turn, as naive clients do.")
    ] = False,
    http: Annotated[
        bool, typer.Option("--http", help="Use HTTP SSE instead of a WebSocket.")
    ] = False,
    reconnect_after: Annotated[
        int | None,
        typer.Option(min=1, help="Reconnect after N turns (the cache is lost)."),
    ] = None,
    script: ScriptOpt = None,
    profile: ProfileOpt = None,
    realtime: Annotated[
        bool,
        typer.Option(
            "--realtime", help="A voice agent on the Realtime API instead (spoken turns)."
        ),
    ] = False,
    protocol: Annotated[
        str,
        typer.Option(
            metavar="responses|realtime|gemini-live|openai-live",
            help="The API the demo agent speaks (realtime: as --realtime).",
        ),
    ] = "responses",
    json: JsonFlag = False,
) -> int:
    """Run the demo agent against the scripted upstream, record it, and show the result."""
    if protocol not in DEMO_PROTOCOLS:
        raise CLIError(
            f"--protocol takes one of {', '.join(DEMO_PROTOCOLS)}; not {protocol!r}", exit_code=2
        )
    if realtime or protocol != "responses":
        return _voice_demo(output, json, "realtime" if realtime else protocol)
    cfg_script = _load_script(script, profile)
    import asyncio

    from tracer.analysis.load import load
    from tracer.capture.recorder import Recorder
    from tracer.cli.running import run_until_signal
    from tracer.demo.agent import AgentConfig, AgentRun, run_agent
    from tracer.upstream.server import UpstreamServer
    from tracer.views.demo import render_demo
    from tracer.views.inspect import render_inspect

    async def main(stop: asyncio.Event) -> tuple[AgentRun, Integrity]:
        server = UpstreamServer(cfg_script, port=0)
        await server.start()
        recorder = Recorder(
            output,
            metadata={"source": "tracer demo", "upstream": server.base_url},
        )
        try:
            cfg = AgentConfig(
                base_url=server.base_url,
                transport="http" if http else "websocket",
                resend_full_history=resend_full_history,
                reconnect_after=reconnect_after,
                include_reasoning=cfg_script.profile.reasoning,
            )
            agent = asyncio.create_task(run_agent(cfg, recorder))
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({agent, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not agent.done():
                agent.cancel()
                raise CLIError("interrupted; the trace holds what was recorded", exit_code=130)
            run = agent.result()  # AgentError: one line, as every TracerError
        finally:
            recorder.close()
            await server.close()
        with open(output, "rb") as f:
            integrity = verify_trace(f)
        return run, integrity

    run, integrity = run_until_signal(main)
    report = None
    if integrity.ok:
        report = load(output).report
    if json:
        emit_json(
            {
                "trace": str(output),
                # as every command counts them: the trace's turns, failed creates included
                "turns": report.summary.turns if report else run.creates,
                "warmups": report.summary.warmups if report else run.warmups,
                "connections": run.connections,
                "errors": run.errors,
                "cache_losses": run.cache_losses,
                "verify": integrity.to_json(),
                "summary": report.to_json()["summary"] if report else None,
            }
        )
    else:
        console = stdout_console()
        render_demo(str(output), run, integrity, report, console)
        if report is not None:
            console.print()
            render_inspect(report, console)
    return 0 if integrity.ok else 1


DEMO_PROTOCOLS = ("responses", "realtime", "gemini-live", "openai-live")


def _voice_demo(output: Path, json: bool, protocol: str) -> int:
    """``tracer demo --protocol P``: a voice agent against the scripted live endpoint."""
    import asyncio

    from tracer.analysis.load import load
    from tracer.capture.recorder import Recorder
    from tracer.cli.running import run_until_signal
    from tracer.demo.live import LIVE_SCRIPT, run_gemini_agent, run_live_agent
    from tracer.demo.voice import VoiceRun, run_voice_agent
    from tracer.upstream.server import UpstreamServer
    from tracer.views.demo import render_voice_demo
    from tracer.views.inspect import render_inspect

    runner = {"realtime": run_voice_agent, "gemini-live": run_gemini_agent,
              "openai-live": run_live_agent}[protocol]  # fmt: skip

    async def main(stop: asyncio.Event) -> tuple[VoiceRun, Integrity]:
        server = UpstreamServer(LIVE_SCRIPT if protocol != "realtime" else None, port=0)
        await server.start()
        recorder = Recorder(
            output,
            metadata={"source": f"tracer demo --protocol {protocol}", "upstream": server.base_url},
        )
        try:
            agent = asyncio.create_task(runner(server.base_url, recorder))
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({agent, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not agent.done():
                agent.cancel()
                raise CLIError("interrupted; the trace holds what was recorded", exit_code=130)
            run = agent.result()
        finally:
            recorder.close()
            await server.close()
        with open(output, "rb") as f:
            integrity = verify_trace(f)
        return run, integrity

    run, integrity = run_until_signal(main)
    report = load(output).report if integrity.ok else None
    if json:
        emit_json(
            {
                "trace": str(output),
                "turns": report.summary.turns if report else run.responses,
                "spoken_turns": run.spoken_turns,
                "errors": run.errors,
                "verify": integrity.to_json(),
                "summary": report.to_json()["summary"] if report else None,
            }
        )
    else:
        console = stdout_console()
        spoken = (run.responses, run.spoken_turns)
        render_voice_demo(str(output), spoken, integrity, report, console, protocol)
        if report is not None:
            console.print()
            render_inspect(report, console)
    return 0 if integrity.ok else 1
