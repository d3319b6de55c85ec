"""``tracer replay``: serve a recorded session to live clients, offline."""

from __future__ import annotations

import sys
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
    TraceFile,
)
from tracer.replay import DEFAULT_MAX_QUEUE
from tracer.replay.recorded import Ignore, MatchMode, read_recording
from tracer.trace.caps import frames_cap
from tracer.views.output import emit_json, emit_json_line, stderr_console
from tracer.vocab import plural

if TYPE_CHECKING:
    import asyncio


# Over 60 lines: a typer command: its signature is the CLI.
@app.command()
def replay(
    file: TraceFile,
    listen: Listen = "127.0.0.1:8766",
    speed: Annotated[
        float, typer.Option(min=0.0, help="1: the recorded gaps; 2: twice as fast; 0: no waits.")
    ] = 1.0,
    match_mode: Annotated[
        MatchMode, typer.Option("--match", help="How a live message must match the recorded.")
    ] = MatchMode.TOLERANT,
    once: Annotated[
        bool,
        typer.Option(help="Exit once every recorded connection was served; exit 1 on mismatch."),
    ] = False,
    allow_remote: AllowRemote = False,
    max_frame: MaxFrame = DEFAULT_MAX_FRAME,
    max_queue: Annotated[
        int, typer.Option(min=1, help="Client messages held per connection before reading pauses.")
    ] = DEFAULT_MAX_QUEUE,
    allow_origin: AllowOrigin = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="Require this token (auto: a random one, printed) as the API key, in "
            "x-tracer-token, or as a /t/TOKEN path prefix.",
        ),
    ] = None,
    ignore: Annotated[
        list[str] | None,
        typer.Option(
            "--ignore",
            metavar="PATH",
            help="A JSON path tolerant matching skips, as $.key, $.metadata.* or "
            "$.input[*].id (repeatable; the per-run defaults are always skipped).",
        ),
    ] = None,
    verbose_mismatch: Annotated[
        bool,
        typer.Option(
            "--verbose-mismatch",
            help="Mismatch errors sent to the client quote what the recording holds "
            "(recorded data reaches whoever connects).",
        ),
    ] = False,
    json: JsonFlag = False,
) -> int:
    """Play the recorded server side of FILE to clients that connect (no network, no key)."""
    import asyncio
    import secrets

    from tracer.cli.running import run_until_signal
    from tracer.replay.server import ReplayServer

    host, port = (at := ListenAt.of(listen, allow_remote=allow_remote)).host, at.port
    try:
        skipped = Ignore(ignore or [])
    except ValueError as exc:
        raise CLIError(f"--ignore: {exc}", exit_code=2) from None
    recording = read_recording(file, max_frames=frames_cap())  # one streaming pass
    recorded, requests = recording.connections, recording.requests
    if not recorded and not requests:
        raise CLIError(f"{file} holds no WebSocket connection or HTTP request to replay")
    err = stderr_console()

    def log(line: str) -> None:
        if not json:
            err.print(f"tracer replay: {line}", markup=False)

    server = ReplayServer(
        recorded,
        requests=requests,
        host=host,
        port=port,
        speed=speed,
        mode=str(match_mode),
        log=log,
        max_frame=max_frame,
        max_queue=max_queue,
        allow_origins=allow_origin or [],
        token=secrets.token_urlsafe(18) if token == "auto" else token,
        verbose_mismatch=verbose_mismatch,
        ignore=skipped,
    )

    async def main(stop: asyncio.Event) -> None:
        try:
            await server.start()
        except OSError as exc:
            raise CLIError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        turns = sum(c.turns for c in recorded) + len(requests)
        listening = {"event": "listening", "base_url": server.base_url,
                     "connections": len(recorded)}  # fmt: skip
        if token == "auto":
            listening["token"] = server.guard.token
        if json:
            emit_json_line(listening)
        else:
            if token == "auto":
                err.print(
                    f"tracer replay: token {server.guard.token} (give it as the API key)",
                    markup=False,
                )
            err.print(
                f"tracer replay: {plural(len(recorded), 'recorded connection')} and "
                f"{plural(len(requests), 'HTTP request')}, {plural(turns, 'message')}, "
                f"on {server.base_url} (ws://{host}:{server.port}/...); Ctrl-C stops",
                markup=False,
            )
        sys.stdout.flush()
        waits = [asyncio.create_task(stop.wait())]
        if once:
            waits.append(asyncio.create_task(server.all_served.wait()))
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
        await server.close()

    run_until_signal(main)
    stats = server.stats
    summary = {
        "event": "stopped",
        "connections": stats.connections,
        "turns": stats.turns,
        "mismatches": stats.mismatches,
        "mismatch_count": stats.mismatch_count,
        "served": {str(k): v for k, v in stats.served.items()},
    }
    if json:
        emit_json_line(summary)  # JSON Lines, as the listening line
    else:
        err.print(
            f"tracer replay: served {plural(stats.connections, 'connection')}, "
            f"{plural(stats.turns, 'turn')}, {plural(stats.mismatch_count, 'mismatch')}",
            markup=False,
        )
    return 1 if once and stats.mismatches else 0


# Over 60 lines: a typer command: its signature is the CLI.
@app.command()
def rerun(
    file: TraceFile,
    upstream: Annotated[str, typer.Option(help="The live server, e.g. wss://api.openai.com.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Trace file for the new run.")],
    keep_client_time: Annotated[
        bool, typer.Option(help="Wait the recorded client time before each message.")
    ] = False,
    incremental: Annotated[
        bool,
        typer.Option(help="Send full resends as chained creates with only the new items."),
    ] = False,
    transport: Annotated[
        str,
        typer.Option(
            metavar="recorded|websocket",
            help="websocket: send recorded HTTP creates over one WebSocket instead.",
        ),
    ] = "recorded",
    api_key_env: Annotated[
        str, typer.Option(help="Environment variable with the key for Authorization: Bearer.")
    ] = "OPENAI_API_KEY",
    json: JsonFlag = False,
) -> int:
    """Re-send FILE's client side to a live server (chains rewritten) and record the new run."""
    import asyncio
    import os

    from tracer.capture.proxy import upstream_ws_base
    from tracer.capture.recorder import Recorder
    from tracer.cli.running import run_until_signal
    from tracer.replay.rerun import rerun as run_again
    from tracer.wire import ConnectError
    from tracer.wire.http import UpstreamGone

    if transport not in ("recorded", "websocket"):
        raise CLIError(f"--transport takes recorded or websocket; not {transport!r}", exit_code=2)
    try:
        base = upstream_ws_base(upstream)
    except ValueError as exc:
        raise CLIError(str(exc), exit_code=2) from None
    recording = read_recording(file, max_frames=frames_cap())
    recorded, requests = recording.connections, recording.requests
    if not recorded and not requests:
        raise CLIError(f"{file} holds no WebSocket connection or HTTP request to re-send")
    key = os.environ.get(api_key_env)
    headers = [("Authorization", f"Bearer {key}")] if key else []
    try:
        recorder = Recorder(output, metadata={"source": "tracer rerun", "of": str(file)})
    except OSError as exc:
        raise CLIError(f"cannot create {str(output)!r}: {exc.strerror}") from None

    async def main(stop: asyncio.Event) -> object:
        job = asyncio.create_task(
            run_again(
                recorded,
                base,
                recorder,
                headers=headers,
                keep_client_time=keep_client_time,
                incremental=incremental,
                requests=requests,
                http_over_websocket=transport == "websocket",
            )
        )
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({job, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not job.done():
            job.cancel()
            raise CLIError("interrupted; the new trace holds what was sent so far", exit_code=130)
        return job.result()

    try:
        result = run_until_signal(main)
    except ConnectError as exc:
        raise CLIError(str(exc)) from None
    except TimeoutError:
        raise CLIError("the live server did not finish a turn within 300 s") from None
    except UpstreamGone as exc:
        raise CLIError(f"the live server's HTTP answer: {exc}") from None
    except OSError as exc:
        raise CLIError(f"cannot reach {upstream}: {exc.strerror or exc}") from None
    finally:
        recorder.close()
    from dataclasses import asdict

    data = {"trace": str(output), **asdict(result)}  # type: ignore[call-overload]
    if json:
        emit_json(data)
    else:
        stderr_console().print(
            f"tracer rerun: {plural(data['turns'], 'turn')} over "
            f"{plural(data['connections'], 'connection')} "
            f"→ {output}; {data['rewritten_ids']} chained ids rewritten, "
            f"{data['made_incremental']} creates made incremental, errors: "
            f"{', '.join(data['errors']) or 'none'}",
            markup=False,
        )
    return 0
