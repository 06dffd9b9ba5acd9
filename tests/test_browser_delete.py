"""The worksheet page's Delete worksheet button (DELETE /home/USER/WORKSHEET,
broker/deletion.py): after the browser's own confirmation, the worksheet's cells, runs and
outputs leave the store and this browser, and a new worksheet opens; while a cell runs it
deletes nothing and says why."""

from __future__ import annotations

from typing import Any

from access_util import call
from harness import Chain
from test_browser import (browser, code_box, expect, open_worksheet, page, run,  # noqa: F401
                          web)


def worksheet_of(page: Any) -> str:  # noqa: F811
    return str(page.url.split("ws=")[1].split("&")[0])


def test_delete_worksheet_removes_its_cells_and_runs_then_opens_a_new_one(
        page: Any, web: Chain) -> None:  # noqa: F811
    """Tests that Delete worksheet, confirmed, deletes the cell's run (its /update answers
    404) and the layout, opens another worksheet, and that the old one opened again shows
    empty cells (this browser's copy of its cells went too); dismissed, it deletes nothing."""
    cells = open_worksheet(page, web)
    ws = worksheet_of(page)
    run(cells.nth(0), "print('to be deleted')")
    expect(cells.nth(0).locator(".cellbus-output")).to_have_text("to be deleted")
    code_box(cells.nth(1)).fill("# a note kept in the layout")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Delete worksheet").click()
    expect(cells.nth(0).locator(".cellbus-output")).to_have_text("to be deleted")
    assert call(web.port, "GET", f"/home/guest/{ws}/1/update").status == 200
    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Delete worksheet").click()
    page.wait_for_url(lambda url: f"ws={ws}" not in url)  # the new worksheet, loaded
    expect(page.locator(".cellbus-cell")).to_have_count(3)
    assert ws in asked[0] and "cannot be undone" in asked[0], asked
    assert call(web.port, "GET", f"/home/guest/{ws}/1/update").status == 404
    assert call(web.port, "GET", f"/home/guest/{ws}/layout").body["cells"] is None
    page.goto(web.url(f"/?ws={ws}"))
    boxes = page.locator(".cellbus-cell textarea.cellbus-input")
    expect(boxes).to_have_count(3)
    for i in range(3):
        expect(boxes.nth(i)).to_have_value("")


def test_a_worksheet_with_a_running_cell_is_not_deleted_and_the_page_says_why(
        page: Any, web: Chain) -> None:  # noqa: F811
    """Tests that Delete worksheet while a cell runs leaves the page, the run and its
    output as they were and says the broker's reason (interrupt or wait)."""
    cells = open_worksheet(page, web)
    ws = worksheet_of(page)
    run(cells.nth(0), "import time\nprint('running', flush=True)\ntime.sleep(30)")
    expect(cells.nth(0).locator(".cellbus-output")).to_have_text("running")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete worksheet").click()
    expect(page.locator("#notebook-note")).to_contain_text("was not deleted")
    expect(page.locator("#notebook-note")).to_contain_text("interrupt")
    assert worksheet_of(page) == ws
    assert call(web.port, "GET", f"/home/guest/{ws}/1/update").body["status"] == "working"
    assert call(web.port, "POST", f"/home/guest/{ws}/1/interrupt", b"").status == 202
    expect(cells.nth(0)).to_have_attribute("data-status", "error")  # KeyboardInterrupt
    expect(cells.nth(0).locator(".cellbus-working")).to_be_hidden()


def test_a_page_whose_worksheet_is_deleted_elsewhere_says_its_session_ended_from_elsewhere(
        page: Any, web: Chain) -> None:  # noqa: F811
    """Tests that a page whose worksheet's runs another tab deletes (its session shut down)
    says the session ended from elsewhere, naming Delete worksheet: it said "restarted",
    which this page never was."""
    cells = open_worksheet(page, web)
    ws = worksheet_of(page)
    run(cells.nth(0), "x = 1")
    state = page.locator(".cellbus-session .cellbus-session-state")
    expect(state).to_have_text("idle")
    assert call(web.port, "DELETE", f"/home/guest/{ws}").status == 200
    expect(state).to_contain_text("ended from elsewhere (a Restart or Delete worksheet")


def test_the_delete_note_goes_once_it_no_longer_holds(page: Any, web: Chain) -> None:  # noqa: F811
    """Tests that the note over the cells goes once what it says no longer holds: "not
    deleted" (a cell runs) once no cell runs (here the run is stopped), after which the
    worksheet is deleted; and "Run all stopped at cell 1" once a cell runs again. It stayed
    on the page after the run had stopped."""
    cells = open_worksheet(page, web)
    ws = worksheet_of(page)
    note = page.locator("#notebook-note")
    code_box(cells.nth(0)).fill("1 / 0")
    page.get_by_role("button", name="Run all", exact=True).click()
    expect(note).to_have_text("Run all stopped at cell 1 (error): the cells after it did not "
                              "run.")
    code_box(cells.nth(0)).press("Control+a")
    run(cells.nth(0), "import time\nprint('running', flush=True)\ntime.sleep(60)")
    expect(cells.nth(0).locator(".cellbus-output")).to_have_text("running")
    expect(note).to_have_text("")  # a cell ran since Run all
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete worksheet").click()
    expect(note).to_contain_text("was not deleted")
    cells.nth(0).get_by_role("button", name="Stop").click()
    expect(cells.nth(0)).to_have_attribute("data-status", "error")
    expect(note).to_have_text("")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete worksheet").click()
    page.wait_for_url(lambda url: f"ws={ws}" not in url)
    assert call(web.port, "GET", f"/home/guest/{ws}/1/update").status == 404
