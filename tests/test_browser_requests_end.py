"""Every request the worksheet page makes ends, its answer read whole (real Chromium, real
chain): the answer to a prompt (POST /input) was never read once it was a 202, so the
request stayed open (DevTools showed it pending for good, and a reload aborted it), as did
a Stop and a Restart over HTTP. PollTransport.ask reads each answer; the console stays
clean."""

from __future__ import annotations

from typing import Any

from harness import Chain
from test_browser import browser, expect, open_worksheet, page, run, web  # noqa: F401
from test_browser_complete_first import session_state
from test_browser_console import Console


def test_every_request_of_the_page_ends_with_its_answer_read(page: Any, web: Chain  # noqa: F811
                                                              ) -> None:
    """Tests that the page reads the answer of each request it makes, so none stays
    pending: the answer to a prompt (POST /input) over the WebSocket and over HTTP, and
    over HTTP a Stop (POST /interrupt) and a Restart (POST /restart)."""
    console = Console(page)
    cell = open_worksheet(page, web).nth(0)
    run(cell, "print('hi', input('Name? '))")
    box = cell.locator(".cellbus-prompt-input")
    box.fill("Ada")
    box.press("Enter")
    expect(cell.locator(".cellbus-output")).to_contain_text("hi Ada")
    assert console.settled(page) == []

    page.route_web_socket("**/ws", lambda ws: ws.close())
    cells = open_worksheet(page, web)
    first = cells.nth(0)
    run(first, "print('hi', input('Name? '))")
    box = first.locator(".cellbus-prompt-input")
    box.fill("Grace")
    box.press("Enter")
    expect(first.locator(".cellbus-output")).to_contain_text("hi Grace")
    run(cells.nth(1), "import time\nprint('sleeping', flush=True)\ntime.sleep(60)")
    expect(cells.nth(1).locator(".cellbus-output")).to_have_text("sleeping")
    cells.nth(1).get_by_role("button", name="Stop").click()
    expect(cells.nth(1)).to_have_attribute("data-status", "error")
    page.locator(".cellbus-session").get_by_role("button", name="Restart", exact=True).click()
    expect(session_state(page)).to_contain_text("restarted")
    assert console.settled(page) == []
