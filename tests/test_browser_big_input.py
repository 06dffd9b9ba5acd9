"""A cell too big to run, in Chromium: it fails once, saying so, and the page goes on.

The gateway runs with a small ``--max-input`` (:data:`LIMIT`), so a cell just over it is
refused by the gateway (413, the words of HTTP's evaluate), and one far over it is bigger than
the WebSocket's largest message, which tornado answers by closing the socket with 1009. That
close used to make the page reconnect every ~0.3 s and send the cell again each time, for
ever (120 sockets in 21 s at the default limit), while the cell's Stop did nothing and no
other cell of the page ran.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from module_chain import module_chain
from test_browser import (ARTIFACTS, browser, code_box, expect, open_worksheet, page,  # noqa: F401
                          run)

#: The gateway's --max-input here: 64 KiB, so the cells are quick to type.
LIMIT = 64 * 1024
#: How the page says the input was over the limit (the gateway's words for HTTP's 413).
OVER = f"input is over the limit of {LIMIT} bytes"


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A chain whose gateway takes at most :data:`LIMIT` bytes of code."""
    yield from module_chain(tmp_path_factory, __name__, gateway=("--max-input", str(LIMIT)),
                            log=ARTIFACTS / "browser-logs" / f"{__name__}.log")


class Watch:
    """The WebSockets a page opens, what its console says (errors and warnings), and the
    requests answered 4xx or 5xx."""

    def __init__(self, page: Any) -> None:  # noqa: F811
        self.sockets: list[str] = []  # their URLs, as they open
        self.console: list[str] = []
        self.refused: list[str] = []  # "METHOD URL STATUS"
        page.on("websocket", lambda ws: self.sockets.append(ws.url))
        page.on("console", lambda m: m.type in ("error", "warning")
                and self.console.append(f"{m.type}: {m.text}"))
        page.on("response", lambda r: r.status >= 400 and self.refused.append(
            f"{r.request.method} {r.url} {r.status}"))

    def check_quiet(self) -> None:
        """Nothing went wrong but the layout saves of the big cells (over --max-input too:
        413, which Chromium reports in the console), one error each."""
        assert all(r.startswith("POST ") and "/layout " in r and r.endswith(" 413")
                   for r in self.refused), self.refused
        assert len(self.refused) <= 2 and len(self.console) == len(self.refused), \
            (self.console, self.refused)


def hide_limits(page: Any) -> None:  # noqa: F811
    """The page's sockets go through Playwright, which takes the gateway's limits out of
    each subscribe_reply: as from a gateway that does not say them, or a request sent
    before the reply comes. Closes pass through, with their codes."""
    def route(socket: Any) -> None:
        server = socket.connect_to_server()

        def from_server(message: str | bytes) -> None:
            msg = json.loads(message)
            if msg.get("msg_type") == "subscribe_reply":
                for limit in ("max_input", "max_message"):
                    msg["content"].pop(limit, None)
                message = json.dumps(msg)
            socket.send(message)

        server.on_message(from_server)
    page.route_web_socket("**/ws", route)


def goes_on(watch: Watch, cell: Any) -> None:
    """The page runs the next cell (long enough for a reconnect storm to show in the sockets
    opened), and Stop stops the one after; the page opened at most two sockets in all."""
    run(cell, "import time\ntime.sleep(1.5)\nprint(6 * 7)")
    expect(cell.locator(".cellbus-output")).to_have_text("42")
    expect(cell).to_have_attribute("data-status", "done")
    code_box(cell).press("Control+a")  # CodeMirror types at the cursor: replace all
    run(cell, "import time\nprint('started', flush=True)\ntime.sleep(30)")
    expect(cell.locator(".cellbus-output")).to_contain_text("started")
    cell.get_by_role("button", name="Stop").click()
    expect(cell).to_have_attribute("data-status", "error")
    expect(cell.locator(".cellbus-error")).to_contain_text("KeyboardInterrupt")
    assert len(watch.sockets) <= 2, f"{len(watch.sockets)} sockets opened"
    watch.check_quiet()


def test_a_cell_over_the_limit_fails_once_and_the_page_goes_on(page: Any,  # noqa: F811
                                                               web: Any) -> None:
    """Tests that a cell one byte over --max-input is refused with the limit's words, and one
    far past the WebSocket's largest message (which the gateway's subscribe_reply says) is
    failed by the page without sending it; and that the next cells run, Stop among them."""
    watch = Watch(page)
    cells = open_worksheet(page, web)
    just_over, far_over, small = cells.nth(0), cells.nth(1), cells.nth(2)

    run(just_over, "x = 1  # " + "q" * LIMIT)
    expect(just_over).to_have_attribute("data-status", "failed")
    expect(just_over).to_contain_text(OVER)
    run(far_over, "y = 2  # " + "z" * (8 * LIMIT))
    expect(far_over).to_have_attribute("data-status", "failed")
    expect(far_over).to_contain_text(f"the input is too big: it is over the limit of {LIMIT} "
                                     "bytes")
    expect(far_over.get_by_role("button", name="Stop")).to_be_hidden()
    assert len(watch.sockets) == 1
    goes_on(watch, small)


def test_a_socket_closed_for_a_big_cell_fails_that_cell_once(page: Any,  # noqa: F811
                                                             web: Any) -> None:
    """Tests that where the page does not know the gateway's limits, a cell far past its
    largest message, which the gateway closes the socket for (1009), fails saying it is too
    big, is not sent again on the next socket, and the page goes on; before, the page sent it
    again on every socket, a new one every ~0.3 s, and no other cell ran."""
    hide_limits(page)
    watch = Watch(page)
    cells = open_worksheet(page, web)
    far_over, small = cells.nth(1), cells.nth(2)
    run(far_over, "y = 2  # " + "z" * (16 * LIMIT))  # Chromium sends it in several frames
    expect(far_over).to_have_attribute("data-status", "failed")
    expect(far_over).to_contain_text("the input is too big: the server closed the connection "
                                     "for it (message too big)")
    goes_on(watch, small)


def test_a_cell_every_socket_closes_for_fails_after_a_few(page: Any,  # noqa: F811
                                                          web: Any) -> None:
    """Tests that a cell whose request ends every socket it is sent on, with no 1009 (a
    proxy's limit, or one past what the gateway reads before closing), fails after four
    sockets instead of being sent again for ever, and the page goes on."""
    def route(socket: Any) -> None:
        server = socket.connect_to_server()

        def from_page(message: str | bytes) -> None:
            if "never answered" in str(message):
                socket.close(code=4000, reason="dropped by the test")
                server.close()
            else:
                server.send(message)

        socket.on_message(from_page)
    page.route_web_socket("**/ws", route)
    watch = Watch(page)
    cells = open_worksheet(page, web)
    dropped, small = cells.nth(0), cells.nth(2)
    run(dropped, "print('ran')")  # its /update then answers (a cell that never ran: 404)
    expect(dropped.locator(".cellbus-output")).to_have_text("ran")
    code_box(dropped).press("Control+a")
    run(dropped, "print('never answered')")
    expect(dropped).to_have_attribute("data-status", "failed")
    expect(dropped).to_contain_text("the connection closed each of the 4 times it was sent")
    assert len(watch.sockets) in (4, 5), watch.sockets  # the first, one after each close
    run(small, "print(6 * 7)")
    expect(small.locator(".cellbus-output")).to_have_text("42")
    assert len(watch.sockets) == 5 and watch.refused == [], (watch.sockets, watch.refused)


def test_a_layout_refused_as_too_big_is_not_sent_again_until_it_shrinks(page: Any,  # noqa: F811
                                                                       web: Any) -> None:
    """Tests that once the store refuses the worksheet's layout for its size (a cell over
    --max-input: 413), the page says so and sends no layout as big again on each change
    (each was one more 413 in the console: a whole run saw three where one was expected),
    and that once the big cell is emptied the layout is saved again and the note goes."""
    watch = Watch(page)
    cells = open_worksheet(page, web)
    with page.expect_response(lambda r: r.url.endswith("/layout") and r.status == 413):
        code_box(cells.nth(0)).fill("x = 1  # " + "q" * LIMIT)
    note = page.locator("#layout-note")
    expect(note).to_contain_text("kept in this browser only")
    for move in ("Move down (cell 2)", "Move up (cell 2)", "Move down (cell 2)"):
        page.get_by_role("button", name=move).click()  # each saved at once, before: a 413
    # Saves go one at a time, in order: once this one is answered, none is still on its way.
    with page.expect_response(lambda r: r.url.endswith("/layout") and r.ok):
        code_box(cells.nth(0)).press("Control+a")
        code_box(cells.nth(0)).press("Delete")
    expect(note).to_be_hidden()
    assert len(watch.refused) == 1 and len(watch.console) == 1, (watch.refused, watch.console)
