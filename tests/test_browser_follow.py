"""Two tabs on one worksheet, as JupyterLab's real-time collaboration shows them: a run
started in one tab shows in the other (its code, its output as it streams, a cell it added),
each line once, and the other tab's next save is no conflict; a reload keeps it all.
Before, the second tab showed nothing of the first one's runs, and its next save was refused
as another tab's change."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from access_util import JSON, call
from harness import Chain, until
from test_browser import (browser, code_box, code_of, expect, open_worksheet, page,  # noqa: F401
                          run, web)
from test_browser_console import Console
from test_browser_delete import worksheet_of
from test_browser_poll_session import no_websocket
from test_browser_reload import UPDATE_AT_LOAD

TICKS = "import time\nfor i in range(600):\n    print('tick', i, flush=True)\n    time.sleep(0.1)"
STREAM = "import time\nfor i in range(3):\n    print('line', i, flush=True)\n    time.sleep(0.4)"


def test_a_run_in_one_tab_shows_in_the_other(page: Any, web: Chain) -> None:  # noqa: F811
    """Tests that tab B shows tab A's run of cell 1 (code, output, done) and of a cell A
    added (it appears in B, its lines as they come, once each), that B's own save after it
    is stored with A's cell (no conflict note), that B after a reload shows both runs, and
    that a run of the HTTP API in a cell no page has shows in a cell B adds, which stays."""
    cells_a = open_worksheet(page, web)
    ws = worksheet_of(page)
    other = page.context.new_page()  # a second tab of the same browser
    other.goto(page.url)
    console = Console(other)
    cells_b = other.locator(".cellbus-cell")
    expect(cells_b).to_have_count(3)
    run(cells_b.nth(2), "b = 2")  # B's socket is through
    expect(cells_b.nth(2)).to_have_attribute("data-status", "done")

    run(cells_a.nth(0), "print('from A', b * 21)")
    expect(cells_b.nth(0).locator(".cellbus-output")).to_have_text("from A 42")
    expect(cells_b.nth(0)).to_have_attribute("data-status", "done")
    expect(code_of(cells_b.nth(0))).to_have_value("print('from A', b * 21)")

    page.click("#add")
    expect(cells_a).to_have_count(4)
    run(cells_a.nth(3), STREAM)
    expect(cells_b).to_have_count(4)
    expect(cells_b.nth(3).locator(".cellbus-output")).to_contain_text("line 0")
    expect(cells_b.nth(3)).to_have_attribute("data-status", "running")  # as they stream
    expect(cells_b.nth(3)).to_have_attribute("data-status", "done")
    expect(cells_b.nth(3).locator(".cellbus-output")).to_have_text("line 0\nline 1\nline 2")
    expect(code_of(cells_b.nth(3))).to_have_value(STREAM)

    with other.expect_request_finished(lambda r: r.url.endswith("/layout")
                                       and "from B" in (r.post_data or "")):
        code_box(cells_b.nth(1)).fill("# from B")
    expect(other.locator("#layout-note")).to_be_hidden()
    stored = call(web.port, "GET", f"/home/guest/{ws}/layout").body["cells"]
    assert [c["code"] for c in stored] == ["print('from A', b * 21)", "# from B", "b = 2",
                                           STREAM], stored

    other.reload()
    expect(cells_b).to_have_count(4)
    expect(cells_b.nth(0).locator(".cellbus-output")).to_have_text("from A 42")
    expect(cells_b.nth(3).locator(".cellbus-output")).to_have_text("line 0\nline 1\nline 2")
    cells_b.nth(2).get_by_role("button", name="Evaluate (cell 3)").click()
    expect(cells_b.nth(2)).to_have_attribute("data-status", "done")  # B's socket is through

    # A client that keeps no layout (the HTTP API): its cell is added and stays
    api = json.dumps({"input": "print('from the API')"})
    assert call(web.port, "POST", f"/home/guest/{ws}/9/evaluate", api, JSON).status == 202
    expect(cells_b).to_have_count(5)
    expect(cells_b.nth(4).locator(".cellbus-output")).to_have_text("from the API")
    expect(code_of(cells_b.nth(4))).to_have_value("print('from the API')")
    # ... and stays when B takes the layout A saved again after A's next run
    key = f"cellbus:code:guest/{ws}"
    other.evaluate("key => localStorage.setItem(key, 'taken?')", key)
    cells_a.nth(0).get_by_role("button", name="Evaluate (cell 1)").click()
    other.wait_for_function("key => localStorage.getItem(key) !== 'taken?'", arg=key)
    expect(cells_b).to_have_count(5)
    assert [c["id"] for c in json.loads(other.evaluate("key => localStorage.getItem(key)", key))
            ] == ["1", "2", "3", "4", "9"]
    assert console.settled(other) == []
    other.close()


def test_a_page_on_long_polling_follows_runs_as_a_websocket_page_does(
        page: Any, web: Chain) -> None:  # noqa: F811
    """Tests that a tab with no WebSocket (long polling) shows another tab's run of its cell
    (code, output as it streams, done) and a run of the HTTP API in a cell it lacks (added,
    and it stays), while its own runs are its own. Before, such a tab showed none of them."""
    cells_a = open_worksheet(page, web)
    ws = worksheet_of(page)
    other = page.context.new_page()
    no_websocket(other)
    other.goto(page.url)
    cells_b = other.locator(".cellbus-cell")
    expect(cells_b).to_have_count(3)
    run(cells_b.nth(2), "b = 2")
    expect(cells_b.nth(2)).to_have_attribute("data-status", "done")

    run(cells_a.nth(0), TICKS)
    expect(cells_b.nth(0).locator(".cellbus-output")).to_contain_text("tick 3")
    expect(cells_b.nth(0)).to_have_attribute("data-status", "running")  # as they stream
    expect(code_of(cells_b.nth(0))).to_have_value(TICKS)
    cells_a.nth(0).get_by_role("button", name="Stop (cell 1)").click()
    expect(cells_b.nth(0).locator(".cellbus-error")).to_contain_text("KeyboardInterrupt")
    expect(cells_b.nth(0)).to_have_attribute("data-status", "error")

    api = json.dumps({"input": "print('from the API', b)"})
    assert call(web.port, "POST", f"/home/guest/{ws}/9/evaluate", api, JSON).status == 202
    expect(cells_b).to_have_count(4)
    expect(cells_b.nth(3).locator(".cellbus-output")).to_have_text("from the API 2")
    expect(code_of(cells_b.nth(3))).to_have_value("print('from the API', b)")
    run(cells_b.nth(2), "print('own', b)")  # its own run, not followed as another's
    expect(cells_b.nth(2).locator(".cellbus-output")).to_have_text("own 2")
    expect(cells_b.nth(2)).to_have_attribute("data-status", "done")
    expect(cells_b).to_have_count(4)
    other.close()
    # The notes tell each run's start without its code (the page reads it from /update):
    # an answer from a long session's start would hold the code of every run in it.
    starts = [m for m in call(web.port, "GET", f"/home/guest/{ws}/session?since=0").body[
        "messages"] if m["msg_type"] == "execute_input"]
    assert len(starts) >= 4 and all(m["content"]["code"] is None for m in starts), starts


def test_a_run_started_while_a_reloaded_cell_reads_the_store_shows_whole(
        page: Any, web: Chain) -> None:  # noqa: F811
    """Tests that a run started elsewhere (the HTTP API) while a reloaded page's cells wait
    for what the store has (their /update, answered here with what it said before the run)
    shows in its cell from its start: its code, every line, done. The cell does not take a
    run from the socket's live feed while its /update is on its way (Cell._restore: a run
    it was restoring lost its output before the reload so); it follows the one it missed
    once the store's answer, of the run before, is shown."""
    cells = open_worksheet(page, web)
    ws = worksheet_of(page)
    run(cells.nth(0), "print('before')")
    expect(cells.nth(0)).to_have_attribute("data-status", "done")
    held: list[tuple[Any, Any]] = []

    def hold(route: Any) -> None:
        """Read the store's answer now, before the run; give it to the page later."""
        url = urlsplit(route.request.url)
        held.append((route, call(web.port, "GET", f"{url.path}?{url.query}").body))

    frames: list[str] = []
    page.route(UPDATE_AT_LOAD, hold)
    page.on("websocket", lambda s: s.on("framereceived", lambda f: frames.append(f)))
    page.reload()
    pause = lambda: page.wait_for_timeout(20)  # noqa: E731 (Playwright's events come meanwhile)
    until(lambda: held and any("subscribe_reply" in f for f in frames), "the reload's reads",
          pause=pause)
    api = json.dumps({"input": STREAM})
    assert call(web.port, "POST", f"/home/guest/{ws}/1/evaluate", api, JSON).status == 202
    until(lambda: any("line 0" in f for f in frames), "the run's first line", pause=pause)
    for route, doc in held:
        route.fulfill(json=doc)
    page.unroute(UPDATE_AT_LOAD)
    first = page.locator(".cellbus-cell").nth(0)
    expect(first).to_have_attribute("data-status", "done")
    expect(first.locator(".cellbus-output")).to_have_text("line 0\nline 1\nline 2")
    expect(code_of(first)).to_have_value(STREAM)


def test_typing_before_a_followed_runs_code_is_stored_is_no_conflict(
        page: Any, web: Chain) -> None:  # noqa: F811
    """Tests that tab A, following tab B's run before the store has B's code (B saves half a
    second after typing, and here A cannot read the store's layout meanwhile), saves what it
    types then: the store's change since A read it is B's code, which A shows already. Before,
    A's save was refused as another tab's change: A said so and saved no more, and B, taking
    the store's layout for A's run, lost A's code (test_a_run_in_one_tab_shows_in_the_other
    failed so under load)."""
    cells_a = open_worksheet(page, web)
    ws = worksheet_of(page)
    other = page.context.new_page()
    other.goto(page.url)
    cells_b = other.locator(".cellbus-cell")
    expect(cells_b).to_have_count(3)
    held_a: list[Any] = []
    held_b: list[Any] = []
    # Until `blocked` is emptied: A's saves wait, and A follows B's run but cannot take the
    # store's layout (its reads fail)
    blocked = [True]
    page.route("**/layout", lambda r: r.continue_() if not blocked
               else held_a.append(r) if r.request.method == "POST" else r.abort())
    other.route("**/layout", lambda r: held_b.append(r) if r.request.method == "POST"
                else r.continue_())
    run(cells_b.nth(2), "b = 2")
    expect(code_of(cells_a.nth(2))).to_have_value("b = 2")
    code_box(cells_a.nth(0)).fill("print('from A')")
    until(lambda: held_a and held_b, "both tabs' saves",
          pause=lambda: page.wait_for_timeout(20))  # (Playwright's events come meanwhile)
    with other.expect_response(lambda r: r.url.endswith("/layout")):
        held_b[0].continue_()  # B's save lands first
    other.unroute("**/layout")
    blocked.clear()
    with page.expect_response(lambda r: r.url.endswith("/layout") and r.request.method == "POST"
                              and "saved" not in r.json()):
        held_a[0].continue_()
    page.unroute("**/layout")
    expect(page.locator("#layout-note")).to_be_hidden()
    stored = call(web.port, "GET", f"/home/guest/{ws}/layout").body["cells"]
    assert [c["code"] for c in stored] == ["print('from A')", "", "b = 2"], stored
    other.close()
