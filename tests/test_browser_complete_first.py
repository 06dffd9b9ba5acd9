"""Tab completes in a worksheet before its first run, as in Jupyter (real Chromium, real
chain): the first completion finds no session (the broker refuses it: 409), so the page starts
one with an evaluate of nothing (channelstart.js), says on its session bar that it is there,
and asks again; that start takes no execution number and no cell's place, and completions in
several cells at once start one session. The console stays clean."""

from __future__ import annotations

from typing import Any

from access_util import call
from harness import Chain
from test_browser import (browser, code_box, code_of, expect, open_worksheet,  # noqa: F401
                          page, run, web)
from test_browser_console import Console
from test_browser_delete import worksheet_of

NO_SESSION = "no session yet: the first evaluation starts one"


def session_state(page: Any) -> Any:  # noqa: F811
    return page.locator(".cellbus-session .cellbus-session-state")


def test_tab_completes_before_the_worksheets_first_run(page: Any, web: Chain) -> None:  # noqa: F811
    """Tests that Tab in a fresh worksheet completes a builtin (the completion starts the
    worksheet's session, as an evaluate of nothing would, and the session bar says it is
    there), that the session it started takes no execution number and no cell's place,
    and that completions in two cells at once start one session."""
    console = Console(page)
    starts: list[str] = []  # the page's evaluates of nothing
    page.on("websocket", lambda ws: ws.on("framesent", lambda text: isinstance(text, str) and (
        '"execute_request"' in text and '"keepalive"' in text) and starts.append(text)))
    cells = open_worksheet(page, web)
    ws = worksheet_of(page)
    first, second = cells.nth(0), cells.nth(1)
    expect(session_state(page)).to_have_text(NO_SESSION)
    code_box(first).fill("x = isinst")
    code_box(second).fill("y = zip_longe")
    page.evaluate("""() => {  // Tab in both cells at once: one session starts for both
      for (const cm of document.querySelectorAll('.CodeMirror')) {
        const editor = cm.CodeMirror;
        if (!editor.getValue()) continue;
        editor.focus();
        editor.setCursor(editor.lineCount(), 0);
        editor.triggerOnKeyDown({type: 'keydown', keyCode: 9, preventDefault() {},
                                 stopPropagation() {}});
      }
    }""")
    expect(code_of(first)).to_have_value("x = isinstance")
    expect(code_of(second)).to_have_value("y = zip_longe")  # no such builtin: unchanged
    expect(session_state(page)).to_have_text("idle")
    third = cells.nth(2)
    code_box(third).fill("sorte")
    code_box(third).press("End")
    code_box(third).press("Tab")  # the session is there now: asked at once
    expect(code_of(third)).to_have_value("sorted")
    code_box(first).press("Control+a")  # typed over
    run(first, "print(abs(-3))")
    expect(first.locator(".cellbus-output")).to_have_text("3")
    expect(first.locator(".cellbus-count")).to_have_text("[1]")
    layout = call(web.port, "GET", f"/home/guest/{ws}/layout").body
    assert layout["ran"] == ["1"], layout
    assert len(starts) == 1, starts
    assert console.settled(page) == []


def test_tab_completes_over_long_polling_too(page: Any, web: Chain) -> None:  # noqa: F811
    """Tests that where no WebSocket gets through, Tab completes as it does over one (POST
    …/complete, gateway/completions.py), before the first run too: the session is started
    once (an evaluate of nothing over HTTP) and the bar says so; no request fails."""
    console = Console(page)
    page.route_web_socket("**/ws", lambda ws: ws.close())
    starts: list[str] = []
    page.on("request", lambda r: r.url.endswith("/keepalive/evaluate") and starts.append(r.url))
    cells = open_worksheet(page, web)
    first = cells.nth(0)
    expect(session_state(page)).to_have_text(NO_SESSION)
    code_box(first).fill("x = isinst")
    code_box(first).press("End")
    for _ in range(20):  # the page takes to HTTP once its second socket closed: a Tab
        code_box(first).press("Tab")  # before that completes nothing (and changes nothing)
        try:
            expect(code_of(first)).to_have_value("x = isinstance", timeout=1000)
            break
        except AssertionError:
            continue
    expect(code_of(first)).to_have_value("x = isinstance")
    expect(session_state(page)).to_have_text("idle")
    code_box(cells.nth(1)).fill("sorte")
    code_box(cells.nth(1)).press("End")
    code_box(cells.nth(1)).press("Tab")
    expect(code_of(cells.nth(1))).to_have_value("sorted")
    code_box(first).press("Control+a")  # typed over
    run(first, "print(abs(-3))")
    expect(first.locator(".cellbus-output")).to_have_text("3")
    expect(first.locator(".cellbus-count")).to_have_text("[1]")
    assert len(starts) == 1, starts
    assert console.settled(page) == []


def test_tab_before_the_socket_subscribed_completes_once_it_has(page: Any,  # noqa: F811
                                                                 web: Chain) -> None:
    """Tests that Tab pressed while the page's WebSocket has not yet subscribed (here it is
    held by the test until the Tab was pressed, as a slow network holds it) completes once
    the socket is through, instead of doing nothing; and that the page goes on from there."""
    console = Console(page)
    held: list[Any] = []
    sides: dict[str, Any] = {}

    def route(socket: Any) -> None:  # the page's socket opens; nothing reaches the gateway
        sides["page"] = socket
        socket.on_message(lambda m: sides["server"].send(m) if "server" in sides
                          else held.append(m))
    page.route_web_socket("**/ws", route)
    cells = open_worksheet(page, web)
    first = cells.nth(0)
    code_box(first).fill("x = isinst")
    code_box(first).press("End")
    code_box(first).press("Tab")
    expect(code_of(first)).to_have_value("x = isinst")  # nothing has answered yet
    server = sides["page"].connect_to_server()  # the network lets it through
    server.on_message(lambda m: sides["page"].send(m))
    sides["server"] = server
    for message in held:
        server.send(message)
    expect(code_of(first)).to_have_value("x = isinstance")
    run(cells.nth(1), "print(6 * 7)")
    expect(cells.nth(1).locator(".cellbus-output")).to_have_text("42")
    assert console.settled(page) == []
