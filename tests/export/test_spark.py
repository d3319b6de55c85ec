"""Fleets on a real engine: a few dozen traces exported to Parquet (Hive-style partitions
by date and model) are read by Spark in local mode without options, and its per-trace sums
of turns, resent bytes, cached tokens and cost equal `tracer query`'s and `tracer inspect
--json`'s. Java comes from tests/setup/install-java.sh when it is missing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_tracer
from tracer.trace import Close, Open, create_trace

sys.path.insert(0, str(ROOT / "bench"))
from session import session_frames

SQL = (
    "select trace, count(*) as turns, sum(resent_bytes) as resent, "
    "sum(cached_tokens) as cached, sum(cost_usd) as cost from turns group by trace"
)


@pytest.fixture(scope="module")
def spark():
    if shutil.which("java") is None:
        script = ROOT / "tests" / "setup" / "install-java.sh"
        proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0 and shutil.which("java"), proc.stderr[-2000:]
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("tracer-test")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _fleet(folder: Path, n: int) -> list[Path]:
    """``n`` generated agent sessions (incremental and full-resend, priced) and the samples."""
    folder.mkdir()
    paths = []
    for k in range(n):
        path = folder / f"agent-{k:02d}.trace"
        with create_trace(path, flush_interval=None) as w:
            w.write(Open(conn=1, t_ns=0, url="/v1/responses"))
            last = 0
            for f in session_frames(turns=3 + k % 5, deltas=20, full_resend=k % 2 == 0, seed=k):
                w.write(f)
                last = f.t_ns
            w.write(Close(conn=1, t_ns=last + 1, code=1000, by="client"))
        paths.append(path)
    for sample in sorted((ROOT / "traces").glob("*.trace")):  # cached tokens, HTTP, errors
        shutil.copy(sample, folder / sample.name)
        paths.append(folder / sample.name)
    return paths


def test_spark_reads_the_fleets_tables_with_tracers_figures(spark, tmp_path: Path):
    traces = _fleet(tmp_path / "traces", 24)
    fleet = tmp_path / "fleet"
    proc = run_tracer("export", *map(str, traces), "-f", "parquet", "-o", str(fleet), "--json",
                      timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    schema = json.loads((fleet / "_tracer_schema.json").read_text())
    assert schema["partitions"]["turns"] == ["date", "model"]

    turns = spark.read.parquet(str(fleet / "turns"))  # no options: partitions discovered
    assert {"date", "model"} <= set(turns.columns)
    turns.createOrReplaceTempView("turns")
    by_spark = {r["trace"]: r.asDict() for r in spark.sql(SQL).collect()}
    assert len(by_spark) == len(traces)

    proc = run_tracer("query", SQL, *map(str, traces), "--json", timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    by_query = {row[0]: dict(zip(result["columns"], row, strict=True)) for row in result["rows"]}
    assert by_query.keys() == by_spark.keys()
    for trace, got in by_spark.items():
        want = by_query[trace]
        assert (got["turns"], got["resent"], got["cached"]) == (
            want["turns"], want["resent"], want["cached"]), trace  # fmt: skip
        assert got["cost"] == pytest.approx(want["cost"]) if want["cost"] is not None else (
            got["cost"] is None)  # fmt: skip
    for path in traces[::5]:  # and against inspect, trace by trace
        summary = json.loads(run_tracer("inspect", str(path), "--json").stdout)["summary"]
        got = by_spark[str(path)]
        assert (got["turns"], got["resent"]) == (summary["turns"], summary["resent_bytes"])
        assert got["cached"] == summary["cached_tokens"]
        if summary["cost_usd"] is not None:
            assert got["cost"] == pytest.approx(summary["cost_usd"])
    assert sum(r["cost"] or 0 for r in by_spark.values()) > 0  # priced sessions are there
    models = {r["model"] for r in turns.select("model").distinct().collect()}
    assert {"gpt-5.1-codex", "tracer-demo-model"} <= models

    # DuckDB over the same folder, as docs/export.md shows it: the same sums.
    import duckdb

    rows = duckdb.sql(SQL.replace("from turns", f"from read_parquet('{fleet}/turns/**/*.parquet')"))
    by_duckdb = {r[0]: r[1:4] for r in rows.fetchall()}
    assert by_duckdb == {t: (g["turns"], g["resent"], g["cached"]) for t, g in by_spark.items()}

    connections = spark.read.parquet(str(fleet / "connections"))
    assert connections.count() == sum(
        json.loads(run_tracer("inspect", str(p), "--json").stdout)["summary"]["connections"]
        for p in traces
    )
