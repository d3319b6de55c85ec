"""The HTML report at 700 and 1400 px wide in headless Chromium: no chart wider than its
card, every turn's row visible in the waterfall, round tick values, and a diff page that
shows A's and B's charts."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_tracer
from tests.report.cdp import Browser
from tests.report.test_html_report import make_report, open_page

RECONNECT, INCREMENTAL = ROOT / "traces" / "reconnect.trace", ROOT / "traces" / "incremental.trace"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    b = Browser(tmp_path_factory.mktemp("chromium-widths"))
    try:
        yield b
    finally:
        b.close()


def _at(browser: Browser, width: int) -> None:
    browser.call("Emulation.setDeviceMetricsOverride", width=width, height=900,
                 deviceScaleFactor=1, mobile=False)  # fmt: skip


_FITS = """
Array.from(document.querySelectorAll('.chart')).map(function (card) {
  var svg = card.querySelector('svg');
  return [svg.id, svg.getBoundingClientRect().width, card.clientWidth,
          card.scrollWidth <= card.clientWidth + 1];
})
"""
_ROWS = """
(function (id) {
  var svg = document.getElementById(id), box = svg.getBoundingClientRect();
  return Array.from(svg.querySelectorAll('text.turn-label')).map(function (t) {
    var r = t.getBoundingClientRect();
    return [t.textContent, r.left >= box.left - 1 && r.right <= box.right + 1 && r.height > 0];
  });
})
"""


def _ms(label: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+) (ms|s)", label).groups()  # type: ignore[union-attr]
    return float(number) * (1000 if unit == "s" else 1)


def _round_steps(values: list[float]) -> bool:
    steps = {round(b - a, 6) for a, b in pairwise(values)}
    if len(steps) != 1:
        return False
    (step,) = steps
    mantissa = step / 10 ** math.floor(math.log10(step))
    return any(math.isclose(mantissa, m) for m in (1, 2, 5)) and values[0] % step == 0


@pytest.mark.parametrize("width", [700, 1400])
def test_charts_fit_and_show_every_turn(browser: Browser, tmp_path: Path, width: int):
    turns = len(json.loads(run_tracer("inspect", str(RECONNECT), "--json").stdout)["turns"])
    page, _ = make_report(tmp_path, RECONNECT)
    _at(browser, width)
    open_page(browser, page)
    for ident, svg_w, card_w, no_scroll in browser.evaluate(_FITS):
        assert svg_w <= card_w + 1 and no_scroll, (ident, svg_w, card_w)
    rows = browser.evaluate(f"{_ROWS}('waterfall')")
    assert len(rows) == turns and all(visible for _, visible in rows), rows
    assert rows[0][0] == "#0 warm-up"
    ticks = browser.evaluate(
        "Array.from(document.querySelectorAll('#waterfall text.tick')).map(t => t.textContent)"
    )
    assert len(ticks) >= 3 and _round_steps([_ms(t) for t in ticks]), ticks
    failed = browser.evaluate("document.querySelectorAll('#waterfall rect.failed').length")
    assert (
        failed
        == sum(
            t["status"] in ("error", "failed", "incomplete")
            for t in json.loads(run_tracer("inspect", str(RECONNECT), "--json").stdout)["turns"]
        )
        > 0
    )  # the failed colour on the failed turn
    assert browser.problems() == []


@pytest.mark.parametrize("width", [700, 1400])
def test_the_diff_page_shows_both_sides(browser: Browser, tmp_path: Path, width: int):
    page, _ = make_report(tmp_path, RECONNECT, INCREMENTAL)
    _at(browser, width)
    open_page(browser, page)
    for side, trace in (("a", RECONNECT), ("b", INCREMENTAL)):
        n = len(json.loads(run_tracer("inspect", str(trace), "--json").stdout)["turns"])
        rows = browser.evaluate(f"{_ROWS}('waterfall-{side}')")
        assert len(rows) == n and all(v for _, v in rows), (side, rows)
        assert browser.evaluate(f"!!document.getElementById('bytes-{side}')")
    for ident, svg_w, card_w, no_scroll in browser.evaluate(_FITS):
        assert svg_w <= card_w + 1 and no_scroll, (ident, svg_w, card_w)
    tops = browser.evaluate(
        "['a','b'].map(s => document.getElementById('side-' + s).getBoundingClientRect().top)"
    )
    if width >= 1400:
        assert tops[0] == tops[1]  # side by side
    browser.screenshot(tmp_path / f"diff-{width}.png")


_SMALLEST_TEXT = """
(function () {
  var out = [];
  document.querySelectorAll('svg text').forEach(function (t) {
    var box = t.getBoundingClientRect();
    if (!box.height || !t.textContent.trim()) return;
    var svg = t.ownerSVGElement, vb = svg.viewBox.baseVal;
    var scale = vb && vb.width ? svg.getBoundingClientRect().width / vb.width : 1;
    out.push([t.textContent, parseFloat(getComputedStyle(t).fontSize) * scale]);
  });
  document.querySelectorAll('body *').forEach(function (e) {
    if (e.closest('svg')) return;
    var own = Array.from(e.childNodes).some(function (n) {
      return n.nodeType === 3 && n.textContent.trim();
    });
    if (own && e.getBoundingClientRect().height) {
      out.push([e.textContent.slice(0, 40), parseFloat(getComputedStyle(e).fontSize)]);
    }
  });
  return out;
})()
"""
_PAGE_WIDTH = "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"


def _rgb(colour: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", colour)[:3])


@pytest.mark.parametrize("width", [700, 1400])
@pytest.mark.parametrize("traces", [(RECONNECT,), (RECONNECT, INCREMENTAL)], ids=["report", "diff"])
def test_no_sideways_page_and_no_tiny_text(
    browser: Browser, tmp_path: Path, width: int, traces: tuple[Path, ...]
):
    """At 700 px the tables pushed the page sideways and the waterfall's labels shrank to
    about 7 px; at 1400 px the bytes chart stayed 400 px wide in a wide card."""
    page, _ = make_report(tmp_path, *traces)
    _at(browser, width)
    open_page(browser, page)
    scroll, client = browser.evaluate(_PAGE_WIDTH)
    assert scroll <= client, f"the page scrolls sideways: {scroll} > {client}"
    small = [(text, round(px, 1)) for text, px in browser.evaluate(_SMALLEST_TEXT) if px < 11]
    assert not small, small[:10]
    cards = browser.evaluate(_FITS)
    for ident, svg_w, card_w, _ in cards:
        assert svg_w >= min(card_w - 30, 900), (ident, svg_w, card_w)  # fills its card


def test_the_legend_colours_are_told_apart(browser: Browser, tmp_path: Path):
    """Every two swatches of a legend differ clearly (two near-identical oranges sat side
    by side in the bytes chart's)."""
    page, _ = make_report(tmp_path, RECONNECT)
    open_page(browser, page)
    legends = browser.evaluate(
        "Array.from(document.querySelectorAll('.legend')).map(l => Array.from("
        "l.querySelectorAll('i')).map(i => getComputedStyle(i).backgroundColor))"
    )
    assert legends
    for swatches in legends:
        colours = [_rgb(c) for c in swatches]
        for i, a in enumerate(colours):
            for b in colours[i + 1 :]:
                assert math.dist(a, b) > 60, (swatches, a, b)
