"""Notebook basics on the worksheet page (issue 26, item 5): execution counters, cells moved,
cleared and deleted (and kept so over a reload), and the worksheet's name in the URL, so a
link opens the same worksheet in another browser."""

from __future__ import annotations

import re
from typing import Any

from test_browser import (ARTIFACTS, browser, code_box, code_of, expect, open_page,  # noqa: F401
                          open_worksheet, page, run, web)


def test_counters_moves_clear_and_delete(page: Any, web: Any) -> None:
    cells = open_worksheet(page, web)
    run(cells.nth(0), "x = 41")
    expect(cells.nth(0)).to_have_attribute("data-status", "done")
    expect(cells.nth(0).locator(".cellbus-count")).to_have_text("[1]")
    run(cells.nth(1), "print(x + 1)")
    expect(cells.nth(1).locator(".cellbus-output")).to_have_text("42")
    expect(cells.nth(1).locator(".cellbus-count")).to_have_text("[2]")
    page.get_by_role("button", name="Move up (cell 2)").click()
    expect(code_of(cells.nth(0))).to_have_value("print(x + 1)")
    expect(code_box(cells.nth(0))).to_be_focused()
    expect(code_of(cells.nth(1))).to_have_value("x = 41")
    page.get_by_role("button", name="Delete cell (cell 3)").click()
    expect(cells).to_have_count(2)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "notebook.png"), full_page=True)
    page.get_by_role("button", name="Clear output (cell 2)").click()
    expect(cells.nth(0).locator(".cellbus-output")).to_be_empty()
    expect(cells.nth(0).locator(".cellbus-count")).to_be_hidden()
    page.get_by_role("button", name="Move down (cell 2)").click()  # back, and again up
    page.get_by_role("button", name="Move up (cell 2)").click()
    with page.expect_response(lambda r: "/2/update" in r.url) as restored:
        page.reload()  # the order stays, and the cleared output stays cleared (as Jupyter's)
    restored.value.finished()
    cells = page.locator(".cellbus-cell")
    expect(code_of(cells.nth(0))).to_have_value("print(x + 1)")
    expect(cells.nth(1).locator(".cellbus-count")).to_have_text("[1]")  # restored
    expect(cells.nth(0).locator(".cellbus-output")).to_be_empty()
    expect(cells.nth(0).locator(".cellbus-count")).to_be_hidden()
    expect(code_of(cells.nth(1))).to_have_value("x = 41")
    run(cells.nth(2), "print(x)")  # a new cell, in the same session
    expect(cells.nth(2).locator(".cellbus-output")).to_have_text("41")
    expect(cells.nth(2).locator(".cellbus-count")).to_have_text("[3]")


def test_worksheet_url_opens_the_same_worksheet(browser: Any, page: Any, web: Any) -> None:
    page.goto(web.url("/"))
    expect(page).to_have_url(re.compile(r"\?ws=ws-[0-9a-f]+$"))
    cell = page.locator(".cellbus-cell").nth(0)
    run(cell, "print('bookmarked')")
    expect(cell.locator(".cellbus-output")).to_have_text("bookmarked")
    link = page.url
    for other in open_page(browser):  # another browser: no localStorage of this one
        other.goto(link)
        first = other.locator(".cellbus-cell").nth(0)
        expect(first.locator(".cellbus-output")).to_have_text("bookmarked")
        expect(code_of(first)).to_have_value("print('bookmarked')")
        expect(other.locator("#ws-name")).to_have_text(link.split("ws=")[1])


def test_each_cells_buttons_say_which_cell_they_act_on(page: Any, web: Any) -> None:
    """A screen reader's list of buttons names each one's cell, Evaluate and Stop too (they
    were all "Evaluate" and "Stop"), as the cell's other tools do."""
    cells = open_worksheet(page, web)
    run(cells.nth(1), "import time\ntime.sleep(30)")
    for name in ("Evaluate (cell 2)", "Stop (cell 2)", "Move up (cell 2)", "Delete cell (cell 2)"):
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(1)
    expect(page.get_by_role("button", name="Evaluate (cell 3)", exact=True)).to_have_count(1)
    cells.nth(1).get_by_role("button", name="Stop").click()
    expect(cells.nth(1)).to_have_attribute("data-status", "error")
