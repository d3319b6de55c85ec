"""``tracer report``: a self-contained HTML page, opened in headless Debian Chromium.

The browser is driven over the DevTools protocol: the page must load with no console error or
warning, no uncaught exception and no request other than the file itself, run its script,
show one row per turn (as ``tracer inspect --json`` counts them) and give a screenshot.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, assert_clean_error, run_tracer
from tests.report.cdp import Browser

ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "script", "h1", "h2", "div", "span",
    "b", "i", "p", "ul", "li", "table", "thead", "tbody", "tr", "th", "td", "svg", "rect", "text",
}  # fmt: skip


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()
        self.links: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.names.add(tag)
        self.links += [(k, v) for k, v in attrs if k in ("src", "href", "action", "srcset")]


SAMPLES = sorted((ROOT / "traces").glob("*.trace"))
MAX_PAGE_BYTES = 100_000  # "small enough to attach to an issue"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    try:
        b.call("Emulation.setDeviceMetricsOverride", width=1280, height=900,
               deviceScaleFactor=1, mobile=False)  # fmt: skip
        yield b
    finally:
        b.close()


def make_report(tmp_path: Path, *traces: Path) -> tuple[Path, dict[str, Any]]:
    out = tmp_path / "report.html"
    proc = run_tracer("report", *map(str, traces), "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    return out, json.loads(proc.stdout)


def open_page(browser: Browser, page: Path) -> None:
    browser.events.clear()
    browser.open(page.as_uri())


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.parametrize("trace", SAMPLES, ids=lambda p: p.stem)
def test_report_renders_in_chromium_with_every_turn(browser: Browser, trace: Path, tmp_path: Path):
    expected = json.loads(run_tracer("inspect", str(trace), "--json").stdout)
    page, info = make_report(tmp_path, trace)
    assert info == {"output": str(page), "bytes": page.stat().st_size,
                    "turns": len(expected["turns"]), "diff": False}  # fmt: skip
    print(f"{trace.name}: report {info['bytes']:,} bytes")
    assert info["bytes"] < MAX_PAGE_BYTES
    open_page(browser, page)
    assert browser.problems() == []
    assert browser.requests() == [page.as_uri()]  # nothing from the network, no CDN
    n = len(expected["turns"])
    assert browser.evaluate("document.body.dataset.ready") == str(n)  # the script ran
    assert browser.evaluate("document.querySelectorAll('#turns tbody tr').length") == n
    losses = expected["summary"]["cache_losses"]
    assert browser.evaluate("document.querySelectorAll('#turns tr.loss').length") == losses
    assert browser.evaluate("document.querySelectorAll('#bytes .loss-mark').length") == losses
    generated = sum(1 for t in expected["turns"] if (t["generation_ms"] or 0) > 0)
    assert browser.evaluate("document.querySelectorAll('#waterfall rect.gen').length") == generated
    resent = sum(1 for t in expected["turns"] if t["resent_bytes"])
    assert browser.evaluate("document.querySelectorAll('#bytes rect.resent').length") == resent
    # The charts are laid out (not zero-sized) and sit inside the page.
    box = browser.evaluate(
        "(() => { const r = document.getElementById('waterfall').getBoundingClientRect();"
        " return [r.width, r.height]; })()"
    )
    assert box[0] > 500 and box[1] >= 16 * n
    shot = browser.screenshot(tmp_path / f"{trace.stem}.png")
    width, height = png_size(shot)
    assert width >= 1000 and height > 900


def test_turn_table_sorts_on_a_header_click(browser: Browser, tmp_path: Path):
    trace = ROOT / "traces" / "reconnect.trace"
    expected = json.loads(run_tracer("inspect", str(trace), "--json").stdout)["turns"]
    page, _ = make_report(tmp_path, trace)
    open_page(browser, page)
    total = browser.evaluate(
        "[...document.querySelectorAll('#turns th')].findIndex(th => th.textContent == 'total')"
    )
    order = f"""(() => {{ document.querySelectorAll('#turns th')[{total}].click();
        return [...document.querySelectorAll('#turns tbody tr')].map(r => +r.cells[0].textContent);
    }})()"""
    ascending = browser.evaluate(order)
    assert sorted(ascending) == [t["index"] for t in expected]
    durations = {t["index"]: t["duration_ms"] for t in expected}
    keys = [-1.0 if durations[i] is None else durations[i] for i in ascending]
    assert keys == sorted(keys)
    assert browser.evaluate(order) == ascending[::-1]  # a second click reverses it
    assert browser.problems() == []


def test_report_of_two_traces_adds_the_diff(browser: Browser, tmp_path: Path):
    a, b = ROOT / "traces" / "reconnect.trace", ROOT / "traces" / "full-resend.trace"
    diff = json.loads(run_tracer("diff", str(a), str(b), "--json").stdout)
    page, info = make_report(tmp_path, a, b)
    assert info["diff"] is True and info["bytes"] < MAX_PAGE_BYTES
    print(f"diff report: {info['bytes']:,} bytes")
    open_page(browser, page)
    assert browser.problems() == []
    assert browser.evaluate("document.querySelectorAll('#diff-turns tbody tr').length") == len(
        diff["turns"]
    )
    headline = browser.evaluate(
        "[...document.querySelectorAll('.headline li')].map(li => li.textContent)"
    )
    assert headline == diff["headline"]
    png_size(browser.screenshot(tmp_path / "diff.png"))


def test_page_is_self_contained_and_escapes_what_it_shows(tmp_path: Path):
    from tracer.trace import Direction, Frame, Opcode, Open, create_trace

    hostile = tmp_path / "hostile.trace"
    with create_trace(hostile) as w:
        w.write(Open(conn=1, t_ns=0, url="/v1/responses?x=<script>alert(1)</script>"))
        create = b'{"type":"response.create","model":"<img src=x onerror=alert(1)>","input":"hi"}'
        w.write(Frame(1, 1_000_000, Direction.CLIENT, Opcode.TEXT, create))
    page, _ = make_report(tmp_path, hostile)
    html = page.read_text()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert html.count("<script>") == 1  # the page's own
    tags = Tags()
    tags.feed(html)
    assert tags.names <= ALLOWED_TAGS, tags.names - ALLOWED_TAGS
    assert not tags.links, tags.links  # no src, href or action: nothing to load
    assert not re.search(r"@import|url\(", html)


def test_report_refuses_bad_input_in_one_line(tmp_path: Path):
    bad = tmp_path / "bad.trace"
    bad.write_bytes(b"\x00" * 64)
    assert_clean_error(run_tracer("report", str(bad)))
    assert_clean_error(run_tracer("report", str(tmp_path / "missing.trace")))
    sample = str(ROOT / "traces" / "incremental.trace")
    assert_clean_error(run_tracer("report", sample, "-o", str(tmp_path / "no" / "dir.html")))
    assert_clean_error(run_tracer("report", sample, str(bad), "-o", str(tmp_path / "x.html")))
