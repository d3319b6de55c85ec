"""Every view shows the report model's figure, never one of its own (issue: views computed
'new bytes' and the waterfall differently)."""

from __future__ import annotations

import ast
import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from tests.conftest import ROOT
from tracer.analysis import load
from tracer.views.html import render_html
from tracer.views.inspect import render_cache, turn_table

SAMPLES = sorted((ROOT / "traces").glob("*.trace"))


def _rects(page: str, cls: str) -> dict[int, str]:
    """turn index -> the title text of its bar segment of class ``cls``."""
    found = re.findall(
        rf'<rect class="bar {cls}"[^>]*><title>turn (\d+): [^<]*? ([^ <]+)</title>', page
    )
    return {int(i): v for i, v in found}


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_the_html_bytes_chart_adds_up_to_what_each_turn_sent(path: Path):
    """The stacked bar of a turn: new + resent + repeated fields + the rest = the create's
    bytes (request_bytes, counted from the trace's own frames), and 'new' is new_bytes."""
    report = load(path).report
    for t in report.turns:
        parts = [t.new_bytes, t.resent_bytes, t.resent_field_bytes, t.other_request_bytes]
        assert all(p >= 0 for p in parts), t
        assert sum(parts) == t.request_bytes, t
    page = render_html(str(path), report, version="test")
    new = _rects(page, "new")
    for t in report.turns:
        if t.new_bytes:
            assert t.index in new, t.index
    assert len(new) == sum(1 for t in report.turns if t.new_bytes)


def _text(renderable, width: int = 200) -> str:
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_the_terminal_cache_view_shows_new_bytes(path: Path):
    report = load(path).report
    console = Console(width=200, file=io.StringIO(), record=True, color_system=None)
    render_cache(report, console)
    text = console.export_text()
    assert "new" in text
    assert text.count("\n") >= len(report.turns)


def test_the_terminal_waterfall_draws_the_handshake():
    """The first turn of a connection has a handshake; the terminal timeline draws it
    (glyph ▓), as the TUI and the HTML report do from TurnReport.phases()."""
    report = load(ROOT / "traces" / "reconnect.trace").report
    first = [t for t in report.turns if t.handshake_ms]
    assert len(first) == 2  # one per connection
    # A wide timeline, so that a few milliseconds of handshake get a cell.
    table, timeline = turn_table(report, width=2400)
    assert timeline
    text = _text(table, width=2400)
    rows = {int(m.group(1)): line for line in text.splitlines()
            if (m := re.match(r"\s*(\d+)\s", line))}  # fmt: skip
    for t in report.turns:
        drawn = "▓" in rows[t.index]
        assert drawn == bool(t.handshake_ms), (t.index, rows[t.index])


def test_the_lists_of_figures_name_fields_of_the_model():
    """The projections and the compared metrics live on the model and name its fields, so
    adding or renaming a field cannot leave a stale list behind."""
    from dataclasses import fields

    from tracer.analysis import InspectReport, Summary, TurnReport

    turn_fields = {f.name for f in fields(TurnReport)}
    summary_fields = {f.name for f in fields(Summary)}
    # A compared figure may be a property that reads a part (a voice turn's latency).
    turn_figures = turn_fields | {n for n, v in vars(TurnReport).items() if isinstance(v, property)}
    assert set(TurnReport.COMPARED) <= turn_figures
    assert set(InspectReport.CACHE_FIELDS) <= turn_fields
    assert set(InspectReport.LATENCY_FIELDS) <= turn_fields
    assert set(Summary.COMPARED) <= summary_fields
    assert set(Summary.PROGRESS_FIELDS) <= summary_fields
    assert set(Summary.summed_fields()) <= summary_fields


def test_one_vocabulary_for_counts():
    from tracer.vocab import plural, turns_phrase

    assert [plural(n, "connection") for n in (0, 1, 2)] == [
        "0 connections", "1 connection", "2 connections"
    ]  # fmt: skip
    assert plural(1, "cache loss") == "1 cache loss" and plural(3, "mismatch") == "3 mismatches"
    assert turns_phrase(15, 1) == "15 turns (1 warm-up)" and turns_phrase(1, 0) == "1 turn"
    report = load(ROOT / "traces" / "reconnect.trace").report
    console = Console(width=200, file=io.StringIO(), record=True, color_system=None)
    from tracer.views.inspect import render_inspect

    render_inspect(report, console)
    text = console.export_text()
    assert f"2 connections (Responses API), {len(report.turns)} turns (1 warm-up)" in text
    assert "1 cache loss," in text and "(es)" not in text and "(s)" not in text


_MODEL_CLASSES = ("TurnReport", "Summary", "ConnectionReport", "CacheLoss", "TurnDetail")


def _model_fields() -> set[str]:
    from dataclasses import fields

    import tracer.analysis.diff as diff
    import tracer.analysis.model as model

    classes = [getattr(model, n) for n in _MODEL_CLASSES] + [diff.TurnDiff, diff.DiffReport]
    return {f.name for cls in classes for f in fields(cls)}


def _operands(node: ast.AST, names: set[str]) -> list[str]:
    """The report fields an arithmetic operand is made of: ``t.x``, ``(t.x or 0)``,
    ``len(d.x)``, or arithmetic on those (a field inside a call or an f-string is text)."""
    if isinstance(node, ast.Attribute):
        return [node.attr] if node.attr in names else []
    if isinstance(node, ast.BoolOp):
        return [n for v in node.values for n in _operands(v, names)]
    if isinstance(node, ast.BinOp):
        return _operands(node.left, names) + _operands(node.right, names)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len":
        return [n for a in node.args for n in _operands(a, names)]
    return []


def test_no_view_derives_a_figure_from_report_fields():
    """Views scale figures to their medium, but never combine two of them (a sum, a
    difference): a derived figure is a property of the model, so every view shows the
    same one. Checked on the source of every view, the TUI and the exports."""
    names = _model_fields()
    found = []
    paths = sorted(
        p for d in ("views", "tui", "export") for p in (ROOT / "tracer" / d).glob("*.py")
    )
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
                left, right = _operands(node.left, names), _operands(node.right, names)
                if left and right:
                    found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert not found, found
