"""A HAR written by a browser: Playwright records headless Chromium (Debian's, installed by
tests/setup/install-chromium.sh) on a page whose agent talks to the scripted upstream in
Responses WebSocket mode. Playwright keeps each WebSocket message's time in milliseconds
(DevTools' HAR export: seconds); both are read, and the figures equal the page's account
and the upstream's log."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.conftest import run_tracer
from tests.report.cdp import chromium_path
from tracer.analysis.load import load
from tracer.trace import Direction, Frame, open_trace
from tracer.upstream import running_upstream

ORIGIN = "http://agent.test"  # the page's origin, fulfilled by Playwright; admitted upstream
PAGE = """<!doctype html><title>agent</title><script>
const ws = new WebSocket(UPSTREAM);
window.account = {ids: [], received: 0, done: false};
let n = 0;
function ask() {
  const prev = window.account.ids.at(-1) || null;
  ws.send(JSON.stringify({type: "response.create", model: "gpt-5.6",
    input: [{role: "user", content: "step " + n}], previous_response_id: prev}));
}
ws.onopen = ask;
ws.onmessage = (m) => {
  window.account.received++;
  const e = JSON.parse(m.data);
  if (e.type !== "response.completed") return;
  window.account.ids.push(e.response.id);
  if (++n < TURNS) ask(); else { ws.close(1000); window.account.done = true; }
};
</script>"""


def test_a_playwright_har_of_a_browser_agent(tmp_path: Path):
    har = tmp_path / "agent.har"
    turns = 4
    with running_upstream(allow_origins=[ORIGIN]) as upstream:
        url = f"ws://127.0.0.1:{upstream.port}/v1/responses"
        page_html = PAGE.replace("UPSTREAM", json.dumps(url)).replace("TURNS", str(turns))
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium_path(),
                # The page is "public" (fulfilled by Playwright): let it reach 127.0.0.1.
                args=["--no-sandbox", "--disable-features=LocalNetworkAccessChecks"],
            )
            context = browser.new_context(record_har_path=str(har))
            page = context.new_page()
            page.route(f"{ORIGIN}/", lambda r: r.fulfill(body=page_html, content_type="text/html"))
            page.goto(f"{ORIGIN}/")
            page.wait_for_function("window.account.done", timeout=30_000)
            account = page.evaluate("window.account")
            context.close()  # writes the HAR
            browser.close()
        log = list(upstream.engine.log)
    doc = json.loads(har.read_text())
    assert doc["log"]["creator"]["name"] == "Playwright"
    proc = run_tracer("inspect", str(har), "--json")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)["turns"]
    assert [t["response_id"] for t in got] == account["ids"] == [e["response_id"] for e in log]
    assert [t["previous_response_id"] for t in got] == [e["previous_response_id"] for e in log]
    assert [t["input_tokens"] for t in got] == [e["usage"]["input_tokens"] for e in log]
    # Milliseconds read as such: each turn lasts milliseconds, not hours.
    assert all(0 < t["duration_ms"] < 10_000 for t in got), [t["duration_ms"] for t in got]
    out = tmp_path / "agent.trace"
    assert run_tracer("import", str(har), "-o", str(out)).returncode == 0
    with open_trace(out) as reader:
        assert reader.header.metadata["times"] == "recorded"
        frames = [r for r in reader if type(r) is Frame]
    assert sum(f.direction is Direction.SERVER for f in frames) == account["received"]
    assert [t.response_id for t in load(out).report.turns] == account["ids"]
