"""Run all marks every code cell it will run as waiting at once ([*], "waiting to run"), as
Jupyter queues a notebook's cells, instead of leaving the cells below the running one
looking idle; a run that stops at an error (or a Stop) takes the mark off the cells it did
not reach, which keep what they showed before."""

from __future__ import annotations

from typing import Any

from test_browser import browser, code_box, expect, open_worksheet, page, run, web  # noqa: F401


def test_run_all_marks_the_cells_it_will_run(page: Any, web: Any) -> None:
    cells = open_worksheet(page, web)
    run(cells.nth(2), "print('ran before')")
    expect(cells.nth(2).locator(".cellbus-count")).to_have_text("[1]")
    code_box(cells.nth(0)).fill("import time\ntime.sleep(1.5)\nprint('a')")
    code_box(cells.nth(1)).fill("1 / 0")
    code_box(cells.nth(2)).fill("print('c')")
    page.get_by_role("button", name="Run all").click()
    for i in (1, 2):  # at once, while the first still runs
        expect(cells.nth(i).locator(".cellbus-count")).to_have_text("[*]")
        expect(cells.nth(i).locator(".cellbus-status")).to_have_text("waiting to run (Run all)")
    expect(cells.nth(0)).to_have_attribute("data-status", "running")
    expect(cells.nth(1)).to_have_attribute("data-status", "error")
    expect(cells.nth(1).locator(".cellbus-count")).to_have_text("[3]")
    # Not reached: its mark goes, and it shows its last run as before.
    expect(cells.nth(2).locator(".cellbus-count")).to_have_text("[1]")
    expect(cells.nth(2).locator(".cellbus-status")).to_contain_text("done")
    expect(cells.nth(2).locator(".cellbus-output")).to_have_text("ran before")
    expect(page.locator(".cellbus-pending")).to_have_count(0)
