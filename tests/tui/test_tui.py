"""``tracer tui``: the Textual inspector driven headless by its pilot, against sample traces.

Expected figures come from ``tracer inspect --json`` and ``tracer turn --json`` run as
subprocesses, not from the objects the app renders.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.widgets import DataTable, Input, Static

from tests.conftest import ROOT, assert_clean_error, run_tracer
from tracer.analysis import diff_files, load
from tracer.analysis.metrics import label
from tracer.tui.app import DiffScreen, FramesScreen, InspectorApp
from tracer.tui.findings import FindingsScreen

RECONNECT = ROOT / "traces" / "reconnect.trace"
INCREMENTAL = ROOT / "traces" / "incremental.trace"
SNAPSHOTS = Path(__file__).parent / "snapshots"

pytestmark = pytest.mark.anyio  # async tests run by anyio's pytest plugin, on asyncio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def inspect_json(path: Path) -> dict[str, Any]:
    proc = run_tracer("inspect", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def screen_text(app: InspectorApp) -> str:
    """What the terminal shows, as plain text (the same render Textual's screenshots use)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True,
                      force_terminal=True, color_system=None)  # fmt: skip
    console.print(
        app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    )
    return "\n".join(line.rstrip() for line in console.export_text().splitlines())


def table_rows(table: DataTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def static_text(widget: Static) -> str:
    console = Console(width=200, file=io.StringIO(), record=True, color_system=None)
    console.print(widget.content)
    return console.export_text()


def app_for(
    path: Path, against: Path | None = None, frame_budget: int | None = None
) -> InspectorApp:
    diff = diff_files(path, against)[0] if against else None
    budget = {} if frame_budget is None else {"frame_budget": frame_budget}
    session = load(path, details=True, **budget).session
    return InspectorApp(str(path), session, against=diff, path=path)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_main_screen_matches_its_snapshot(size: tuple[int, int]):
    app = app_for(RECONNECT)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        text = screen_text(app)
    snapshot = SNAPSHOTS / f"main_{size[0]}x{size[1]}.txt"
    if os.environ.get("TRACER_UPDATE_SNAPSHOTS"):
        snapshot.write_text(text + "\n")
    assert text + "\n" == snapshot.read_text(), f"screen differs from {snapshot}"
    lines = text.splitlines()
    assert len(lines) == size[1]
    assert max(len(line) for line in lines) <= size[0]


async def test_turn_list_and_detail_follow_the_cursor():
    expected = inspect_json(RECONNECT)
    turns = expected["turns"]
    app = app_for(RECONNECT)
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one("#turns", DataTable)
        rows = table_rows(table)
        assert [r[0] for r in rows] == [str(t["index"]) for t in turns]
        for row, t in zip(rows, turns, strict=True):
            if t["cache_loss"]:
                assert row[1] == "loss"
            share = round(100 * t["resent_bytes"] / t["request_bytes"])
            assert row[3] == f"{share}%"
        detail = app.query_one("#detail-body", Static)
        for i, t in enumerate(turns):
            assert table.cursor_row == i
            text = static_text(detail)
            assert f"turn {t['index']} conn {t['conn']}" in text
            assert (t["response_id"] or "-") in text
            if t["referenced_items"]:
                assert f"{t['referenced_items']} earlier items" in text
            await pilot.press("down")
        summary = static_text(app.query_one("#summary", Static))
        assert f"{expected['summary']['turns']} turns" in summary


async def test_detail_marks_resent_items_and_shows_the_output():
    turns = inspect_json(RECONNECT)["turns"]
    resent_turn = next(t for t in turns if t["resent_items"])
    proc = run_tracer("turn", str(RECONNECT), str(resent_turn["index"]), "--json")
    detail_json = json.loads(proc.stdout)
    app = app_for(RECONNECT)
    async with app.run_test(size=(160, 60)) as pilot:
        for _ in range(resent_turn["index"]):
            await pilot.press("down")
        text = static_text(app.query_one("#detail-body", Static))
    assert text.count("resent ") - text.count("resent (") >= resent_turn["resent_items"]
    assert text.count("\n  resent ") == sum(i["resent"] for i in detail_json["input"])
    for call in detail_json["calls"]:
        assert f"call {call['name']}(" in text


async def test_filter_by_status_text_and_event_type():
    turns = inspect_json(RECONNECT)["turns"]
    errors = [t["index"] for t in turns if t["status"] == "error"]
    assert errors
    app = app_for(RECONNECT)
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one("#turns", DataTable)
        await pilot.press("slash")
        assert app.query_one("#filter", Input).has_focus
        await pilot.press(*"status:error", "enter")
        assert [int(r[0]) for r in table_rows(table)] == errors
        assert table.has_focus
        await pilot.press("escape")
        assert table.row_count == len(turns)
        # A word of one turn's output text finds that turn.
        proc = run_tracer("turn", str(RECONNECT), "2", "--json")
        word = max(json.loads(proc.stdout)["text"].split(), key=len).lower()
        await pilot.press("slash", *word, "enter")
        shown = [int(r[0]) for r in table_rows(table)]
        assert 2 in shown and len(shown) < len(turns)
        await pilot.press("escape", "slash", *"type:function_call_arguments", "enter")
        with_calls = [int(r[0]) for r in table_rows(table)]
        assert with_calls and all(
            json.loads(run_tracer("turn", str(RECONNECT), str(i), "--json").stdout)["calls"]
            for i in with_calls
        )
        await pilot.press("escape", "slash", *"nothing-matches-this", "enter")
        assert table.row_count == 0
        assert "no turns match" in static_text(app.query_one("#detail-body", Static))


@pytest.mark.parametrize("budget", [None, 0], ids=["kept", "read-again"])
async def test_frames_view_lists_a_turns_frames_pretty_prints_and_searches(budget: int | None):
    """With a frame budget of 0 the session keeps no frames: the view reads them again."""
    turns = inspect_json(RECONNECT)["turns"]
    t = turns[2]
    app = app_for(RECONNECT, frame_budget=budget)
    kept = app.session.detail(2)
    assert kept is not None and kept.frames_kept is (budget is None)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("down", "down", "f")
        screen = app.screen
        assert isinstance(screen, FramesScreen)
        table = screen.query_one("#frames", DataTable)
        rows = table_rows(table)
        assert len(rows) == t["events"] + 1 + t["steers"]  # the create and every event
        assert rows[0][1] == "C→S" and rows[0][4] == "response.create"
        assert rows[-1][4] == "response.completed"
        body = static_text(screen.query_one("#frame-json", Static))
        assert '"type": "response.create"' in body  # indented JSON, not the raw payload
        assert t["previous_response_id"] in body
        await pilot.press("slash", *"response.completed", "enter")
        assert [r[4] for r in table_rows(table)] == ["response.completed"]
        assert '"type": "response.completed"' in static_text(
            screen.query_one("#frame-json", Static)
        )
        await pilot.press("escape")  # clears the search
        assert table.row_count == len(rows)
        await pilot.press("escape")  # back to the turn list
        assert not isinstance(app.screen, FramesScreen)


async def test_diff_against_another_trace_shows_the_aligned_turn():
    diff = json.loads(run_tracer("diff", str(RECONNECT), str(INCREMENTAL), "--json").stdout)
    row = next(r for r in diff["turns"] if r["a"] == 1)
    app = app_for(RECONNECT, against=INCREMENTAL)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("down", "d")
        assert isinstance(app.screen, DiffScreen)
        text = static_text(app.screen.query_one("#diff-body", Static))
        words = {"same": "same answer", "added": "only in B", "removed": "only in A"}
        assert f"turn {row['b']}: {words.get(row['kind'], row['kind'])}" in text
        for name, delta in row["deltas"].items():
            if delta is not None:
                assert label(name) in text
        await pilot.press("escape")
        assert not isinstance(app.screen, DiffScreen)
    # Without --against, `d` explains itself instead of failing.
    app = app_for(RECONNECT)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("d")
        await pilot.pause()
        assert not isinstance(app.screen, DiffScreen)
        assert any("--against" in str(n.message) for n in app._notifications)


async def test_q_quits():
    app = app_for(INCREMENTAL)
    async with app.run_test() as pilot:
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


def test_tui_command_refuses_bad_input_in_one_line(tmp_path: Path):
    bad = tmp_path / "bad.trace"
    bad.write_bytes(b"not a trace at all")
    assert_clean_error(run_tracer("tui", str(bad)))
    assert_clean_error(run_tracer("tui", str(tmp_path / "missing.trace")))
    assert_clean_error(run_tracer("tui", str(RECONNECT), "--against", str(bad)))


def test_the_docs_show_what_the_inspector_prints():
    """docs/tui.md's sample screen is lines of the 80x24 snapshot, which the test above
    holds to the real app: the docs cannot drift from the tool."""
    doc = (ROOT / "docs" / "tui.md").read_text()
    sample = doc.split("```\n 15 turns", 1)[1].split("```", 1)[0]
    screen = {line.rstrip() for line in (SNAPSHOTS / "main_80x24.txt").read_text().splitlines()}
    lines = [" 15 turns" + sample.splitlines()[0], *sample.splitlines()[1:]]
    assert len(lines) >= 3 and all(line.rstrip() in screen for line in lines), lines


async def test_the_findings_panel_lists_them_and_leads_to_their_turns():
    proc = run_tracer("findings", str(RECONNECT), "--json")
    expected = json.loads(proc.stdout)["traces"][0]["findings"]
    assert expected, "the reconnect sample has findings"
    app = app_for(RECONNECT)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("w")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, FindingsScreen)
        rows = table_rows(screen.query_one("#findings", DataTable))
        assert [r[1] for r in rows] == [f["code"] for f in expected]
        body = static_text(screen.query_one("#finding-body", Static))
        assert expected[0]["change"][:40] in body.replace("\n", " ")
        target = next(f for f in expected if f["turns"])
        for _ in range(expected.index(target)):
            await pilot.press("down")
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, FindingsScreen)
        table = app.query_one("#turns", DataTable)
        assert table_rows(table)[table.cursor_row][0] == str(target["turns"][0])
