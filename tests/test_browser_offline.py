"""The browser goes offline and comes back (Playwright's context.set_offline: the browser's
offline event, navigator.onLine false, no request gets out): the cells say at once that the
connection is lost instead of "running…" with nothing coming; what is typed or run meanwhile
waits, and goes once the browser is online again; every line of output shows once, in
order; and the console stays clean (no request tried while offline, which Chromium logs as
an error)."""

from __future__ import annotations

from typing import Any

from test_browser import (browser, code_box, code_of, expect, open_worksheet, page,  # noqa: F401
                          run, web)
from test_browser_console import Console


def test_offline_and_back(page: Any, web: Any) -> None:
    console = Console(page)
    cells = open_worksheet(page, web)
    first, second = cells.nth(0), cells.nth(1)
    run(first, "import time\nfor i in range(12):\n    print(i, flush=True)\n    time.sleep(0.4)")
    expect(first.locator(".cellbus-output")).to_contain_text("1")
    page.context.set_offline(True)
    expect(first.locator(".cellbus-status")).to_have_text("connection lost, reconnecting…")
    code_box(cells.nth(2)).fill("# typed offline")
    run(second, "print('run offline')")
    expect(second.locator(".cellbus-status")).to_have_text("connection lost, reconnecting…")
    page.context.set_offline(False)
    expect(first).to_have_attribute("data-status", "done")
    expect(first.locator(".cellbus-output")).to_have_text("\n".join(map(str, range(12))))
    expect(second.locator(".cellbus-output")).to_have_text("run offline")
    expect(second).to_have_attribute("data-status", "done")
    with page.expect_request_finished(lambda r: r.url.endswith("/layout")
                                      and "typed offline" in (r.post_data or "")):
        code_box(cells.nth(2)).press("End")  # (a save is due already; this waits for it)
        code_box(cells.nth(2)).type(" ")
    assert console.settled(page) == []
    page.reload()
    expect(code_of(page.locator(".cellbus-cell").nth(2))).to_have_value("# typed offline ")
