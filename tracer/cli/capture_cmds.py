"""``tracer record``: the recording proxy, on its own or around a command it launches."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from tracer.capture.proxy import RecordingProxy, upstream_ws_base
from tracer.capture.recorder import Recorder
from tracer.cli.app import CLIError, TimeResolution, app
from tracer.cli.running import LOOPBACK, parse_listen, run_until_signal
from tracer.trace.compact import compact_trace
from tracer.trace.redact import Redactor
from tracer.trace.verify import verify_trace
from tracer.views.output import emit_json, stderr_console
from tracer.views.record import RecordSummary, live_status, render_summary
from tracer.wire.websocket import DEFAULT_MAX_SIZE

COMPACT_LIMIT = 256 * 1024 * 1024
"""Payload bytes up to which a trace is recompressed on exit (level 19 takes ~0.2 s a MB)."""


def child_environment(proxy: RecordingProxy) -> dict[str, str]:
    """The environment of a launched command: its OpenAI clients point at the proxy."""
    env = dict(os.environ)
    env["OPENAI_BASE_URL"] = proxy.base_url
    env["OPENAI_API_BASE"] = proxy.base_url  # older SDKs and other tools
    env["TRACER_PROXY_URL"] = proxy.origin
    return env


@app.command(
    context_settings={"allow_interspersed_args": False},
)
def record(
    upstream: Annotated[
        str,
        typer.Option(help="Upstream origin (and path prefix), e.g. wss://api.openai.com."),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Trace file to write.")],
    command: Annotated[
        list[str] | None,
        typer.Argument(help="After --: a command to run with its clients pointed at the proxy."),
    ] = None,
    listen: Annotated[
        str, typer.Option(help="HOST:PORT to listen on (port 0: any free port).")
    ] = "127.0.0.1:8787",
    allow_remote: Annotated[bool, typer.Option(help="Allow a non-loopback --listen.")] = False,
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
            min=1024, help="Largest message in bytes either side may send (1009 past it)."
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
    json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only.")] = False,
) -> int:
    """Record WebSocket sessions through a local proxy in front of UPSTREAM.

    Point a client at http://HOST:PORT/v1 (the OpenAI SDKs derive ws://HOST:PORT/v1/responses
    from it), or give a command after -- to run it with OPENAI_BASE_URL set to the proxy.
    """
    if tui and json:
        raise CLIError("--tui and --json do not go together", exit_code=2)
    if tui and not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise CLIError(
            "--tui needs a terminal (use `tracer watch FILE --json` instead)", exit_code=2
        )
    try:
        upstream_ws_base(upstream)
    except ValueError as exc:
        raise CLIError(str(exc), exit_code=2) from None
    host, port = parse_listen(listen)
    if command:
        port = 0 if listen == "127.0.0.1:8787" else port
    warn = stderr_console()
    if host not in LOOPBACK:
        if not allow_remote:
            raise CLIError(
                f"refusing to listen on {host}: the proxy sees API keys; add --allow-remote",
                exit_code=2,
            )
        if not json:
            warn.print(f"tracer: warning: listening on {host}, reachable from other machines")
    try:
        redactor = Redactor(redact or [], enabled=not no_redact)
    except Exception as exc:  # re.error for a bad --redact pattern
        raise CLIError(f"invalid --redact pattern: {exc}", exit_code=2) from None
    if no_redact and not json:
        warn.print("tracer: warning: --no-redact: API keys will be written into the trace")
    try:
        recorder = Recorder(
            output,
            # Only the program: an argument may be a secret that the redactor learns only
            # later, from a header; the whole command line is annotated at the end.
            metadata={
                "source": "tracer record",
                "upstream": redactor.url(upstream),
                "command": [Path(command[0]).name] if command else [],
            },
            redactor=redactor,
            flush_interval=flush_interval,
            time_unit_ns=time_resolution.unit_ns,
            on_write_error=None if tui else _report_write_error,
        )
    except OSError as exc:
        raise CLIError(f"cannot create {str(output)!r}: {exc.strerror}") from None
    proxy = RecordingProxy(
        upstream, recorder, host=host, port=port, insecure=insecure, max_size=max_frame
    )
    log_path = output.with_name(output.name + ".log") if tui and command else None
    listening = threading.Event()

    async def main(stop: asyncio.Event) -> int | None:
        try:
            await proxy.start()
        except OSError as exc:
            raise CLIError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        finally:
            listening.set()
        status = None
        if tui:
            pass
        elif not json and sys.stdout.isatty():
            status = live_status(recorder.stats, proxy.base_url)
            status.start()
        elif not json and not command:
            warn.print(f"tracer record: listening on {proxy.base_url} -> {upstream}; Ctrl-C stops")
        try:
            if command:
                return await _run_child(command, child_environment(proxy), stop, log_path)
            await stop.wait()
            return None
        finally:
            if status is not None:
                status.stop()
            await proxy.close()

    if tui:

        def banner() -> str:  # once the proxy listens (its port may have been 0)
            text = f"recording {proxy.base_url} -> {upstream}"
            return text + (f"; agent output in {log_path}" if log_path else "")

        exit_code = _record_with_tui(
            main, lambda: _close(recorder, command), output, listening, banner
        )
    else:
        try:
            exit_code = run_until_signal(main)
        finally:
            _close(recorder, command)
    if compact and recorder.stats.write_error is None:
        if recorder.stats.bytes <= COMPACT_LIMIT:
            _compact_in_place(output)
        elif not json:
            warn.print(
                f"tracer record: {recorder.stats.bytes / 1e6:,.0f} MB recorded; not recompressing "
                f"on exit (run `tracer compact {output}` when convenient)",
                markup=False,
            )
    with open(output, "rb") as f:
        integrity = verify_trace(f)
    summary = RecordSummary(
        trace=str(output),
        connections=recorder.stats.connections,
        frames=recorder.stats.frames,
        bytes=recorder.stats.bytes,
        creates=recorder.stats.creates,
        dropped_frames=recorder.stats.dropped_frames,
        write_error=recorder.stats.write_error,
        command_exit=exit_code,
        trace_ok=integrity.ok,
        unrecorded=[g.to_json() for g in recorder.stats.unrecorded.values()],
    )
    if json:
        emit_json(summary.to_json())
    else:
        render_summary(summary, warn)
    if exit_code is not None:
        return exit_code
    return 0 if integrity.ok and recorder.stats.write_error is None else 1


def _record_with_tui(
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
            running["loop"], running["stop"] = asyncio.get_running_loop(), asyncio.Event()
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
                loop.call_soon_threadsafe(stop.set)
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
    code: int | None = outcome.get("code")
    return code


def _close(recorder: Recorder, command: list[str] | None) -> None:
    """Finish the trace; the command line goes in last, redacted with all secrets learned."""
    if command:
        recorder.annotate("tracer.command", shlex.join(command))
    recorder.close()


def _report_write_error(message: str) -> None:
    """Said the moment writing fails (from the writer thread); the proxy keeps forwarding."""
    sys.stderr.write(
        f"tracer record: cannot write the trace: {message}; still forwarding traffic, but "
        "from now on frames are not recorded (the summary lists them)\n"
    )
    sys.stderr.flush()


async def _run_child(
    command: list[str], env: dict[str, str], stop: asyncio.Event, log: Path | None = None
) -> int:
    try:
        if log is None:
            child = await asyncio.create_subprocess_exec(*command, env=env)
        else:
            with open(log, "wb") as out:
                child = await asyncio.create_subprocess_exec(
                    *command, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out
                )
    except OSError as exc:
        raise CLIError(f"cannot run {command[0]!r}: {exc.strerror}", exit_code=127) from None
    waiter = asyncio.create_task(child.wait())
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if not waiter.done():  # Ctrl-C or SIGTERM: pass it on, then wait a little
        with contextlib.suppress(ProcessLookupError):
            child.terminate()
        try:
            async with asyncio.timeout(5):
                await waiter
        except TimeoutError:
            child.kill()
            await waiter
    stopper.cancel()
    code = waiter.result()
    return code if code >= 0 else 128 - code  # killed by a signal: 128 + its number


def _compact_in_place(path: Path) -> None:
    """Recompress the finished trace; the live one stays if anything goes wrong."""
    tmp = path.with_name(f".{path.name}.compact")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(path, "rb") as src, os.fdopen(fd, "wb") as dst:
            compact_trace(src, dst)
        os.replace(tmp, path)
    except Exception:
        with contextlib.suppress(OSError):
            tmp.unlink()
