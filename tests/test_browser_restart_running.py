"""Restart pressed while a cell runs: the run ends (its worker goes), and the session bar
says this page restarted the session, not that it was "ended from elsewhere", nor, once the
next cell runs, that "a new session" replaced one that ended by itself."""

from __future__ import annotations

from typing import Any

from test_browser import browser, expect, open_worksheet, page, run, web  # noqa: F401
from test_browser_console import Console


def test_restart_while_a_cell_runs_says_restarted(page: Any, web: Any) -> None:
    console = Console(page)
    cells = open_worksheet(page, web)
    bar = page.locator(".cellbus-session")
    run(cells.nth(0), "import time\nprint('long', flush=True)\ntime.sleep(60)")
    expect(cells.nth(0).locator(".cellbus-output")).to_contain_text("long")
    page.get_by_role("button", name="Restart", exact=True).click()
    expect(cells.nth(0)).not_to_have_attribute("data-status", "running")
    expect(bar).to_have_attribute("data-state", "gone")
    expect(bar).to_contain_text("restarted")
    # The session's end (its session_closed note) has come; the bar still says restarted.
    page.wait_for_function("() => !document.querySelector('.cellbus-cell.cellbus-busy')")
    expect(bar).not_to_contain_text("elsewhere")
    run(cells.nth(1), "print('fresh')")
    expect(cells.nth(1).locator(".cellbus-output")).to_have_text("fresh")
    expect(bar).to_have_attribute("data-state", "idle")
    expect(bar.locator(".cellbus-session-state")).to_have_text("idle")  # no "a new session"
    assert console.settled(page) == []
