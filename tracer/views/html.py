"""``tracer report``: one self-contained HTML page of a session (and of a diff).

Everything is inline: the styles, a few lines of script (sorting the turn table) and the
charts, drawn here as SVG from the report objects. The page loads nothing from anywhere,
so it opens offline and can be attached to an issue.
"""

# Over 400 lines: one self-contained page: its CSS, script and charts.

from __future__ import annotations

import math
from html import escape
from typing import Any

from tracer.analysis.diff import DiffReport
from tracer.analysis.findings import find
from tracer.analysis.metrics import judge, label, with_unit
from tracer.analysis.model import InspectReport, TurnReport
from tracer.views.findings import finding_line
from tracer.views.output import elided
from tracer.views.timeline import round_step
from tracer.vocab import (
    BEFORE_CREATE,
    DIFF_KINDS,
    FAILED,
    PHASES,
    RESENT,
    audio_seconds,
    count,
    duration,
    protocol_label,
    size,
    turns_phrase,
    usd,
)

__all__ = ["render_html"]

_CSS = """
:root { --fg:#1d2430; --muted:#6b7280; --line:#e5e7eb; --bg:#fff; --panel:#f8fafc;
  --new:#2563eb; --resent:#dc2626; --ref:#16a34a; --fields:#475569; --other:#cbd5e1;
  --client:#93c5fd; --hs:#a855f7; --resent-loss:#9333ea; --resent-http:#d97706;
  --ttfe:#94a3b8; --wait:#facc15; --gen:#22c55e; --bad:#7f1d1d; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  background: var(--bg); margin: 0 auto; max-width: 1200px; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.sub { color: var(--muted); margin-bottom: 16px; word-break: break-all; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 8px; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 8px;
  padding: 8px 10px; } .card b { display: block; font-size: 18px; }
.card span { color: var(--muted); font-size: 12px; } .card.bad b { color: var(--resent); }
.legend { display: flex; flex-wrap: wrap; gap: 14px; color: var(--muted); font-size: 12px;
  margin: 6px 0; } .legend i { display: inline-block; width: 12px; height: 10px;
  margin-right: 4px; vertical-align: middle; border-radius: 2px; }
.table-wrap { overflow-x: auto; max-width: 100%; }
.chart { overflow-x: auto; border: 1px solid var(--line); border-radius: 8px; padding: 6px; }
svg text { font: 11px system-ui, sans-serif; fill: var(--muted); }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: right;
  white-space: nowrap; } th { cursor: pointer; background: var(--panel); position: sticky;
  top: 0; } td.l, th.l { text-align: left; } tr.loss td { background: #fef2f2; }
tr.error td.status, tr.failed td.status, tr.loss td.status { color: var(--resent);
  font-weight: 600; } td.resent { color: var(--resent); font-weight: 600; }
td.wrap { white-space: normal; text-align: left; min-width: 280px; }
td.id { max-width: 200px; overflow: hidden; text-overflow: ellipsis; }
.sides { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr));
  gap: 12px; } .side { min-width: 0; }
.headline li { margin: 2px 0; } .muted { color: var(--muted); }
.worse { color: var(--resent); } .better { color: var(--ref); } .changed { color: #b45309; }
"""

_JS = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var asc = th.dataset.sort !== 'asc';
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
        var nx = x === '' ? -Infinity : Number(x), ny = y === '' ? -Infinity : Number(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? (nx > ny) - (nx < ny) : x.localeCompare(y);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
      th.dataset.sort = asc ? 'asc' : 'desc';
    });
  });
});
document.body.dataset.ready = String(document.querySelectorAll('#turns tbody tr').length);
"""


def _card(label: str, value: str, bad: bool = False) -> str:
    cls = "card bad" if bad else "card"
    return f'<div class="{cls}"><b>{escape(value)}</b><span>{escape(label)}</span></div>'


def _summary(report: InspectReport) -> str:
    s = report.summary
    share = "-" if s.referenced_share is None else f"{s.referenced_share:.0%}"
    cards = [
        _card(turns_phrase(s.turns, s.warmups).split(" ", 1)[1], f"{s.turns:,}"),
        _card("connections", str(s.connections)),
        _card("wall time", duration(s.wall_ms)),
        _card("bytes sent", size(s.bytes_sent)),
        _card("resent context", size(s.resent_bytes), bad=s.resent_bytes > 0),
        _card("referenced context", size(s.referenced_bytes)),
        _card("context referenced, not resent", share),
        _card("input tokens (cached)", f"{count(s.input_tokens)} ({count(s.cached_tokens)})"),
        _card("cache losses", str(s.cache_losses), bad=s.cache_losses > 0),
        _card("errors", str(s.errors), bad=s.errors > 0),
        _card(
            "time to first token p50 / p90",
            f"{duration(s.ttft_p50_ms)} / {duration(s.ttft_p90_ms)}",
        ),
        _card("client time", duration(s.client_ms)),
    ]
    if s.cost_usd is not None:
        cards += [
            _card("cost", usd(s.cost_usd)),
            _card("caching saved", usd(s.saved_by_cache_usd)),
        ]
    if s.voice_turns:
        cards += [
            _card(
                "audio in / out",
                f"{audio_seconds(s.input_audio_s)} / {audio_seconds(s.output_audio_s)}",
            ),
            _card(
                "voice latency p50 / p90",
                f"{duration(s.voice_latency_p50_ms)} / {duration(s.voice_latency_p90_ms)}",
            ),
            _card("the speaker waits p50", duration(s.perceived_latency_p50_ms)),
            _card("interruptions", str(s.interruptions)),
        ]
    return f'<div class="cards">{"".join(cards)}</div>'


def _legend(items: list[tuple[str, str]]) -> str:
    spans = "".join(f'<span><i style="background:{c}"></i>{escape(n)}</span>' for n, c in items)
    return f'<div class="legend">{spans}</div>'


def _shown(turns: list[TurnReport]) -> tuple[list[TurnReport], int]:
    """The turns a chart or table draws: all, or the first and last 500 of a long session."""
    head, omitted, tail = elided(turns)
    return [*head, *tail], omitted


def _omitted(count: int) -> str:
    if not count:
        return ""
    return (
        f"<p class='muted'>{count:,} turns in the middle are left out here to keep the page "
        "small; `tracer inspect --json` has them all.</p>"
    )


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values from 0 (never below) up to ``hi``, about ``count`` of them."""
    step = round_step(max(hi - max(lo, 0.0), 1e-9) / count)
    first = max(0.0, math.ceil(lo / step) * step)
    return [first + k * step for k in range(int((hi - first) / step) + 1)]


def _svg(ident: str, width: int, height: int) -> str:
    """An SVG that scales to its card (viewBox), never wider than it."""
    return (
        f'<svg id="{ident}" viewBox="0 0 {width} {height}" width="100%" '
        f'preserveAspectRatio="xMinYMin meet" role="img" style="max-width:{width * 1.6:.0f}px">'
    )


CHART_WIDTH = 600
"""A chart's width in SVG units. It scales to its card, up to 1.6 times (at 700 px the card
is about 620 px wide, so an 11 px label stays at least 11 px; a wide window makes the chart
larger, not smaller). A diff's side-by-side charts are ``SIDE_WIDTH`` wide."""
SIDE_WIDTH = 500


def _waterfall(report: InspectReport, ident: str = "waterfall", width: int = CHART_WIDTH) -> str:
    """Every turn on the session's time axis: client time, handshake, waits, generation;
    a failed turn ends in the failed colour, a warm-up says so."""
    turns, omitted = _shown(report.turns)
    row, label_w = 16, 86
    times = [t.times_ms(report.summary.t0_ns) for t in turns]  # ms since the session began
    starts = [lead for lead, _, _ in times]
    ends = [end for _, _, end in times]
    lo = min([0.0, *starts])
    hi = max([report.summary.wall_ms, *ends])
    span = (hi - lo) or 1.0
    scale = (width - label_w - 40) / span
    height = row * len(turns) + 44
    out = [_svg(ident, width, height)]
    for i, (t, start) in enumerate(zip(turns, starts, strict=True)):
        y = i * row + 4
        bad = t.failed or t.cut_short or t.cache_loss
        color = FAILED.colour if bad else "var(--muted)"
        name = f"#{t.index}" + (" warm-up" if t.warmup else "")
        out.append(
            f'<text class="turn-label" x="{label_w - 6}" y="{y + 10}" text-anchor="end" '
            f'style="fill:{color}">{name}</text>'
        )
        x = label_w + (start - lo) * scale
        for phase, value in t.phases():
            if value <= 0:
                continue
            p = PHASES[phase]
            cls, fill, title = p.css, p.colour, p.label
            w = max(1.0, value * scale)
            if phase not in BEFORE_CREATE and not t.completed:
                fill = FAILED.colour
            out.append(
                f'<rect class="seg {cls}" x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 5}" '
                f'fill="{fill}"><title>turn {t.index}: {title} {duration(value)}</title></rect>'
            )
            x += value * scale
        if t.failed or (t.cut_short and t.status != "unfinished"):  # the end it met
            out.append(
                f'<rect class="seg failed" x="{x:.1f}" y="{y}" width="3" height="{row - 5}" '
                f'fill="var(--bad)"><title>turn {t.index}: {escape(t.status)}</title></rect>'
            )
            x += 3
        if t.cache_loss or t.failed:
            what = f"cache lost ({t.cache_loss})" if t.cache_loss else (t.error_code or t.status)
            out.append(
                f'<text class="mark" x="{x + 4:.1f}" y="{y + 10}" style="fill:var(--bad)">'
                f"✕ {escape(what)}</text>"
            )
    axis_y = row * len(turns) + 18
    for ms in _ticks(lo, hi):
        out.append(
            f'<text class="tick" x="{label_w + (ms - lo) * scale:.1f}" y="{axis_y}" '
            f'text-anchor="middle">{duration(ms)}</text>'
        )
    out.append(
        f'<text class="axis-title" x="{label_w + (width - label_w - 40) / 2:.0f}" '
        f'y="{axis_y + 18}" text-anchor="middle">time since the session started</text></svg>'
    )
    legend = _legend(
        [(p.label, p.colour) for p in PHASES.values()] + [(FAILED.label, FAILED.colour)]
    )
    return legend + f'<div class="chart">{"".join(out)}</div>' + _omitted(omitted)


def _y_axis(
    ticks: list[float], peak: float, left: int, top: int, height: int, width: int
) -> list[str]:
    """Grid lines and labels (bytes) at round values, for the bytes chart."""
    out = []
    for value in ticks:
        y = top + height - value / peak * height
        out.append(
            f'<rect class="grid" x="{left - 4}" y="{y:.1f}" width="{width - left + 4}" '
            f'height="1" fill="var(--line)"/><text class="tick" x="{left - 6}" y="{y + 4:.1f}" '
            f'text-anchor="end">{size(value)}</text>'
        )
    return out


def _bytes_legend() -> str:
    return _legend(
        [
            ("new context sent", "var(--new)"),
            *((r.legend, r.colour) for r in RESENT.values()),
            ("request fields repeated (tools, instructions, ...)", "var(--fields)"),
            ("rest of the request", "var(--other)"),
            ("context referenced (previous_response_id), not sent", "var(--ref)"),
            ("✕ cache lost", "var(--bad)"),
        ]
    )


def _bytes_chart(report: InspectReport, ident: str = "bytes", width: int = CHART_WIDTH) -> str:
    """Bytes per turn: new context sent, context resent, request fields repeated, the rest
    of the request, and the context referenced instead; a y axis with round ticks. The
    bars share the chart's width; every k-th turn is labelled, k round, so labels never
    overlap."""
    turns, omitted = _shown(report.turns)
    height, top, left = 180, 18, 58
    pitch = (width - left - 10) / max(1, len(turns))  # one bar and its gap
    bar = min(28.0, pitch * 0.78)
    every = int(round_step(max(1.0, 30 / pitch)))  # a label needs ~30 units
    values = [
        (
            t.new_bytes,
            t.resent_bytes,
            t.resent_field_bytes,
            t.other_request_bytes,
            t.referenced_bytes,
        )
        for t in turns
    ]
    most = max([sum(v) for v in values] + [1])
    ticks = _ticks(0, most, 4)
    peak = max(most, ticks[-1]) or 1
    out = [_svg(ident, width, height + top + 40), *_y_axis(ticks, peak, left, top, height, width)]
    for i, (t, (new, resent, fields, other, ref)) in enumerate(zip(turns, values, strict=True)):
        x = left + i * pitch
        y = float(top + height)
        reason = t.resent_reason or "chain"
        for name, value, fill in (
            ("new", new, "var(--new)"),
            (f"resent {reason}", resent, RESENT[reason].colour),
            ("fields", fields, "var(--fields)"),
            ("other", other, "var(--other)"),
            ("referenced", ref, "var(--ref)"),
        ):
            h = value / peak * height
            if h <= 0:
                continue
            y -= h
            opacity = ' fill-opacity="0.45"' if name == "referenced" else ""
            out.append(
                f'<rect class="bar {name}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" '
                f'fill="{fill}"{opacity}><title>turn {t.index}: {name} {size(value)}</title></rect>'
            )
        if t.cache_loss:
            out.append(
                f'<text class="loss-mark" x="{x + bar / 2:.1f}" y="{y - 3:.1f}" '
                f'text-anchor="middle" '
                f'style="fill:var(--bad)">✕<title>turn {t.index}: cache lost '
                f"({escape(t.cache_loss)})</title></text>"
            )
        if t.index % every == 0 or (every > 1 and t.warmup):
            label = "w" if t.warmup else str(t.index)  # w: the warm-up
            out.append(
                f'<text x="{x + bar / 2:.1f}" y="{top + height + 14}" '
                f'text-anchor="middle">{label}</text>'
            )
    out.append(
        f'<text class="axis-title" x="{left + (width - left) / 2:.0f}" y="{top + height + 32}" '
        f'text-anchor="middle">turn (w: the warm-up)</text>'
        f'<text class="axis-title" x="0" y="{top - 6}">bytes</text></svg>'
    )
    legend = _bytes_legend()
    return legend + f'<div class="chart">{"".join(out)}</div>' + _omitted(omitted)


def _cell(value: Any, text: str | None = None, cls: str = "") -> str:
    v = "" if value is None else escape(str(value), quote=True)
    c = f' class="{cls}"' if cls else ""
    return f'<td{c} data-v="{v}">{escape(text if text is not None else str(value))}</td>'


def _turn_table(report: InspectReport) -> str:
    heads = [
        "#",
        "conn",
        "status",
        "model",
        "sent",
        "resent",
        "referenced",
        "cached tok",
        "ttfe",
        "ttft",
        "total",
        "client",
        "response",
    ]
    rows = []
    turns, omitted = _shown(report.turns)
    for t in turns:
        status = t.status + (f" ({t.error_code})" if t.error_code else "")
        status += " (warm-up)" if t.warmup else ""
        if t.cache_loss:
            status = f"cache lost ({t.cache_loss})"
        cls = " ".join(filter(None, ["turn", t.status, "loss" if t.cache_loss else ""]))
        rows.append(
            f'<tr id="turn-{t.index}" class="{cls}">'
            + _cell(t.index)
            + _cell(t.conn)
            + _cell(status, cls="l status")
            + _cell(t.model or "-", cls="l")
            + _cell(t.request_bytes, size(t.request_bytes))
            + _cell(t.resent_bytes, size(t.resent_bytes), "resent" if t.resent_bytes else "")
            + _cell(t.referenced_bytes, f"{t.referenced_items} / {size(t.referenced_bytes)}")
            + _cell(t.cached_tokens, "-" if t.cached_tokens is None else f"{t.cached_tokens:,}")
            + _cell(t.ttfe_ms, duration(t.ttfe_ms))
            + _cell(t.ttft_ms, duration(t.ttft_ms))
            + _cell(t.duration_ms, duration(t.duration_ms))
            + _cell(t.client_ms, duration(t.client_ms))
            + _cell(t.response_id or "-", cls="l muted id")
            + "</tr>"
        )
    head = "".join(
        f'<th class="{"l" if h in ("status", "model", "response") else ""}">{escape(h)}</th>'
        for h in heads
    )
    return (
        f'<div class="table-wrap"><table id="turns" class="sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>" + _omitted(omitted)
    )


def _voice_table(report: InspectReport) -> str:
    """The voice turns (Realtime): trigger, audio each way, first audio, voice latency."""
    heads = [
        "#",
        "conn",
        "trigger",
        "status",
        "audio in",
        "audio out",
        "ttfa",
        "voice latency",
        "speaker waits",
        "transcript",
        "audio cut",
        "response",
    ]
    rows = []
    turns, omitted = _shown([t for t in report.turns if t.voice is not None])
    for t in turns:
        v = t.voice
        assert v is not None
        status = t.status + (f" ({t.error_code})" if t.error_code else "")
        status += " (interrupted)" if v.interrupted and t.status == "completed" else ""
        rows.append(
            f'<tr class="turn {escape(t.status)}">'
            + _cell(t.index)
            + _cell(t.conn)
            + _cell(t.trigger, cls="l")
            + _cell(status, cls="l status")
            + _cell(v.input_audio_s, audio_seconds(v.input_audio_s))
            + _cell(v.output_audio_s, audio_seconds(v.output_audio_s))
            + _cell(v.ttfa_ms, duration(v.ttfa_ms))
            + _cell(v.voice_latency_ms, duration(v.voice_latency_ms))
            + _cell(v.perceived_latency_ms, duration(v.perceived_latency_ms))
            + _cell(v.transcription_delay_ms, duration(v.transcription_delay_ms))
            + _cell(v.output_audio_cut_s, audio_seconds(v.output_audio_cut_s))
            + _cell(t.response_id or "-", cls="l muted id")
            + "</tr>"
        )
    left = ("trigger", "status", "response")
    head = "".join(f'<th class="{"l" if h in left else ""}">{escape(h)}</th>' for h in heads)
    return (
        f'<div class="table-wrap"><table id="voice" class="sortable"><thead><tr>{head}</tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table></div>" + _omitted(omitted)
    )


def _findings(report: InspectReport) -> str:
    """The session's findings, each linking to the turns it names (``tracer findings``)."""
    found = find(report)
    if not found:
        return ""
    items = []
    for f in found:
        links = " ".join(f'<a href="#turn-{i}">#{i}</a>' for i in f.turns[:20])
        items.append(
            f'<li class="{escape(f.severity)}"><b>{escape(f.severity)}</b> '
            f"{escape(finding_line(f))}<br><span class='muted'>{escape(f.change)}</span>"
            + (f"<br>turns {links}" if links else "")
            + "</li>"
        )
    return f"<h2>Findings</h2><ul id='findings'>{''.join(items)}</ul>"


def _timing_table(report: InspectReport) -> str:
    """Each timed turn's time to first token split: outside the service, its own time
    (pre-inference and queue), the engine's (``--server-timing``)."""
    heads = ["#", "ttft", "outside the service", "pre-inference + queue", "engine"]
    rows = []
    turns, omitted = _shown([t for t in report.turns if t.server_timing is not None])
    for t in turns:
        rows.append(
            "<tr>"
            + _cell(t.index)
            + _cell(t.ttft_ms, duration(t.ttft_ms))
            + _cell(t.ttft_outside_ms, duration(t.ttft_outside_ms))
            + _cell(t.ttft_service_ms, duration(t.ttft_service_ms))
            + _cell(t.ttft_engine_ms, duration(t.ttft_engine_ms))
            + "</tr>"
        )
    head = "".join(f"<th>{escape(h)}</th>" for h in heads)
    return (
        f'<div class="table-wrap"><table id="timing" class="sortable"><thead><tr>{head}</tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table></div>" + _omitted(omitted)
    )


def _connections(report: InspectReport) -> str:
    rows = []
    head_c, omitted, tail_c = elided(report.connections)
    for c in [*head_c, *tail_c]:
        close = c.close_error or str(c.close_code or "-")
        if c.close_code and c.close_by:
            close += f" by {c.close_by}"
        rows.append(
            "<tr>"
            + _cell(c.conn)
            + _cell(c.url, cls="l")
            + _cell(c.transport, cls="l")
            + _cell(protocol_label(c.protocol), cls="l")
            + _cell(c.turns)
            + _cell(c.client_frames)
            + _cell(c.client_bytes, size(c.client_bytes))
            + _cell(c.server_frames)
            + _cell(c.server_bytes, size(c.server_bytes))
            + _cell(c.handshake_ms, duration(c.handshake_ms))
            + _cell(close, cls="l")
            + "</tr>"
        )
    heads = [
        "conn",
        "url",
        "transport",
        "protocol",
        "turns",
        "frames C→S",
        "bytes C→S",
        "frames S→C",
        "bytes S→C",
        "handshake",
        "closed",
    ]
    left = ("url", "transport", "protocol", "closed")  # aligned as their cells are
    head = "".join(f'<th class="{"l" if h in left else ""}">{escape(h)}</th>' for h in heads)
    return (
        '<div class="table-wrap"><table id="connections" class="sortable">'
        f"<thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
        + (f"<p class='muted'>{omitted:,} connections left out.</p>" if omitted else "")
    )


def _signed(name: str, a: float | None, b: float | None) -> tuple[str, str]:
    """B - A with its unit, and the class that says whether B is better or worse there."""
    if a is None or b is None:
        return "-", ""
    verdict = judge(name, a, b)
    return with_unit(name, b - a, signed=True), verdict if verdict != "same" else ""


def _diff(diff: DiffReport) -> str:
    head = "".join(f"<li>{escape(line)}</li>" for line in diff.headline) or (
        "<li>no significant change</li>"
    )
    totals = []
    for name in diff.deltas:
        a, b = diff.totals_a.get(name), diff.totals_b.get(name)
        if a is None and b is None:  # a figure neither session has (voice, for text agents)
            continue
        text, cls = _signed(name, a, b)
        totals.append(
            f'<tr><td class="l">{escape(label(name))}</td><td>{escape(with_unit(name, a))}</td>'
            f'<td>{escape(with_unit(name, b))}</td><td class="{cls}">{escape(text)}</td></tr>'
        )
    rows = []
    head_r, omitted, tail_r = elided(diff.turns)
    for r in [*head_r, *tail_r]:
        metrics = []
        for name in ("request_bytes", "resent_bytes", "cached_tokens", "ttft_ms", "duration_ms"):
            text, cls = _signed(name, r.a_values.get(name), r.b_values.get(name))
            metrics.append(f'<td class="{cls}">{escape(text)}</td>')
        rows.append(
            f'<tr class="pair {escape(r.kind)}"><td>{"-" if r.a is None else r.a}</td>'
            f"<td>{'-' if r.b is None else r.b}</td>"
            f'<td class="l">{escape(DIFF_KINDS[r.kind].words)}</td>'
            f'<td class="l">{escape(r.status_a or "-")} → {escape(r.status_b or "-")}</td>'
            + "".join(metrics)
            + f'<td class="wrap">{escape("; ".join(r.changes))}</td></tr>'
        )
    return (
        f'<h2>Diff: <span class="muted">{escape(diff.a)}</span> → '
        f'<span class="muted">{escape(diff.b)}</span></h2>'
        f'<ul class="headline">{head}</ul>'
        '<div class="table-wrap"><table id="diff-totals"><thead><tr><th class="l">metric</th>'
        "<th>A</th><th>B</th>"
        f"<th>B - A</th></tr></thead><tbody>{''.join(totals)}</tbody></table></div>"
        '<h2>Aligned turns</h2><div class="table-wrap">'
        '<table id="diff-turns" class="sortable"><thead><tr>'
        '<th>A #</th><th>B #</th><th class="l">kind</th><th class="l">status</th>'
        "<th>Δ sent</th><th>Δ resent</th><th>Δ cached</th><th>Δ ttft</th><th>Δ total</th>"
        f'<th class="l">what changed</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
        + (f"<p class='muted'>{omitted:,} aligned rows left out.</p>" if omitted else "")
    )


def _sides(diff: DiffReport, a: InspectReport, b: InspectReport) -> str:
    """A's and B's charts side by side (stacked in a narrow window), turns on each axis."""
    cols = []
    for side, name, report in (("a", diff.a, a), ("b", diff.b, b)):
        cols.append(
            f'<div class="side" id="side-{side}"><p><b>{side.upper()}</b> '
            f'<span class="muted">{escape(name)}</span></p>'
            + _waterfall(report, f"waterfall-{side}", SIDE_WIDTH)
            + _bytes_chart(report, f"bytes-{side}", SIDE_WIDTH)
            + "</div>"
        )
    return f"<h2>A and B side by side</h2><div class='sides'>{''.join(cols)}</div>"


def render_html(
    name: str,
    report: InspectReport,
    *,
    diff: DiffReport | None = None,
    other: InspectReport | None = None,
    version: str = "",
) -> str:
    """The whole page for ``report`` (the trace called ``name``), with ``diff`` if given
    (and B's charts beside A's, with ``other``, B's report)."""
    body = [
        f"<h1>tracer report</h1><div class='sub'>{escape(name)}"
        f"{' · tracer ' + escape(version) if version else ''}</div>",
        _summary(report),
        _findings(report),
    ]
    if report.turns:
        body += [
            "<h2>Waterfall</h2>",
            _waterfall(report),
            "<h2>Bytes sent per turn</h2>",
            _bytes_chart(report),
            "<h2>Turns</h2>",
            _turn_table(report),
        ]
        if report.summary.voice_turns:
            body += ["<h2>Voice</h2>", _voice_table(report)]
        if report.summary.timed_turns:
            body += ["<h2>Time to first token, by the service's timing</h2>", _timing_table(report)]
    elif report.summary.unknown_connections:
        body.append(
            "<p>No turns: this trace's connections speak a protocol tracer does not "
            "understand (protocol null); their frames and bytes are below.</p>"
        )
    else:
        body.append("<p>No turns in this trace.</p>")
    body += ["<h2>Connections</h2>", _connections(report)]
    if diff is not None:
        body.append(_diff(diff))
        if other is not None:
            body.append(_sides(diff, report, other))
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">"
        f"<title>tracer report: {escape(name)}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(body)}<script>{_JS}</script></body></html>\n"
    )
