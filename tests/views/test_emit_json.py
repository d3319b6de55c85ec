"""``tracer … --json`` writes with orjson: the same bytes the standard library writes, and
its way still where orjson refuses."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tracer.analysis.load import load
from tracer.views.output import emit_json

TRACES = sorted((Path(__file__).parents[2] / "traces").glob("*.trace"))


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.name)
def test_a_report_is_written_as_its_to_json(path: Path, capsys) -> None:
    """inspect hands the report over whole; what is printed is its to_json() as the
    standard library writes it, byte for byte."""
    report = load(path).report
    emit_json(report)
    assert (
        capsys.readouterr().out == json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n"
    )


def test_what_orjson_refuses_takes_the_standard_way(capsys) -> None:
    data = {"big": 2**70, "text": "é", "nested": [1, {"b": None}]}
    emit_json(data)
    assert json.loads(capsys.readouterr().out) == data
    emit_json({"x": math.nan, 3: "int key"})
    assert json.loads(capsys.readouterr().out) == {"x": None, "3": "int key"}


def test_a_diff_with_its_failures_is_written_as_its_to_json(capsys) -> None:
    from tracer.analysis import diff_files
    from tracer.views.output import shallow

    a, b = (p for p in TRACES if p.name in ("full-resend.trace", "incremental.trace"))
    result = diff_files(a, b)[0]
    emit_json({**shallow(result), "failed": ["ttft_ms"]})
    expected = {**result.to_json(), "failed": ["ttft_ms"]}
    assert capsys.readouterr().out == json.dumps(expected, indent=2, ensure_ascii=False) + "\n"


def test_a_dataclass_inside_what_orjson_refuses_still_prints(capsys) -> None:
    from dataclasses import dataclass

    @dataclass
    class Row:
        n: int

    emit_json({"rows": [Row(2**70)], "x": 1})
    assert json.loads(capsys.readouterr().out) == {"rows": [{"n": 2**70}], "x": 1}
