"""Exports (JSONL, HAR, Perfetto, OTLP, Parquet), HAR import, and `tracer query`."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import jsonschema
import pyarrow.parquet as pq
import pytest
import zstandard
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.conftest import ROOT, assert_clean_error, run_tracer
from tracer.analysis import analyse
from tracer.trace import Close, Direction, Frame, Opcode, Open, create_trace, open_trace

HERE = Path(__file__).parent
SAMPLES = ROOT / "traces"
DEVTOOLS_KEY = "sk-proj-devtoolsFAKE0123456789abcdefghijklmnopqrstu"


def _report(path: Path):
    with open_trace(path) as reader:
        return analyse(reader)


def _frames(path: Path) -> list[Frame]:
    with open_trace(path) as reader:
        return [r for r in reader if type(r) is Frame]


@pytest.fixture
def mixed_trace(tmp_path: Path) -> Path:
    """Every kind of frame: text, binary, fragments, control frames, invalid UTF-8 text."""
    path = tmp_path / "mixed.trace"
    with create_trace(path) as w:
        w.write(Open(conn=1, t_ns=1_000, url="/v1/responses", request_headers=[("Host", "h")]))
        frames = [
            (Direction.CLIENT, Opcode.TEXT, b'{"type":"response.create","input":"hi"}', True),
            (Direction.SERVER, Opcode.TEXT, '{"delta":"h\u00e9llo \u2603"}'.encode(), True),
            (Direction.SERVER, Opcode.BINARY, bytes(range(256)), True),
            (Direction.CLIENT, Opcode.TEXT, b'{"part":', False),
            (Direction.CLIENT, Opcode.CONT, b'"two"}', True),
            (Direction.CLIENT, Opcode.TEXT, b"\xe2\x98", False),  # a code point cut in two
            (Direction.CLIENT, Opcode.CONT, b"\x83", True),
            (Direction.SERVER, Opcode.PING, b"p1", True),
            (Direction.CLIENT, Opcode.PONG, b"p1", True),
            (Direction.CLIENT, Opcode.CLOSE, b"\x03\xe8bye", True),
            (Direction.SERVER, Opcode.CLOSE, b"\x03\xe8", True),
        ]
        for i, (d, op, payload, fin) in enumerate(frames):
            w.write(Frame(1, 2_000 + i * 1_234_567, d, op, payload, fin))
        w.write(Close(conn=1, t_ns=50_000_000, code=1000, reason="bye", by="client"))
    return path


def test_har_round_trip_keeps_every_message(tmp_path: Path, mixed_trace: Path):
    har = tmp_path / "m.har"
    back = tmp_path / "back.trace"
    assert run_tracer("export", str(mixed_trace), "-f", "har", "-o", str(har)).returncode == 0
    doc = json.loads(har.read_text())
    (entry,) = doc["log"]["entries"]
    assert entry["_resourceType"] == "websocket"
    msgs = entry["_webSocketMessages"]
    assert [m["type"] for m in msgs[:2]] == ["send", "receive"]
    assert msgs[1]["data"] == '{"delta":"h\u00e9llo \u2603"}'  # text stays text, as DevTools has it
    assert base64.b64decode(msgs[2]["data"]) == bytes(range(256))  # binary is base64
    proc = run_tracer("import", str(har), "-o", str(back), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["frames"] == 11
    before, after = _frames(mixed_trace), _frames(back)
    key = [(f.direction, f.opcode, f.payload, f.fin) for f in before]
    assert [(f.direction, f.opcode, f.payload, f.fin) for f in after] == key
    # Times survive to the microsecond: HAR keeps Unix seconds as a double (0.24 us apart at
    # today's dates) and the import rounds to the microsecond, so each time is within 0.74 us
    # and a difference of two within 1.48 us.
    offsets = [f.t_ns - before[0].t_ns for f in before]
    assert [
        abs((f.t_ns - after[0].t_ns) - o) <= 1_480 for f, o in zip(after, offsets, strict=True)
    ] == [True] * len(before)
    with open_trace(back) as reader:
        closes = [r for r in reader if type(r) is Close]
    assert [(c.code, c.reason, c.by) for c in closes] == [(1000, "bye", "client")]


@pytest.mark.parametrize("sample", ["incremental", "http", "reconnect"])
def test_sample_traces_survive_har_and_analyse_the_same(tmp_path: Path, sample: str):
    src = SAMPLES / f"{sample}.trace"
    har, back = tmp_path / "s.har", tmp_path / "s.trace"
    assert run_tracer("export", str(src), "-f", "har", "-o", str(har)).returncode == 0
    assert run_tracer("import", str(har), "-o", str(back)).returncode == 0
    a, b = _report(src), _report(back)
    fields = ("status", "input_items", "resent_bytes", "referenced_bytes", "output_tokens")
    assert [[getattr(t, k) for k in fields] for t in a.turns] == [
        [getattr(t, k) for k in fields] for t in b.turns
    ]
    assert a.summary.cache_losses == b.summary.cache_losses
    assert [(f.direction, f.payload) for f in _frames(src)] == [
        (f.direction, f.payload) for f in _frames(back)
    ]


def test_devtools_har_imports_and_analyses(tmp_path: Path):
    out = tmp_path / "devtools.trace"
    proc = run_tracer("import", str(HERE / "fixtures" / "devtools.har"), "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["connections"], summary["frames"], summary["skipped_entries"]) == (1, 19, 1)
    report = _report(out)
    assert [t.status for t in report.turns] == ["completed", "completed"]
    first, second = report.turns
    assert second.previous_response_id == first.response_id
    assert second.referenced_items == 2  # the first turn's user message and its answer
    assert second.cached_tokens == 768 and first.output_tokens == 5
    assert 300 < first.ttfe_ms < 320  # the messages' own times: 0.31 s to response.created
    assert 1_700 < second.client_ms < 1_800
    with open_trace(out) as reader:
        (op,) = [r for r in reader if type(r) is Open]
    assert op.url.startswith("/v1/responses?api_key=[REDACTED:")
    assert op.handshake_ns == 186_520_000
    raw = zstandard.ZstdDecompressor().decompressobj().decompress(out.read_bytes()[16:])
    assert DEVTOOLS_KEY.encode() not in raw and DEVTOOLS_KEY[8:].encode() not in raw


def test_otlp_json_parses_as_otlp_protobuf_with_genai_attributes(tmp_path: Path):
    src = SAMPLES / "reconnect.trace"
    out = tmp_path / "o.json"
    assert run_tracer("export", str(src), "-f", "otlp", "-o", str(out)).returncode == 0
    doc = json.loads(out.read_text())
    # OTLP/JSON writes ids as hex where protobuf's JSON mapping expects base64: convert them.
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for k in ("traceId", "spanId", "parentSpanId"):
                    if k in span:
                        span[k] = base64.b64encode(bytes.fromhex(span[k])).decode()
    msg = json_format.ParseDict(doc, ExportTraceServiceRequest())
    spans = list(msg.resource_spans[0].scope_spans[0].spans)
    report = _report(src)
    assert all(len(s.trace_id) == 16 and len(s.span_id) == 8 for s in spans)
    turns = [s for s in spans if s.name.startswith("chat")]
    assert len(turns) == len(report.turns)
    root = next(s for s in spans if not s.parent_span_id)
    assert all(t.parent_span_id == root.span_id for t in turns)

    def attrs(span) -> dict:
        return {a.key: json_format.MessageToDict(a.value) for a in span.attributes}

    for span, t in zip(turns, report.turns, strict=True):
        a = attrs(span)
        assert a["gen_ai.operation.name"] == {"stringValue": "chat"}
        assert a["gen_ai.request.model"] == {"stringValue": t.model}
        assert a.get("gen_ai.response.id") == (
            {"stringValue": t.response_id} if t.response_id else None
        )
        if t.status == "error":
            assert span.status.code == 2 and a["error.type"] == {"stringValue": t.error_code}
        if t.input_tokens is not None:
            assert a["gen_ai.usage.input_tokens"] == {"intValue": str(t.input_tokens)}
            assert a["gen_ai.usage.output_tokens"] == {"intValue": str(t.output_tokens)}
            assert a["gen_ai.usage.cache_read.input_tokens"] == {"intValue": str(t.cached_tokens)}
        assert a["tracer.resent.bytes"] == {"intValue": str(t.resent_bytes)}
        assert a["tracer.referenced.bytes"] == {"intValue": str(t.referenced_bytes)}
        if t.previous_response_id:
            assert a["tracer.previous_response_id"] == {"stringValue": t.previous_response_id}
        if t.ttft_ms is not None:
            assert a["gen_ai.response.time_to_first_chunk"]["doubleValue"] == pytest.approx(
                t.ttft_ms / 1e3, abs=1e-6
            )
            children = {s.name for s in spans if s.parent_span_id == span.span_id}
            assert {"time to first token", "generation"} <= children
        assert span.end_time_unix_nano - span.start_time_unix_nano == pytest.approx(
            t.duration_ms * 1e6, abs=1_000
        )
    lost = [s for s in turns if any(e.name == "tracer.cache_lost" for e in s.events)]
    assert len(lost) == report.summary.cache_losses >= 1
    again = tmp_path / "o2.json"
    assert run_tracer("export", str(src), "-f", "otlp", "-o", str(again)).returncode == 0
    assert again.read_bytes() == out.read_bytes()  # deterministic ids


def test_perfetto_json_is_trace_event_json_with_the_expected_slices(tmp_path: Path):
    src = SAMPLES / "reconnect.trace"
    out = tmp_path / "p.json"
    assert run_tracer("export", str(src), "-f", "perfetto", "-o", str(out)).returncode == 0
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, json.loads((HERE / "trace_event.schema.json").read_text()))
    report = _report(src)
    events = doc["traceEvents"]
    slices = [e for e in events if e["ph"] == "X"]
    turn_slices = [e for e in slices if e["cat"] == "turn"]
    assert len(turn_slices) == len(report.turns)
    ttft = [e for e in slices if e["name"] == "time to first token"]
    assert len(ttft) == sum(t.ttft_ms is not None for t in report.turns)
    client = [e for e in slices if e["cat"] == "client"]
    assert len(client) == sum(bool(t.client_ms) for t in report.turns)
    instants = [e for e in events if e["ph"] == "i" and e["cat"] == "cache"]
    assert len(instants) == report.summary.cache_losses >= 1
    tracks = {e["tid"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert len(tracks) == report.summary.connections
    # Slices on one track nest or follow each other: never a partial overlap.
    for tid in tracks:
        spans = sorted(
            ((e["ts"], e["ts"] + e["dur"]) for e in slices if e["tid"] == tid),
            key=lambda s: (s[0], -s[1]),
        )
        stack: list[tuple[float, float]] = []
        for start, end in spans:
            while stack and stack[-1][1] <= start + 1e-3:
                stack.pop()
            assert not stack or end <= stack[-1][1] + 1e-3, (tid, start, end, stack[-1])
            stack.append((start, end))


def test_jsonl_export_is_the_frames_json_listing(tmp_path: Path, mixed_trace: Path):
    out = tmp_path / "f.jsonl"
    assert run_tracer("export", str(mixed_trace), "-f", "jsonl", "-o", str(out)).returncode == 0
    listing = run_tracer("frames", str(mixed_trace), "--json", "--payload").stdout
    assert [json.loads(x) for x in out.read_text().splitlines()] == [
        json.loads(x) for x in listing.splitlines()
    ]


def test_parquet_tables_and_query_over_several_traces(tmp_path: Path):
    samples = [SAMPLES / f"{n}.trace" for n in ("incremental", "full-resend", "reconnect")]
    proc = run_tracer("export", *map(str, samples), "-f", "parquet", "-o", str(tmp_path / "pq"))
    assert proc.returncode == 0, proc.stderr
    reports = {str(p): _report(p) for p in samples}
    turns = pq.read_table(tmp_path / "pq" / "turns").to_pylist()
    assert len(turns) == sum(len(r.turns) for r in reports.values())
    inspect_fields = set(json.loads(run_tracer("inspect", str(samples[0]), "--json").stdout)[
        "turns"][0])  # fmt: skip
    # Every turn field is a column; a nested part (voice) is one column per field of it.
    assert inspect_fields - {"voice"} <= set(turns[0])
    assert {"voice_voice_latency_ms", "voice_input_audio_s", "voice_interrupted"} <= set(turns[0])
    assert "voice" not in turns[0] and turns[0]["voice_voice_latency_ms"] is None
    frames = pq.read_table(tmp_path / "pq" / "frames")
    assert frames.num_rows == sum(len(_frames(p)) for p in samples)
    # Owner-only (with --payload they hold every payload), and written whole: no temp left.
    written = sorted((tmp_path / "pq").rglob("*"))
    assert [p.name for p in written if p.name.startswith(".")] == []
    for p in written:
        assert stat.S_IMODE(p.stat().st_mode) == (0o700 if p.is_dir() else 0o600), p

    sql = "select trace, sum(resent_bytes) as resent, count(*) as n from turns group by trace"
    proc = run_tracer("query", sql, *map(str, samples), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["columns"] == ["trace", "resent", "n"]
    got = {row[0]: (row[1], row[2]) for row in result["rows"]}
    assert got == {p: (r.summary.resent_bytes, len(r.turns)) for p, r in reports.items()}
    assert got[str(samples[1])][0] > 0 and got[str(samples[0])][0] == 0

    proc = run_tracer("query", "select sum(cache_losses) from traces", str(SAMPLES), "--json")
    total = sum(_report(p).summary.cache_losses for p in sorted(SAMPLES.glob("*.trace")))
    assert json.loads(proc.stdout)["rows"] == [[total]]


def test_bad_input_gives_one_line_errors(tmp_path: Path, small_trace: Path):
    bad_har = tmp_path / "bad.har"
    bad_har.write_text('{"log": {"entries": [{"request": 3}]}}')
    garbage = tmp_path / "garbage.trace"
    garbage.write_bytes(b"\x00" * 64)
    cases = [
        (("export", str(small_trace), "-f", "xml", "-o", "x"), 2),
        (("export", str(garbage), "-f", "har", "-o", str(tmp_path / "g.har")), 1),
        (("import", str(bad_har), "-o", str(tmp_path / "b.trace")), 1),
        (("import", str(small_trace), "-o", str(tmp_path / "c.trace")), 1),
        (("query", "select nope from turns", str(small_trace)), 1),
        (("query", "select 1", str(tmp_path / "missing.trace")), 1),
    ]
    for args, code in cases:
        proc = run_tracer(*args)
        assert proc.returncode == code, (args, proc.stderr)
        assert_clean_error(proc)


@pytest.mark.parametrize("fmt", ["jsonl", "har", "perfetto", "otlp"])
def test_exports_are_written_for_their_owner_only(tmp_path: Path, fmt: str):
    """An export holds what the session said: created 0600, as traces are."""
    out = tmp_path / f"x.{fmt}"
    sample = str(ROOT / "traces" / "incremental.trace")
    proc = run_tracer("export", sample, "-f", fmt, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_mode & 0o777 == 0o600


def test_the_html_report_is_written_for_its_owner_only(tmp_path: Path):
    out = tmp_path / "r.html"
    proc = run_tracer("report", str(ROOT / "traces" / "incremental.trace"), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_mode & 0o777 == 0o600


def test_parquet_turns_hold_every_figure_of_inspect(tmp_path: Path):
    """The turns table, written from the report's columnar view of its turns, holds each
    turn's figures exactly as `tracer inspect --json` prints them (a nested part: one
    column per field of it)."""
    from tests.views.test_voice_views import voice_trace
    from tracer.export.tables import TURN_COLUMNS

    kinds = dict(TURN_COLUMNS)
    samples = [*sorted(SAMPLES.glob("*.trace")), voice_trace(tmp_path)]
    proc = run_tracer("export", *map(str, samples), "-f", "parquet", "-o", str(tmp_path / "pq"))
    assert proc.returncode == 0, proc.stderr
    table = pq.read_table(tmp_path / "pq" / "turns").to_pylist()
    rows = {(r["trace"], r["index"]): r for r in table}
    compared = 0
    for path in samples:
        printed = json.loads(run_tracer("inspect", str(path), "--json").stdout)["turns"]
        for turn in printed:
            row = rows.pop((str(path), turn["index"]))
            flat = {k: v for k, v in turn.items() if k != "voice"}
            for name, value in (turn["voice"] or {}).items():
                flat[f"voice_{name}"] = value
            for name, value in flat.items():
                got = row[name]
                if kinds[name] == "json" and isinstance(got, str):
                    got = json.loads(got)
                assert got == value, (path.name, turn["index"], name)
                compared += 1
    assert rows == {} and compared > 500
    assert any(r["voice_input_audio_s"] for r in table)  # a voice part, column by column
