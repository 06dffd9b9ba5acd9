"""A worksheet page whose worksheet was deleted elsewhere (another tab's Delete worksheet, a
DELETE of it) or saved by another tab since it loaded (real Chromium, real chain): its next
layout save says so on the page, once, and it saves no more; the save's conflict is answered
200 with ``saved: false`` (``on_conflict: "report"``), not 409, which Chromium's console
showed as an error."""

from __future__ import annotations

import json
from typing import Any

from access_util import JSON, call
from harness import Chain
from test_browser import browser, code_box, expect, open_worksheet, page, run, web  # noqa: F401
from test_browser_console import Console
from test_browser_delete import worksheet_of


def test_a_page_whose_worksheet_was_deleted_or_changed_elsewhere_says_so_once(
        page: Any, web: Chain) -> None:  # noqa: F811
    """Tests that the first layout save after the worksheet was deleted elsewhere (DELETE,
    as another tab's Delete worksheet does) says so on the page, and the page saves no more
    (no save brings the deleted cells back); and that one after another tab saved says that,
    each with no 409 in the console."""
    console = Console(page)
    cells = open_worksheet(page, web)
    ws = worksheet_of(page)
    run(cells.nth(0), "x = 1")
    with page.expect_request_finished(lambda r: r.url.endswith("/layout")
                                      and "kept" in (r.post_data or "")):
        code_box(cells.nth(1)).fill("# kept")
    assert call(web.port, "DELETE", f"/home/guest/{ws}").status == 200
    note = page.locator("#layout-note")
    with page.expect_request_finished(lambda r: r.url.endswith("/layout")
                                      and "after" in (r.post_data or "")):
        code_box(cells.nth(1)).fill("# typed after the deletion")
    expect(note).to_be_visible()
    expect(note).to_contain_text("deleted")
    said = note.inner_text()
    code_box(cells.nth(2)).fill("# and more")
    assert console.settled(page) == []
    assert note.inner_text() == said
    assert call(web.port, "GET", f"/home/guest/{ws}/layout").body["cells"] is None

    cells = open_worksheet(page, web)
    ws = worksheet_of(page)
    with page.expect_request_finished(lambda r: r.url.endswith("/layout")
                                      and "mine" in (r.post_data or "")):
        code_box(cells.nth(0)).fill("# mine")
    other = json.dumps({"cells": [{"id": "1", "type": "code", "code": "# another tab's"}]})
    assert call(web.port, "POST", f"/home/guest/{ws}/layout", other, JSON).status == 200
    with page.expect_request_finished(lambda r: r.url.endswith("/layout")
                                      and "second" in (r.post_data or "")):
        code_box(cells.nth(0)).fill("# mine, second")
    expect(page.locator("#layout-note")).to_contain_text("changed in another tab")
    assert console.settled(page) == []
    cells_now = call(web.port, "GET", f"/home/guest/{ws}/layout").body["cells"]
    assert cells_now[0]["code"] == "# another tab's", cells_now
