"""Execution numbers on the worksheet page, in real Chromium over a real chain: a reload
shows each cell's number and usage line again (an interrupted cell's too), a blank cell
shows none, Keep (the idle warning's button) is no run the session counts, and long polling
(no WebSocket gets through) shows the numbers as the WebSocket does."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from harness import Chain
from test_browser import (browser, code_box, expect, open_worksheet, page, run,  # noqa: F401
                          web)
from test_browser_complete_first import session_state
from test_browser_console import Console


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


@pytest.mark.parametrize("mode", ["websocket", "poll"])
def test_both_modes_show_the_same_things(page: Any, web: Chain, mode: str) -> None:  # noqa: F811
    """Tests that WebSocket mode and long-polling mode (no WebSocket gets through) show the
    same: each run's execution number as soon as it runs ([1], an error's [2], a running
    and then interrupted run's [3]), a blank run none, the usage line, and the session
    bar's state; long polling showed no number at all."""
    console = Console(page)
    if mode == "poll":
        page.route_web_socket("**/ws", lambda ws: ws.close())
    cells = open_worksheet(page, web)
    first, second, third = cells.nth(0), cells.nth(1), cells.nth(2)
    run(first, "print('one')")
    expect(first.locator(".cellbus-output")).to_have_text("one")
    expect(first.locator(".cellbus-count")).to_have_text("[1]")
    expect(first.locator(".cellbus-usage")).to_contain_text("CPU ")
    expect(session_state(page)).to_have_text("idle")
    run(second, "1 / 0")
    expect(second).to_have_attribute("data-status", "error")
    expect(second.locator(".cellbus-count")).to_have_text("[2]")
    run(third, "import time\nprint('started', flush=True)\ntime.sleep(60)")
    expect(third.locator(".cellbus-output")).to_have_text("started")
    expect(third.locator(".cellbus-count")).to_have_text("[3]")
    expect(session_state(page)).to_have_text("busy")
    third.get_by_role("button", name="Stop").click()
    expect(third).to_have_attribute("data-status", "error")
    expect(third.locator(".cellbus-count")).to_have_text("[3]")
    expect(third.locator(".cellbus-usage")).to_contain_text("wall ")
    code_box(first).press("Control+a")  # typed over
    run(first, "  ")
    expect(first).to_have_attribute("data-status", "done")
    expect(first.locator(".cellbus-count")).to_be_hidden()
    assert console.settled(page) == []

