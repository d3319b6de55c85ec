"""Diff colours follow the judgement, not the sign: more cached tokens is better, more
resent context is worse, the client's own time is neither; in the terminal, the HTML page
and the TUI alike (they share tracer.analysis.metrics)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT, run_tracer
from tracer.analysis.metrics import judge, with_unit

FULL, INC = ROOT / "traces" / "full-resend.trace", ROOT / "traces" / "incremental.trace"


def test_each_metric_knows_which_way_is_better():
    assert judge("cached_tokens", 0, 38_275) == "better"
    assert judge("cached_tokens", 38_275, 0) == "worse"
    assert judge("resent_bytes", 0, 100) == "worse"
    assert judge("ttft_ms", 40.2, 30.0) == "better"
    assert judge("ttft_ms", 40.2, 39.9) == "same"  # the same once shown in whole ms
    assert judge("client_ms", 1, 5) == "changed"
    assert judge("turns", None, 3) == ""
    assert with_unit("request_bytes", 1525) == "1.5 kB"
    assert with_unit("ttft_ms", -0.3, signed=True) == "0 ms"
    assert with_unit("cached_tokens", 316, signed=True) == "+316 tok"


def _cell(html: str, metric: str) -> str:
    row = re.search(rf'<tr><td class="l">{metric}</td>.*?</tr>', html)
    assert row, metric
    return row.group(0)


def test_the_html_diff_colours_by_judgement(tmp_path: Path):
    out = tmp_path / "d.html"
    assert run_tracer("report", str(FULL), str(INC), "-o", str(out)).returncode == 0
    html = out.read_text()
    assert 'class="better">+38,275 tok' in _cell(html, "cached tokens")  # more: green
    assert 'class="better">-136.7 kB' in _cell(html, "resent")  # less resent: green
    back = tmp_path / "r.html"
    assert run_tracer("report", str(INC), str(FULL), "-o", str(back)).returncode == 0
    html = back.read_text()
    assert 'class="worse">-38,275 tok' in _cell(html, "cached tokens")  # fewer: red
    assert "same answer" in html and ">same<" not in html
