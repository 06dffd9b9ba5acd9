"""Huge output keeps the page fast (issue 26, item 2): a text block shows its first and last
lines in a scroll box with "N lines hidden" between, and buttons to see or download all;
drawing waits for animation frames, so Stop and the status stay current during a flood.
(bench/page_output.py measures 10^6 lines; these tests use fewer, for a busy CI.)"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from test_browser import ARTIFACTS, browser, expect, open_worksheet, page, run, web  # noqa: F401

LINES = 100_000


def test_long_output_is_capped_with_all_of_it_a_click_away(page: Any, web: Any) -> None:
    cell = open_worksheet(page, web).nth(0)
    run(cell, f"for i in range({LINES}):\n    print('line', i)")
    expect(cell).to_have_attribute("data-status", "done", timeout=60_000)
    text = cell.locator(".cellbus-stdout")
    expect(text).to_contain_text(f"line {LINES - 1}")
    hidden = text.locator(".cellbus-hidden")
    expect(hidden).to_contain_text("lines hidden")
    shown = text.evaluate("e => e.innerText.split('\\n').filter(l => l.startsWith('line'))")
    assert shown[0] == "line 0" and shown[-1] == f"line {LINES - 1}", shown[-3:]
    assert len(shown) < 1000, len(shown)  # the cap, not all of it
    hidden_count = int(hidden.inner_text().split(" lines hidden")[0].replace(",", "").split()[-1])
    assert hidden_count + len(shown) == LINES, (hidden_count, len(shown))
    assert page.evaluate("document.documentElement.scrollHeight") < 3000  # a scroll box
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "long-output.png"), full_page=True)
    with page.expect_download() as download:
        hidden.get_by_role("button", name="Download").click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines == [f"line {i}" for i in range(LINES)]
    hidden.get_by_role("button", name="Show all").click()
    expect(text).to_contain_text(f"line {LINES // 2}\nline {LINES // 2 + 1}\n")
    expect(text.locator(".cellbus-hidden")).to_have_count(0)


def test_stop_and_status_stay_current_during_a_flood(page: Any, web: Any) -> None:
    cell = open_worksheet(page, web).nth(0)
    run(cell, "import itertools\nfor i in itertools.count():\n    print('line', i)")
    expect(cell.locator(".cellbus-stdout")).to_contain_text("line 0", timeout=30_000)
    stop = cell.get_by_role("button", name="Stop")
    clicked = time.monotonic()
    stop.click()
    expect(cell).to_have_attribute("data-status", "error", timeout=30_000)
    took = time.monotonic() - clicked
    expect(cell.locator(".cellbus-error")).to_contain_text("KeyboardInterrupt")
    assert took < 5, f"{took:.1f} s from Stop to stopped"  # ~94 s before; bench: RESULTS.md
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "long-output-stopped.png"), full_page=True)
