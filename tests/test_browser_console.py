"""The worksheet page asks the store only for cells it has runs of: a fresh page's empty cells,
a cell that never ran next to one that did, and the cells of a worksheet deleted meanwhile
make no request that fails, so the browser's console shows no error (each cell of a new
page asked ``/update`` and got 404, which Chromium reports as a console error)."""

from __future__ import annotations

import time
from typing import Any

from access_util import call
from harness import Chain
from test_browser import (browser, code_box, expect, open_worksheet, page, run,  # noqa: F401
                          web)
from test_browser_delete import worksheet_of


class Console:
    """What a page says in its console (errors and warnings), the requests that failed or
    answered 4xx/5xx, and the paths of its cells' ``/update`` requests."""

    def __init__(self, page: Any) -> None:  # noqa: F811
        self.problems: list[str] = []
        self.updates: list[str] = []
        page.on("console", lambda m: m.type in ("error", "warning")
                and self.problems.append(f"console {m.type}: {m.text}"))
        page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url} {r.failure}"))
        page.on("response", lambda r: r.status >= 400
                and self.problems.append(f"{r.status}: {r.url}"))
        page.on("request", lambda r: "/update" in r.url
                and self.updates.append(r.url.split("/home/", 1)[1]))
        self.pending: set[str] = set()  # requests whose answer has not been read whole
        page.on("request", lambda r: self.pending.add(r.url))
        page.on("requestfinished", lambda r: self.pending.discard(r.url))
        page.on("requestfailed", lambda r: self.pending.discard(r.url))

    def settled(self, page: Any, timeout: float = 15) -> list[str]:  # noqa: F811
        """Once the page has made every request of its load and read every answer whole (its
        WebSocket aside): what went wrong since the last look. ``networkidle`` alone is not
        enough: once a page reached it, Playwright answers at once, though a save may still
        be reading its answer (a reload then aborts it: ``net::ERR_ABORTED``)."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout
        try:
            page.wait_for_load_state("networkidle")
        except PlaywrightTimeout:
            raise AssertionError(f"requests still open: {sorted(self.pending)}; what went "
                                 f"wrong: {self.problems}") from None
        deadline = time.monotonic() + timeout
        while self.pending:  # the page's events arrive while Playwright waits
            if time.monotonic() > deadline:
                raise AssertionError(f"requests still open: {sorted(self.pending)}; what went "
                                     f"wrong: {self.problems}")
            page.wait_for_timeout(20)
        problems, self.problems = self.problems, []
        return problems


def test_no_console_error_for_cells_that_never_ran(page: Any, web: Chain) -> None:  # noqa: F811
    """Tests that a fresh worksheet asks no cell's /update and the console stays clean; that
    after a reload with a cell run and one typed but never run only the run cell asks (its
    output is shown again); and that once the worksheet's runs are deleted (DELETE, as from
    another tab) a reload asks for none, its cells kept in this browser."""
    console = Console(page)
    cells = open_worksheet(page, web)
    ws = worksheet_of(page)
    assert console.settled(page) == [] and console.updates == []

    run(cells.nth(0), "print('ran once')")
    expect(cells.nth(0).locator(".cellbus-output")).to_have_text("ran once")
    with page.expect_request_finished(lambda r: r.url.endswith("/layout")
                                      and "never run" in (r.post_data or "")):  # stored
        code_box(cells.nth(1)).fill("print('never run')")
    assert console.settled(page) == []
    console.updates.clear()
    page.reload()
    expect(cells.nth(0).locator(".cellbus-output")).to_have_text("ran once")
    expect(cells.nth(1).locator("textarea.cellbus-input")).to_have_value("print('never run')")
    assert console.settled(page) == []
    assert console.updates == [f"guest/{ws}/1/update?since=0"], console.updates

    assert call(web.port, "DELETE", f"/home/guest/{ws}").status == 200
    console.updates.clear()
    page.reload()
    expect(cells.nth(1).locator("textarea.cellbus-input")).to_have_value("print('never run')")
    assert console.settled(page) == [] and console.updates == []
