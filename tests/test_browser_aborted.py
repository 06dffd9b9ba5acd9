"""A worksheet's cells queued behind one that fails are aborted (stop_on_error, as Run All in
a notebook stops at the failing cell), and the page says so: status "aborted" and a notice
that the cell did not run, over the WebSocket, over long polling and after a reload.

The first cell waits on input() while the second is queued behind it, so the order does not
depend on the machine's speed. Before the fix the second cell ran (and printed)."""

from __future__ import annotations

from typing import Any

from test_browser import browser, code_box, expect, open_worksheet, page, run, web  # noqa: F401

FAILS = "input('Go? ')\nraise ValueError('stop here')"


def queue_behind_a_failure(page: Any) -> Any:
    """Cell 1 waits for its prompt, cell 2 is queued behind it, then cell 1 fails."""
    cells = page.locator(".cellbus-cell")
    first, second = cells.nth(0), cells.nth(1)
    run(first, FAILS)
    box = first.locator(".cellbus-prompt-input")
    expect(box).to_be_visible()
    run(second, "print('second ran')")
    expect(second).to_have_attribute("data-status", "queued")
    box.fill("yes")
    box.press("Enter")
    expect(first).to_have_attribute("data-status", "error")
    return second


def expect_aborted(cell: Any) -> None:
    expect(cell).to_have_attribute("data-status", "aborted")
    expect(cell.locator(".cellbus-status")).to_contain_text("aborted")
    expect(cell.locator(".cellbus-notice")).to_be_visible()
    expect(cell.locator(".cellbus-notice")).to_contain_text("Not run")
    expect(cell.locator(".cellbus-output")).not_to_contain_text("second ran")


def test_a_cell_queued_behind_an_error_shows_it_was_not_run(page, web) -> None:
    open_worksheet(page, web)
    second = queue_behind_a_failure(page)
    expect_aborted(second)
    page.reload()  # from the stored document
    expect_aborted(page.locator(".cellbus-cell").nth(1))
    # Run again, it runs.
    second = page.locator(".cellbus-cell").nth(1)
    code_box(second).press("Control+Enter")
    expect(second).to_have_attribute("data-status", "done")
    expect(second.locator(".cellbus-output")).to_contain_text("second ran")
    expect(second.locator(".cellbus-notice")).to_be_hidden()


def test_over_long_polling_too(page, web) -> None:
    page.route_web_socket("**/ws", lambda ws: ws.close())
    open_worksheet(page, web)
    expect_aborted(queue_behind_a_failure(page))
