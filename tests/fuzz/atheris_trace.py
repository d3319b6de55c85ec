"""A coverage-guided fuzzer (atheris, libFuzzer) for everything that reads a trace.

Each input is a whole trace file. The reader may refuse it with TraceError; anything else
that escapes (an exception, a hang past -timeout, memory past -rss_limit_mb) is a crash and
libFuzzer writes the input out. Run by tests/fuzz/test_atheris.py; by hand:

    python tests/fuzz/atheris_trace.py -runs=100000 tests/fuzz/corpus traces
"""

from __future__ import annotations

import io
import sys

import atheris

with atheris.instrument_imports(include=["tracer"]):
    from tracer.analysis import Session, analyse
    from tracer.analysis.diff import diff_sessions
    from tracer.export.har import export_har
    from tracer.export.jsonl import jsonl_lines
    from tracer.export.otlp import export_otlp
    from tracer.export.perfetto import export_perfetto
    from tracer.export.tables import connection_rows, frame_rows, turn_rows
    from tracer.replay.recorded import load_connections
    from tracer.trace import TraceError, TraceReader
    from tracer.views.html import render_html


def one_input(data: bytes) -> None:
    try:
        reader = TraceReader(io.BytesIO(data), max_record_size=1 << 20)
        records = list(reader)
    except TraceError:
        return
    header = reader.header
    report = analyse(records)
    session = Session(details=True, contents=True)
    session.feed(records)
    session.finish()
    contents = session.contents()
    diff_sessions("a", report, contents, "b", report, contents)
    load_connections(records)
    export_har(header, records)
    for _ in jsonl_lines(records):
        pass
    export_otlp(report, header)
    export_perfetto(report)
    turn_rows(report, header, "t")
    connection_rows(report, header, "t")
    for _ in frame_rows(records, header, "t", payload=True):
        pass
    render_html("t", report)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
