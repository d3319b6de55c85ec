"""Capture overhead: small server frames through (a) a direct connection, (b) a bare websockets
pass-through forwarder, (c) `tracer record`, and (d) mitmdump when it is installed; and over
TLS, as a client that keeps the real host name sees it: (e) a bare TLS-terminating CONNECT
proxy that relays bytes, and (f) `tracer record --forward`, both in front of a wss server.

Run: python bench/bench_proxy.py [--frames 20000] [--rounds 3] [--no-forward]

Each path runs in its own processes; the rounds interleave the paths so that a noisy machine
hurts them alike. Each proxy's CPU time (every thread, from /proc) per frame it relayed is
printed too: it moves less with the machine's noise than a rate does, and a proxy far from
busy is not what limits its path. Latency is measured per frame from the server's send to
the client's receive (CLOCK_MONOTONIC is shared by the processes), with the server pacing
frames so that queueing does not dominate; throughput is a burst sent as fast as
backpressure allows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

DELTA = {
    "type": "response.output_text.delta",
    "sequence_number": 0,
    "item_id": "msg_0123456789abcdef0123456789abcdef",
    "output_index": 0,
    "content_index": 0,
    "delta": " token",
    "logprobs": [],
}
# What the deltas carry, word by word: model text, whose letters (the "sk" of "ask", the
# "gh" of "high") are where a redactor's pre-check is put to the test.
TEXT = (
    "The answer is high enough: we asked the right tool for each task, then thought it"
    " through and checked the risk before we wrote the patch."
)
WORDS = TEXT.split()

SOURCE = r"""
import asyncio, json, sys, time
from websockets.asyncio.server import serve

DELTA = json.loads(sys.argv[2])
WORDS = DELTA.pop("words")

async def handler(ws):
    async for message in ws:
        cmd, n, rate = message.split()
        n, rate = int(n), float(rate)
        gap = 1.0 / rate if rate else 0.0
        for i in range(n):
            DELTA["sequence_number"] = i
            DELTA["delta"] = " " + WORDS[i % len(WORDS)]
            DELTA["t"] = time.monotonic_ns()
            await ws.send(json.dumps(DELTA))
            if gap:
                await asyncio.sleep(gap)
        await ws.send("end")

async def main():
    tls = None
    if len(sys.argv) > 3:  # a wss server: its certificate chain and key, PEM
        import ssl
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(sys.argv[3])
    async with serve(handler, "127.0.0.1", int(sys.argv[1]), compression=None,
                     max_queue=None, ssl=tls):
        print("ready", flush=True)
        await asyncio.Future()

asyncio.run(main())
"""

TLS_FORWARDER = r"""
# A bare forward proxy: CONNECT, TLS terminated with the host's certificate, bytes relayed
# to the real server over a TLS connection of its own. No parsing, no recording.
import asyncio, ssl, sys

PORT, UPSTREAM, CHAIN, CA = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
server_ctx.load_cert_chain(CHAIN)
client_ctx = ssl.create_default_context(cafile=CA)

async def pipe(src, dst):
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    finally:
        dst.close()

async def handle(reader, writer):
    head = await reader.readuntil(b"\r\n\r\n")
    host = head.split()[1].split(b":")[0].decode()
    writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
    await writer.start_tls(server_ctx)  # no await before it: the hello must reach TLS
    up_reader, up_writer = await asyncio.open_connection(
        "127.0.0.1", UPSTREAM, ssl=client_ctx, server_hostname=host)
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer),
                         return_exceptions=True)

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", PORT)
    print("ready", flush=True)
    await server.serve_forever()

asyncio.run(main())
"""

FORWARDER = r"""
import asyncio, sys
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

UPSTREAM = sys.argv[2]

async def handler(client):
    async with connect(UPSTREAM + client.request.path, compression=None) as server:
        async def pipe(a, b):
            async for message in a:
                await b.send(message)
        await asyncio.gather(pipe(client, server), pipe(server, client))

async def main():
    async with serve(handler, "127.0.0.1", int(sys.argv[1]), compression=None):
        print("ready", flush=True)
        await asyncio.Future()

asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


async def measure(
    url: str,
    frames: int,
    rate: float,
    proxy: str | None = None,
    cafiles: tuple[str, ...] = (),
    bursts: tuple[int, ...] = (),
) -> tuple[list[float], float, dict[int, tuple[list[float], float]]]:
    """Latencies (us) of paced frames, and frames/s of a burst, through ``url`` (through
    the forward ``proxy``, trusting ``cafiles``, when given); and for each size in
    ``bursts``, the latencies of a burst's frames (under load: each waits for the ones
    before it) and its frames/s."""
    import ssl

    from websockets.asyncio.client import connect

    options: dict[str, object] = {"proxy": proxy}
    if cafiles:
        ctx = ssl.create_default_context(cafile=cafiles[0])
        for more in cafiles[1:]:
            ctx.load_verify_locations(more)
        options["ssl"] = ctx
    async with connect(url, compression=None, max_size=None, max_queue=None, **options) as ws:
        await ws.send(f"lat {frames // 4} {rate}")
        latencies = []
        while (msg := await ws.recv()) != "end":
            latencies.append((time.monotonic_ns() - json.loads(msg)["t"]) / 1e3)
        await ws.send(f"burst {frames} 0")
        first = None
        count = 0
        while (msg := await ws.recv()) != "end":
            count += 1
            if first is None:
                first = time.perf_counter()
        elapsed = time.perf_counter() - (first or time.perf_counter())
        loaded: dict[int, tuple[list[float], float]] = {}
        for size in bursts:
            await ws.send(f"burst {size} 0")
            lat: list[float] = []
            start = None
            while (msg := await ws.recv()) != "end":
                lat.append((time.monotonic_ns() - json.loads(msg)["t"]) / 1e3)
                start = start or time.perf_counter()
            took = time.perf_counter() - (start or time.perf_counter())
            loaded[size] = (lat, (len(lat) - 1) / took if took > 0 else 0.0)
    return latencies, (count - 1) / elapsed if elapsed > 0 else 0.0, loaded


def cpu_seconds(pid: int | None) -> float | None:
    """CPU time (user + system, every thread) process ``pid`` has used; None off Linux."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--rate", type=float, default=2000.0, help="paced frames per second")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-forward", action="store_true", help="skip the TLS forward paths")
    ap.add_argument(
        "--bursts",
        default="1000,5000,20000",
        help="burst sizes whose frames' latency under load is measured ('' for none)",
    )
    ap.add_argument(
        "--record-arg",
        action="append",
        default=[],
        help="an extra argument for tracer record (e.g. --record-arg=--no-redact)",
    )
    args = ap.parse_args()
    bursts = tuple(int(b) for b in args.bursts.split(",") if b)
    via: dict[str, tuple[str | None, tuple[str, ...]]] = {}  # path: its proxy and CAs
    pids: dict[str, int] = {}  # path: its proxy's process

    procs: list[subprocess.Popen[bytes]] = []
    tmp = tempfile.mkdtemp(prefix="tracer-bench-")
    try:
        src = free_port()
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", SOURCE, str(src), json.dumps({**DELTA, "words": WORDS})],
                stderr=subprocess.DEVNULL,  # port probes make it log handshake errors
            )
        )
        wait_port(src)
        paths = {"a_direct": f"ws://127.0.0.1:{src}/v1/responses"}
        fwd = free_port()
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", FORWARDER, str(fwd), f"ws://127.0.0.1:{src}"],
                stderr=subprocess.DEVNULL,
            )
        )
        paths["b_forwarder"] = f"ws://127.0.0.1:{fwd}/v1/responses"
        pids["b_forwarder"] = procs[-1].pid
        rec = free_port()
        trace = os.path.join(tmp, "bench.trace")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "tracer", "record", "--upstream",
                 f"ws://127.0.0.1:{src}", "-o", trace, "--listen", f"127.0.0.1:{rec}",
                 "--no-compact", *args.record_arg],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
        paths["c_tracer_record"] = f"ws://127.0.0.1:{rec}/v1/responses"
        pids["c_tracer_record"] = procs[-1].pid
        if shutil.which("mitmdump"):
            mitm = free_port()
            procs.append(
                subprocess.Popen(
                    ["mitmdump", "-q", "--mode", f"reverse:http://127.0.0.1:{src}",
                     "-p", str(mitm)],
                    stdout=subprocess.DEVNULL,
                )
            )  # fmt: skip
            paths["d_mitmdump"] = f"ws://127.0.0.1:{mitm}/v1/responses"
        for url in paths.values():
            wait_port(int(url.split(":")[2].split("/")[0]))
        if not args.no_forward:
            paths.update(start_forward_paths(procs, tmp, via, pids))

        fields = ["p50", "p99", "fps", "cpu_us"]
        sent = args.frames // 4 + args.frames + sum(bursts)  # frames a measure relays
        fields += [f"{m}@{b}" for b in bursts for m in ("load_p50", "load_p99", "fps")]
        results: dict[str, dict[str, list[float]]] = {k: {f: [] for f in fields} for k in paths}
        for _ in range(args.rounds):
            for name, url in paths.items():
                proxy, cafiles = via.get(name, (None, ()))
                cpu = cpu_seconds(pids.get(name))
                lat, fps, loaded = asyncio.run(
                    measure(url, args.frames, args.rate, proxy, cafiles, bursts)
                )
                after = cpu_seconds(pids.get(name))
                if cpu is not None and after is not None:  # the proxy's CPU for each frame
                    results[name]["cpu_us"].append((after - cpu) / sent * 1e6)
                results[name]["p50"].append(pct(lat, 50))
                results[name]["p99"].append(pct(lat, 99))
                results[name]["fps"].append(fps)
                for size, (blat, bfps) in loaded.items():
                    results[name][f"load_p50@{size}"].append(pct(blat, 50))
                    results[name][f"load_p99@{size}"].append(pct(blat, 99))
                    results[name][f"fps@{size}"].append(bfps)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)

    summary = {
        name: {k: statistics.median(v) if v else 0.0 for k, v in r.items()}
        for name, r in results.items()
    }
    pairs = [("c_over_b", "c_tracer_record", "b_forwarder")]
    if "f_tracer_forward" in summary:
        pairs.append(("f_over_e", "f_tracer_forward", "e_tls_forwarder"))
    ratios = {
        f"{label}_{field}": summary[ours][field] / summary[bare][field]
        for label, ours, bare in pairs
        for field in fields
        if summary[bare][field]
    }
    if args.json:
        print(json.dumps({"paths": summary, "ratios": ratios}, indent=2))
        return
    print(f"{args.frames} burst frames, {args.frames // 4} paced at {args.rate:.0f}/s, "
          f"median of {args.rounds} interleaved rounds")  # fmt: skip
    print(f"{'path':18} {'p50 us':>9} {'p99 us':>9} {'frames/s':>10} {'proxy CPU us/frame':>19}")
    for name, s in summary.items():
        cpu = f"{s['cpu_us']:.1f}" if s["cpu_us"] else "-"
        print(f"{name:18} {s['p50']:9.0f} {s['p99']:9.0f} {s['fps']:10.0f} {cpu:>19}")
    for size in bursts:
        print(f"-- a burst of {size} frames: latency under load")
        print(f"{'path':18} {'p50 us':>9} {'p99 us':>9} {'frames/s':>10}")
        for name, s in summary.items():
            print(
                f"{name:18} {s[f'load_p50@{size}']:9.0f} {s[f'load_p99@{size}']:9.0f} "
                f"{s[f'fps@{size}']:10.0f}"
            )
        for label, ours, bare in pairs:
            print(
                f"{ours} / {bare}: p50 {ratios[f'{label}_load_p50@{size}']:.2f}x, "
                f"p99 {ratios[f'{label}_load_p99@{size}']:.2f}x (target <= 1.10), throughput "
                f"{ratios[f'{label}_fps@{size}']:.2f}x (target >= 0.95)"
            )
    print("-- paced frames, and the --frames burst's throughput")
    print(
        f"tracer record / bare forwarder: p50 {ratios['c_over_b_p50']:.2f}x "
        f"(target <= 1.15), p99 {ratios['c_over_b_p99']:.2f}x, "
        f"throughput {ratios['c_over_b_fps']:.2f}x (target >= 0.85)"
    )
    if "f_over_e_p50" in ratios:
        print(
            f"tracer record --forward / bare TLS forwarder: p50 {ratios['f_over_e_p50']:.2f}x "
            f"(target <= 1.15), p99 {ratios['f_over_e_p99']:.2f}x, "
            f"throughput {ratios['f_over_e_fps']:.2f}x (target >= 0.85)"
        )


def start_forward_paths(
    procs: list[subprocess.Popen[bytes]],
    tmp: str,
    via: dict[str, tuple[str | None, tuple[str, ...]]],
    pids: dict[str, int],
) -> dict[str, str]:
    """A wss server as api.openai.com (trustme's certificate), a bare TLS forward proxy and
    `tracer record --forward` in front of it; the URLs a client asks for through each."""
    import trustme

    ca = trustme.CA()
    ca_file, chain = os.path.join(tmp, "ca.pem"), os.path.join(tmp, "chain.pem")
    ca.cert_pem.write_to_path(ca_file)
    ca.issue_cert("api.openai.com").private_key_and_cert_chain_pem.write_to_path(chain)
    src = free_port()
    procs.append(
        subprocess.Popen(
            [sys.executable, "-c", SOURCE, str(src), json.dumps({**DELTA, "words": WORDS}), chain],
            stderr=subprocess.DEVNULL,
        )
    )
    wait_port(src)
    bare = free_port()
    procs.append(
        subprocess.Popen(
            [sys.executable, "-c", TLS_FORWARDER, str(bare), str(src), chain, ca_file],
            stderr=subprocess.DEVNULL,  # port probes end its handler early
        )
    )
    pids["e_tls_forwarder"] = procs[-1].pid
    rec = free_port()
    tracer = subprocess.Popen(
        [sys.executable, "-m", "tracer", "record", "--forward", "--connect-to",
         f"api.openai.com:443:127.0.0.1:{src}", "--upstream-ca", ca_file, "-o",
         os.path.join(tmp, "forward.trace"), "--listen", f"127.0.0.1:{rec}", "--no-compact"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    procs.append(tracer)
    pids["f_tracer_forward"] = tracer.pid
    assert tracer.stderr is not None
    run_ca, proxy_url = "", f"http://127.0.0.1:{rec}"
    for line in tracer.stderr:  # the banner names the proxy URL (credentials) and CA bundle
        if b"HTTPS_PROXY=" in line:
            proxy_url = line.split(b"HTTPS_PROXY=")[1].split(b")")[0].decode()
        if b"SSL_CERT_FILE=" in line:
            run_ca = line.split(b"SSL_CERT_FILE=")[1].split()[0].decode()
            break
    wait_port(bare)
    wait_port(rec)
    url = "wss://api.openai.com/v1/responses"
    via["e_tls_forwarder"] = (f"http://127.0.0.1:{bare}", (ca_file,))
    via["f_tracer_forward"] = (proxy_url, (run_ca,))
    return {"e_tls_forwarder": url, "f_tracer_forward": url}


if __name__ == "__main__":
    main()
