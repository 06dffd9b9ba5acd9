"""Run all marks every code cell it will run as waiting at once ([*], "waiting to run"), as
Jupyter queues a notebook's cells, instead of leaving the cells below the running one
looking idle; a run that stops at an error (or a Stop) takes the mark off the cells it did
not reach, which keep what they showed before. A reload while Run all runs goes on with it
once the cell it was running has ended, running no cell twice."""

from __future__ import annotations

from typing import Any

import pytest

from access_util import call
from harness import until
from test_browser import browser, code_box, expect, open_worksheet, page, run, web  # noqa: F401
from test_browser_poll_session import no_websocket


def test_run_all_marks_the_cells_it_will_run(page: Any, web: Any) -> None:
    cells = open_worksheet(page, web)
    run(cells.nth(2), "print('ran before')")
    expect(cells.nth(2).locator(".cellbus-count")).to_have_text("[1]")
    code_box(cells.nth(0)).fill("import time\ntime.sleep(1.5)\nprint('a')")
    code_box(cells.nth(1)).fill("1 / 0")
    code_box(cells.nth(2)).fill("print('c')")
    page.get_by_role("button", name="Run all", exact=True).click()
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


def test_a_reload_during_run_all_goes_on_with_it(page: Any, web: Any) -> None:
    """Before, a reload ended Run all: the running cell finished in its session, the cells
    after it never ran, and nothing said so. Now the reloaded page waits for that cell's
    run and goes on, each cell run once (their numbers 1, 2, 3), and says so at the end."""
    cells = open_worksheet(page, web)
    code_box(cells.nth(0)).fill("import time\nprint('one', flush=True)\ntime.sleep(2)")
    code_box(cells.nth(1)).fill("print('two')")
    code_box(cells.nth(2)).fill("print('three')")
    path = f"/home/guest/{page.url.split('ws=')[1]}/layout"
    until(lambda: [c["code"] for c in call(web.port, "GET", path).body.get("cells") or []][2:]
          == ["print('three')"], "the cells stored")
    page.get_by_role("button", name="Run all", exact=True).click()
    expect(cells.nth(0).locator(".cellbus-output")).to_have_text("one")
    page.reload()
    for i, text in enumerate(("one", "two", "three")):
        expect(cells.nth(i)).to_have_attribute("data-status", "done")
        expect(cells.nth(i).locator(".cellbus-output")).to_have_text(text)
        expect(cells.nth(i).locator(".cellbus-count")).to_have_text(f"[{i + 1}]")
    expect(page.locator("#notebook-note")).to_have_text("Run all: every code cell ran.")
    page.reload()  # Run all ended: a second reload runs nothing again
    expect(cells.nth(2).locator(".cellbus-count")).to_have_text("[3]")
    page.wait_for_timeout(500)  # time enough for a wrong start to show
    for i in range(3):
        expect(cells.nth(i)).to_have_attribute("data-status", "done")
        expect(cells.nth(i).locator(".cellbus-count")).to_have_text(f"[{i + 1}]")


def test_run_above_and_run_below_the_cell_last_edited(page: Any, web: Any) -> None:
    """Jupyter's Run All Above (the cells above the cell last edited, not it) and Run
    Selected Cell and All Below (it and those after it); before, only Run all was there."""
    cells = open_worksheet(page, web)
    code_box(cells.nth(0)).fill("x = 1")
    code_box(cells.nth(1)).fill("x += 10")
    code_box(cells.nth(2)).fill("print(x)")
    code_box(cells.nth(1)).focus()
    page.get_by_role("button", name="Run above").click()
    expect(cells.nth(0).locator(".cellbus-count")).to_have_text("[1]")
    expect(page.locator("#notebook-note")).to_have_text("Run above: every code cell ran.")
    expect(cells.nth(1)).to_have_attribute("data-status", "idle")
    page.get_by_role("button", name="Run below").click()
    expect(cells.nth(2).locator(".cellbus-output")).to_have_text("11")
    expect(page.locator("#notebook-note")).to_have_text("Run below: every code cell ran.")
    for i in range(3):
        expect(cells.nth(i).locator(".cellbus-count")).to_have_text(f"[{i + 1}]")


@pytest.mark.parametrize("mode", ["websocket", "poll"])
def test_restart_and_run_all_runs_every_cell_in_a_fresh_session(page: Any, web: Any,
                                                                 mode: str) -> None:
    """Jupyter's Restart Kernel and Run All Cells: the session is restarted (the variables
    go), then every code cell runs in the new one, its numbers from [1], also over long
    polling, where the restart's request is answered before the first run is sent. Before,
    there was no such button: Restart, then Run all, by hand."""
    if mode == "poll":
        no_websocket(page)
    cells = open_worksheet(page, web)
    code_box(cells.nth(0)).fill("runs = globals().get('runs', 0) + 1")
    code_box(cells.nth(1)).fill("print('runs', runs)")
    for _ in range(2):
        page.get_by_role("button", name="Run all", exact=True).click()
        expect(page.locator("#notebook-note")).to_have_text("Run all: every code cell ran.")
    expect(cells.nth(1).locator(".cellbus-output")).to_have_text("runs 2")
    page.get_by_role("button", name="Restart & run all").click()
    expect(page.locator("#notebook-note")).to_have_text(
        "Restart & run all: every code cell ran.")
    expect(cells.nth(1).locator(".cellbus-output")).to_have_text("runs 1")
    for i in range(2):
        expect(cells.nth(i).locator(".cellbus-count")).to_have_text(f"[{i + 1}]")
