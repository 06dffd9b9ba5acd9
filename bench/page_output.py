"""The worksheet page under a flood of output, in real Chromium (issue 26, item 2).

Starts a chain (broker on a fresh SQLite file, a device, a gateway) and opens the worksheet
page in headless Chromium (Playwright, /usr/bin/chromium), then measures:

- settle: a cell printing LINES lines (10^6 by default), from the key press to a settled
  page: status "done", the last line on screen, and the next animation frame drawn; with
  the longest gap between two animation frames meanwhile (the page frozen that long).
- stop: a cell printing without end; once FLOOD lines of it reached the page, from the click
  on Stop to the status "error" (KeyboardInterrupt), and the longest frame gap meanwhile.
- server: the same LINES over HTTP without a page (evaluate, then /update until done), for
  how much of "settle" is the page's.

Run: .venv/bin/python bench/page_output.py [LINES] [TRIALS]
"""

from __future__ import annotations

import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from harness import Chain, NodeProcess  # noqa: E402
from protocol.config import generate_key  # noqa: E402
from test_browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

#: The longest time between two animation frames since `window.longest = 0`: how long the
#: page was deaf to clicks and drew nothing.
FRAME_GAPS = """window.longest = 0;
(function () {
  let last = performance.now();
  function frame(now) {
    window.longest = Math.max(window.longest, now - last);
    last = now;
    requestAnimationFrame(frame);
  }
  requestAnimationFrame(frame);
})();"""
TIMEOUT = 240_000  # ms
#: Lines hidden in the flooding cell before Stop is clicked.
FLOOD = 100_000
#: Room for 10^6 lines and their framing: the device cuts a cell's output at --max-output,
#: the broker at --cell-output.
MAX_OUTPUT = str(64 * 2**20)


class TrialFailed(Exception):
    """The chain did not run the cell to its end (its output says why)."""


def settled(page: Any) -> None:
    page.evaluate("new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)))")


def server_only(chain: Chain, lines: int) -> float:
    """Seconds for LINES lines through the chain with no page: evaluate, /update until done."""
    import json
    path = f"/home/guest/bench-{uuid.uuid4().hex[:8]}/1"
    began = time.monotonic()
    status, _ = chain.http("POST", f"{path}/evaluate",
                           json.dumps({"input": f"for i in range({lines}):\n    print('line', i)"})
                           .encode())
    assert status == 202, status
    while True:
        status, doc = chain.http("GET", f"{path}/update?since=0&wait=60&until=done", timeout=90)
        if doc["status"] in ("done", "error"):
            return time.monotonic() - began


def one_trial(page: Any, chain: Chain, lines: int) -> tuple[float, float, float, float, float]:
    page.goto(chain.url(f"/?ws=bench-{uuid.uuid4().hex[:8]}"))
    cell = page.locator(".cellbus-cell").nth(0)
    page.evaluate(FRAME_GAPS)
    cell.locator("textarea").fill(f"for i in range({lines}):\n    print('line', i)")
    began = time.monotonic()
    cell.locator("textarea").press("Control+Enter")
    first = page.locator(".cellbus-cell").nth(0)
    page.wait_for_function("['done', 'error'].includes("
                           "document.querySelector('.cellbus-cell').dataset.status)",
                           timeout=TIMEOUT)
    if first.get_attribute("data-status") != "done":  # the chain failed it (DeviceLost...)
        raise TrialFailed(first.locator(".cellbus-output").inner_text()[-300:])
    page.wait_for_function(f"document.querySelector('.cellbus-stdout').textContent"
                           f".includes('line {lines - 1}\\n')", timeout=TIMEOUT)
    settled(page)
    settle = time.monotonic() - began
    settle_longest = page.evaluate("window.longest")
    second = page.locator(".cellbus-cell").nth(1)
    page.evaluate("window.longest = 0")
    second.locator("textarea").fill("import itertools\nfor i in itertools.count():\n"
                                    "    print('line', i)")
    second.locator("textarea").press("Control+Enter")
    page.wait_for_function(f"(document.querySelectorAll('.cellbus-hidden-count')[1] || {{}})"
                           f".textContent?.replace(/,/g, '').match(/^(\\d+) lines/)?.[1] "
                           f">= {FLOOD}", timeout=TIMEOUT)
    page.evaluate("window.longest = 0")
    clicked = time.monotonic()
    second.get_by_role("button", name="Stop").click()
    page.locator(".cellbus-cell[data-status=error]").wait_for(timeout=TIMEOUT)
    stop = time.monotonic() - clicked
    return (settle, settle_longest, stop, page.evaluate("window.longest"),
            server_only(chain, lines))


def main() -> None:
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 10**6
    trials = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    from playwright.sync_api import sync_playwright
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))  # so the nodes are stopped
    nodes: list[NodeProcess] = []
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "bus.key"
        generate_key(key_file)
        chain = Chain(key_file, f"sqlite:///{tmp}/cellbus.db", nodes)
        try:
            chain.start_broker("--cell-output", MAX_OUTPUT)
            chain.start_device("--max-output", MAX_OUTPUT)
            chain.start_gateway()
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1000, "height": 800})
                rows = []
                for _ in range(trials):
                    try:
                        rows.append(one_trial(page, chain, lines))
                    except TrialFailed as e:
                        print(f"a trial failed, not counted: {e}")
                browser.close()
        finally:
            for node in nodes:
                node.stop(timeout=10)
                node.kill_group()
    for i, (settle, longest, stop, stop_longest, server) in enumerate(rows, 1):
        print(f"trial {i}: {lines} lines: page settled in {settle:.2f} s (server alone "
              f"{server:.2f} s; longest frame gap {longest:.0f} ms); Stop to stopped "
              f"{stop:.2f} s (longest frame gap {stop_longest:.0f} ms)")
    print(f"median: settled {statistics.median(r[0] for r in rows):.2f} s, server alone "
          f"{statistics.median(r[4] for r in rows):.2f} s, Stop to stopped "
          f"{statistics.median(r[2] for r in rows):.2f} s")


if __name__ == "__main__":
    main()
