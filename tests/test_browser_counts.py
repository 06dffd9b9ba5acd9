"""Execution numbers on the worksheet page, in real Chromium over a real chain: a reload
shows each cell's number and usage line again (an interrupted cell's too), a blank cell
shows none, and Keep (the idle warning's button) is no run the session counts."""

from __future__ import annotations

import uuid
from typing import Any

from harness import Chain
from test_browser import browser, expect, open_worksheet, page, run, web  # noqa: F401


def count_of(cell: Any) -> Any:
    return cell.locator(".cellbus-count")


def usage_of(cell: Any) -> Any:
    return cell.locator(".cellbus-usage")


def test_a_reload_shows_execution_numbers_and_usage(page: Any, web: Any) -> None:
    """Tests that after a reload a finished cell shows its execution number and usage line
    as before it, a blank cell shows no number, a cell still running shows its number when
    it ends (interrupted), and after one more reload too."""
    cells = open_worksheet(page, web)
    done, stopped, blank = cells.nth(0), cells.nth(1), cells.nth(2)
    run(done, "print('one')")
    expect(count_of(done)).to_have_text("[1]")
    expect(usage_of(done)).to_contain_text("CPU ")
    run(blank, "   ")
    expect(blank).to_have_attribute("data-status", "done")
    expect(count_of(blank)).to_be_hidden()
    run(stopped, "import time\nprint('started', flush=True)\ntime.sleep(60)")
    expect(stopped.locator(".cellbus-output")).to_contain_text("started")
    for reload in range(2):
        page.reload()
        cells = page.locator(".cellbus-cell")
        done, stopped, blank = cells.nth(0), cells.nth(1), cells.nth(2)
        expect(done.locator(".cellbus-output")).to_have_text("one")
        expect(count_of(done)).to_have_text("[1]")
        expect(usage_of(done)).to_contain_text("CPU ")
        expect(blank).to_have_attribute("data-status", "done")
        expect(count_of(blank)).to_be_hidden()
        if reload == 0:
            expect(stopped).to_have_attribute("data-status", "running")
            expect(count_of(stopped)).to_have_text("[*]")
            stopped.get_by_role("button", name="Stop").click()
        expect(stopped).to_have_attribute("data-status", "error")
        expect(stopped.locator(".cellbus-error")).to_contain_text("KeyboardInterrupt")
        expect(count_of(stopped)).to_have_text("[2]")
        expect(usage_of(stopped)).to_contain_text("wall ")


def test_keep_is_no_run_of_a_cell(page: Any, chain: Chain) -> None:
    """Tests that after Keep the next cell shows [2], not [3], and that the worksheet's
    ``ran`` list does not name Keep's cell."""
    chain.start_broker()
    chain.start_device("--idle-timeout", "6")  # the warning, with Keep, from 3 s idle
    chain.start_gateway()
    ws = f"t-{uuid.uuid4().hex[:8]}"
    cells = open_worksheet(page, chain, ws=ws)
    keep = page.locator(".cellbus-session").get_by_role("button", name="Keep")
    run(cells.nth(0), "x = 1")
    expect(count_of(cells.nth(0))).to_have_text("[1]")
    expect(keep).to_be_visible(timeout=10_000)
    keep.click()
    expect(keep).to_be_hidden()
    assert chain.wait_done(f"guest/{ws}/keepalive")["status"] == "done"
    run(cells.nth(1), "x + 1")
    expect(cells.nth(1).locator(".cellbus-output")).to_have_text("2")
    expect(count_of(cells.nth(1))).to_have_text("[2]")
    status, layout = chain.http("GET", f"/home/guest/{ws}/layout")
    assert status == 200 and layout["ran"] == ["1", "2"], layout
