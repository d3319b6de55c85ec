"""What a newcomer's first hour with the README ran into (#27), each checked through the CLI
or the view a user sees: one turn count everywhere, savings that add up, shares of a wall
time that exists, whole error lines, and failures drawn however short."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from tests.conftest import ROOT, run_tracer
from tracer.analysis import load
from tracer.tui.render import summary_text
from tracer.views.html import render_html
from tracer.views.timeline import bar
from tracer.vocab import FAILED, kb

TRACES = ROOT / "traces"


def _cut(tmp_path: Path, name: str = "cut.trace", size: int = 3000) -> Path:
    """A trace cut after its first connection's handshake (no turn yet)."""
    out = tmp_path / name
    out.write_bytes((TRACES / "reconnect.trace").read_bytes()[:size])
    return out


def test_cache_savings_add_up_to_the_figures_above_them():
    """`cache` printed "resent 136.7kB" and then "(152.2kB resent)": the second was resent
    items plus repeated request fields. The savings line names both parts now."""
    for name in ("full-resend", "incremental"):
        proc = run_tracer("cache", str(TRACES / f"{name}.trace"))
        assert proc.returncode == 0, proc.stderr
        s = load(TRACES / f"{name}.trace").report.summary
        line = next(x for x in proc.stdout.splitlines() if x.startswith("savings:"))
        assert f"{kb(s.bytes_sent - s.incremental_bytes)}B less" in line, line
        assert f"resent items {kb(s.resent_bytes)}B" in line, line
        assert f"repeated request fields {kb(s.resent_field_bytes)}B" in line, line
        assert f"resent {kb(s.resent_bytes)}B" in proc.stdout


def test_latency_of_a_trace_cut_after_the_handshake_shows_no_share(tmp_path: Path):
    """A cut trace spans no wall time: `latency` showed `handshake 2ms 195%` beside `wall
    0ms 100%`. With no wall time there is no share to show."""
    proc = run_tracer("latency", str(_cut(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()[:8] if line.strip()}
    assert "2ms" in rows["handshake"] and "%" not in proc.stdout.split("time to first")[0]
    data = json.loads(run_tracer("latency", str(_cut(tmp_path)), "--json").stdout)
    assert data["summary"]["wall_ms"] == 0 and data["summary"]["handshake_ms"] > 0


def test_turn_of_a_trace_without_turns_says_so(tmp_path: Path):
    proc = run_tracer("turn", str(_cut(tmp_path)), "0")
    assert proc.returncode != 0
    assert "has no turns; there is no turn 0" in proc.stderr and "to -1" not in proc.stderr
    proc = run_tracer("turn", str(TRACES / "error.trace"), "99")
    assert proc.returncode != 0 and "(0 to " in proc.stderr and "there is no turn 99" in proc.stderr


def test_stats_at_80_columns_prints_why_a_file_failed(tmp_path: Path):
    """At 80 columns the status column is cut; the reason follows the table in full."""
    bad = tmp_path / "notes.trace"
    bad.write_text("not a trace at all\n")
    proc = run_tracer("stats", str(TRACES / "codex.trace"), str(bad), env_extra={"COLUMNS": "80"})
    assert proc.returncode == 1
    reason = json.loads(run_tracer("stats", str(bad), "--json").stdout)["traces"][0]["error"]
    assert f"{bad}: {reason}" in proc.stdout.replace("\n", "")


def test_status_lines_on_stderr_are_not_wrapped_in_a_log(tmp_path: Path):
    """stderr to a pipe or a file: one status line stays one line, however long."""
    deep = tmp_path / ("a-rather-long-directory-name-" * 4)
    deep.mkdir()
    proc = run_tracer("inspect", str(_cut(deep)), env_extra={"COLUMNS": "80"})
    warning = [x for x in proc.stderr.splitlines() if "warning" in x]
    assert len(warning) == 1 and warning[0].endswith("analysed up to the cut"), proc.stderr


def test_every_command_counts_turns_the_same_way(tmp_path: Path):
    """`demo --reconnect-after 3` said "13 turns + 1 warm-up" and six lines later "14 turns +
    1 warm-up", where stats, the TUI and the report said 15. One count now: the trace's
    turns, warm-ups included and named."""
    path = TRACES / "reconnect.trace"
    report = load(path).report
    n, w = report.summary.turns, report.summary.warmups
    assert n == len(report.turns) and w == 1
    phrase = f"{n} turns ({w} warm-up)"
    assert phrase in run_tracer("inspect", str(path)).stdout
    assert (
        json.loads(run_tracer("stats", str(path), "--json").stdout)["total"]["summary"]["turns"]
        == n
    )
    assert summary_text(report).plain.startswith(f"{n} turns")
    page = render_html(str(path), report, version="test")
    assert re.search(rf"<b>{n}</b><span>turns \({w} warm-up\)</span>", page)
    proc = run_tracer("demo", "--reconnect-after", "3", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    counts = re.findall(r"(\d+) turns \((\d+) warm-up\)", proc.stdout)
    assert len(counts) == 2 and counts[0] == counts[1], proc.stdout
    demo = load(tmp_path / "tracer-demo.trace").report.summary
    assert counts[0] == (str(demo.turns), str(demo.warmups))


def test_a_failed_turn_shorter_than_a_cell_is_drawn():
    """error.trace's failed turn lasts under a millisecond: its timeline row drew nothing."""
    report = load(TRACES / "error.trace").report
    failed = [t for t in report.turns if t.failed]
    assert failed
    scale = report.summary.wall_ms / 1000 / 60  # 60 cells for the whole session
    for t in failed:
        row = bar(t, 0.0, scale, 60)
        assert FAILED.glyph in row.plain.strip(), (t.index, row.plain)
        assert any(FAILED.style in str(span.style) for span in row.spans), row.spans


def test_diff_names_a_warm_up_on_one_side():
    proc = run_tracer("diff", str(TRACES / "incremental.trace"), str(TRACES / "http.trace"))
    assert proc.returncode == 0, proc.stderr
    assert "1 warm-up only in A" in proc.stdout
    rows = json.loads(
        run_tracer("diff", str(TRACES / "incremental.trace"), str(TRACES / "http.trace"),
                   "--json").stdout
    )["turns"]  # fmt: skip
    assert rows[0]["changes"] == ["only in A (a warm-up)"], rows[0]
    text = json.loads(
        run_tracer(
            "diff", str(TRACES / "incremental.trace"), str(TRACES / "full-resend.trace"), "--json"
        ).stdout
    )
    changes = [c for row in text["turns"] for c in row["changes"] if c.startswith("input items")]
    assert changes and not any("only in" in c for c in changes), changes


def test_export_to_a_parquet_file_name_is_refused(tmp_path: Path):
    """`-o out.parquet` made a directory called out.parquet; Parquet writes one table per
    directory, so a file name is refused before anything is written."""
    out = tmp_path / "out.parquet"
    proc = run_tracer("export", str(TRACES / "http.trace"), "-f", "parquet", "-o", str(out))
    assert proc.returncode == 2 and "give -o DIR" in proc.stderr, proc.stderr
    assert not out.exists()


def test_every_export_format_is_one_registry_entry(tmp_path: Path):
    """The formats `tracer export -f` offers are the library's registry, and each entry
    exports a sample trace through the library call the CLI makes."""
    from tracer.export import FORMATS, ExportFormat, export_trace

    assert set(FORMATS) == {str(f) for f in ExportFormat}
    help_text = run_tracer("export", "--help", env_extra={"COLUMNS": "200"}).stdout
    assert all(name in help_text for name in FORMATS)
    for name, exporter in FORMATS.items():
        if name == "parquet":
            continue  # needs the parquet extra; tests/export covers it
        out = tmp_path / f"x{exporter.suffix}"
        result = export_trace(str(TRACES / "http.trace"), name, str(out), None)
        assert result["format"] == name and out.stat().st_size > 0, result


def test_record_says_a_launched_agent_failed_before_connecting(tmp_path: Path):
    """An agent that crashes at start: record said its client "may take its endpoint from
    somewhere tracer does not set"; it says the command's exit code now, and exits with it."""
    crash = [sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"]
    proc = run_tracer("record", "--upstream", "ws://127.0.0.1:9", "-o", str(tmp_path / "t.trace"),
                      "--", *crash)  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert "exited 3 before making any connection" in proc.stderr
    assert "endpoint" not in proc.stderr and "boom" in proc.stderr
    quiet = run_tracer("record", "--upstream", "ws://127.0.0.1:9", "-o",
                       str(tmp_path / "u.trace"), "--json", "--", *crash)  # fmt: skip
    assert "exited 3" in json.loads(quiet.stdout)["warning"]


def test_a_har_file_is_read_by_the_analysis_and_verify_points_at_import(tmp_path: Path):
    har = tmp_path / "session.har"
    har.write_text(json.dumps({"log": {"version": "1.2", "entries": []}}, indent=2))
    for command in ("inspect", "stats"):  # imported in memory (docs/import.md)
        proc = run_tracer(command, str(har))
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, command
    proc = run_tracer("verify", str(har))  # verify checks a trace file's integrity
    assert proc.returncode != 0 and "tracer import" in proc.stderr + proc.stdout
    binary = tmp_path / "noise.trace"
    binary.write_bytes(bytes(range(64)))
    assert "tracer import" not in run_tracer("inspect", str(binary)).stderr


def _two_sessions(path: Path, *, chained: bool) -> None:
    """Two WebSocket connections of one turn each: the second continues the first's
    conversation (``chained``: it names the first's response, as a client that reconnects
    does) or starts its own."""
    from tracer.trace.records import Close, Direction, Frame, Opcode, Open
    from tracer.trace.writer import create_trace

    def events(rid: str) -> list[bytes]:
        response = {"id": rid, "status": "completed", "output": []}
        return [json.dumps({"type": t, "response": response}).encode()
                for t in ("response.created", "response.completed")]  # fmt: skip

    first = [{"type": "message", "role": "user", "content": "list the files"}]
    second = [{"type": "message", "role": "user", "content": "and the tests?"}]
    with create_trace(path) as w:
        for conn, (items, rid) in enumerate(((first, "resp_1"), (second, "resp_2")), 1):
            t = conn * 100_000_000
            w.write(Open(conn, t, "ws://127.0.0.1:1/v1/responses"))
            create = {"type": "response.create", "model": "m", "input": items}
            if chained and conn == 2:
                create["previous_response_id"] = "resp_1"
            payload = json.dumps(create).encode()
            w.write(Frame(conn, t + 1000, Direction.CLIENT, Opcode.TEXT, payload))
            for k, event in enumerate(events(rid)):
                w.write(Frame(conn, t + 2000 + k, Direction.SERVER, Opcode.TEXT, event))
            w.write(Close(conn, t + 5000, 1000, "", "client"))


def test_latency_calls_a_new_connection_a_reconnect_only_when_it_is_one(tmp_path: Path):
    """Every new connection was labelled "reconnect", also an independent session's."""
    for chained, word in ((True, "reconnect"), (False, "a new session")):
        path = tmp_path / f"{word}.trace"
        _two_sessions(path, chained=chained)
        report = load(path).report
        assert len({t.conversation for t in report.turns}) == (1 if chained else 2)
        proc = run_tracer("latency", str(path))
        assert proc.returncode == 0, proc.stderr
        (line,) = [x for x in proc.stdout.splitlines() if "── connection 2" in x]
        assert word in line and ("reconnect" in line) == chained, line
    http = run_tracer("latency", str(TRACES / "http.trace"))
    assert "── connection" not in http.stdout  # one request a connection: no news
