"""Snapshot the JSON of the report commands over many traces, to compare two versions.

    python tests/package/json_snapshot.py OUT.json TRACE...

For each trace: ``inspect``, ``cache`` and ``latency --json``; ``diff --json`` of each trace
against the next; and ``replay --json`` serving the trace while ``tracer rerun`` replays its
client side against it (the rerun's own trace is analysed too). Fields that change from run
to run (ports, wall-clock times of the rerun) are dropped. Compare two snapshots with
``python tests/package/json_snapshot.py --compare A.json B.json``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

TRACER = [sys.executable, "-m", "tracer"]


def _json(*args: str) -> Any:
    proc = subprocess.run([*TRACER, *args], capture_output=True, text=True, timeout=300)
    if not proc.stdout.strip():
        return {"exit": proc.returncode, "stderr": proc.stderr.strip()}
    try:
        return {"exit": proc.returncode, "out": json.loads(proc.stdout)}
    except json.JSONDecodeError:  # JSON Lines
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        return {"exit": proc.returncode, "out": lines}


def _replay(trace: str) -> Any:
    server = subprocess.Popen(
        [*TRACER, "replay", trace, "--listen", "127.0.0.1:0", "--speed", "0", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stdout is not None
    base = json.loads(server.stdout.readline())["base_url"]
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "rerun.trace")
        upstream = base.removesuffix("/v1").replace("http", "ws", 1)
        rerun = subprocess.run([*TRACER, "rerun", trace, "--upstream", upstream, "-o", out,
                                "--json"], capture_output=True, text=True, timeout=300)  # fmt: skip
        server.terminate()
        stdout, _ = server.communicate(timeout=30)
        cache = _steady(_json("cache", out, "--json"))
    stopped = [json.loads(line) for line in stdout.splitlines() if '"stopped"' in line]
    return {"rerun_exit": rerun.returncode, "stopped": stopped, "rerun_cache": cache}


_VOLATILE = ("slowest_turns", "t0_ns", "t_start_s")


def _steady(data: Any) -> Any:
    """``data`` without the figures a new run's timing changes."""
    if isinstance(data, dict):
        return {k: _steady(v) for k, v in data.items()
                if not k.endswith(("_ms", "_share")) and k not in _VOLATILE}  # fmt: skip
    if isinstance(data, list):
        return [_steady(v) for v in data]
    return data


def snapshot(traces: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, trace in enumerate(traces):
        name = Path(trace).parent.name + "/" + Path(trace).name
        entry = {cmd: _json(cmd, trace, "--json") for cmd in ("inspect", "cache", "latency")}
        if i + 1 < len(traces):
            entry["diff_next"] = _json("diff", trace, traces[i + 1], "--json")
        entry["replay"] = _replay(trace)
        out[name] = entry
        print(name, file=sys.stderr)
    return out


def _walk(a: Any, b: Any, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{path}.{k}: {'only in B' if k not in a else 'only in A'}")
            else:
                _walk(a[k], b[k], f"{path}.{k}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _walk(x, y, f"{path}[{i}]", out)
    elif a != b:
        out.append(f"{path}: {json.dumps(a)[:120]} -> {json.dumps(b)[:120]}")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--compare"]:
        a, b = (json.loads(Path(p).read_text()) for p in argv[1:3])
        diffs: list[str] = []
        _walk(a, b, "", diffs)
        print("\n".join(diffs) or "identical")
        return 1 if diffs else 0
    Path(argv[0]).write_text(json.dumps(snapshot(argv[1:]), indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
