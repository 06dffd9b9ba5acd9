"""What ordinary use meets (another tab answered the prompt first; Stop pressed as the run
ended) shows no error in the browser's console, which logs every 4xx answer: the page asks
the gateway to report such a conflict (``?on_conflict=report``, answered 200 with what went
on), says it in words, and loses nothing."""

from __future__ import annotations

from typing import Any

from test_browser import browser, expect, open_worksheet, page, run, web  # noqa: F401
from test_browser_console import Console
from test_browser_delete import worksheet_of


class HeldSocket:
    """The page's WebSocket through Playwright: what the gateway sends is held while
    ``hold`` is set, and passed on in order once :meth:`release` is called."""

    def __init__(self, page: Any) -> None:  # noqa: F811
        self.hold = False
        self.held: list[tuple[Any, Any]] = []
        page.route_web_socket("**/ws", self._route)

    def _route(self, ws: Any) -> None:
        server = ws.connect_to_server()
        server.on_message(lambda m: self.held.append((ws, m)) if self.hold else ws.send(m))

    def release(self) -> None:
        self.hold = False
        held, self.held = self.held, []
        for ws, message in held:
            ws.send(message)


def test_answering_a_prompt_another_tab_answered_is_no_console_error(
        page: Any, web: Any) -> None:  # noqa: F811
    console = Console(page)
    socket = HeldSocket(page)
    cell = open_worksheet(page, web).nth(0)
    run(cell, "print('got', input('Go? '))")
    box = cell.locator(".cellbus-prompt-input")
    expect(box).to_be_visible()
    socket.hold = True  # this page does not hear yet that the prompt was answered
    ws = worksheet_of(page)
    assert web.http("POST", f"/home/guest/{ws}/1/input", b'{"value": "first"}')[0] == 202
    box.fill("second")
    box.press("Enter")
    expect(cell.locator(".cellbus-prompt-notice")).to_contain_text(
        "This prompt no longer waits for an answer")
    socket.release()
    expect(cell.locator(".cellbus-output")).to_contain_text("got first")
    expect(cell).to_have_attribute("data-status", "done")
    assert console.settled(page) == []


def test_stop_as_the_run_ends_over_long_polling_is_no_console_error(
        page: Any, web: Any) -> None:  # noqa: F811
    """The run ended, but the page has not heard (its /update is held): Stop's interrupt
    finds nothing running."""
    console = Console(page)
    page.route_web_socket("**/ws", lambda ws: ws.close())
    held: list[Any] = []
    cell = open_worksheet(page, web).nth(0)
    page.route("**/update?*", lambda route: route.continue_() if held == [None]
               else held.append(route))
    with page.expect_request_finished(lambda r: r.url.endswith("/evaluate")):
        run(cell, "print('quick')")
    stop = cell.get_by_role("button", name="Stop")
    expect(stop).to_be_visible()
    ws = worksheet_of(page)
    status, body = web.http("GET", f"/home/guest/{ws}/1/update?wait=20&until=done")
    assert status == 200 and body["status"] == "done", body
    with page.expect_request_finished(lambda r: "/interrupt" in r.url):
        stop.click()
    routes = held[:]
    held[:] = [None]  # later ones go on at once
    for route in routes:
        route.continue_()
    expect(cell.locator(".cellbus-output")).to_have_text("quick")
    expect(cell).to_have_attribute("data-status", "done")
    assert console.settled(page) == []
    # Over HTTP itself: the same refusal, a 409 unless reported.
    assert web.http("POST", f"/home/guest/{ws}/1/interrupt")[0] == 409
    status, body = web.http("POST", f"/home/guest/{ws}/1/interrupt?on_conflict=report")
    assert status == 200 and body["conflict"] is True and "not running" in body["error"], body
    status, body = web.http("POST", f"/home/guest/{ws}/1/input?on_conflict=report",
                            b'{"value": "late"}')
    assert status == 200 and body["conflict"] is True, body
