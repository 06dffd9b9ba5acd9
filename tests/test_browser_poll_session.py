"""Over long polling (no WebSocket gets through) the session bar hears what the WebSocket
tells it: the idle warning before the device's --idle-timeout (with Keep), and the session's
end, "gone: why", also after a reload; from ``GET /home/U/W/session`` (gateway/sessionnotes.py),
which long-polls the worksheet's notes."""

from __future__ import annotations

from typing import Any

from harness import Chain
from test_browser import ARTIFACTS, browser, expect, open_worksheet, page, run  # noqa: F401
from test_browser_console import Console
from test_browser_delete import worksheet_of


def no_websocket(page: Any) -> None:  # noqa: F811
    page.route_web_socket("**/ws", lambda ws: ws.close())


def test_idle_warning_and_end_over_long_polling(page: Any, chain: Chain) -> None:  # noqa: F811
    chain.start_broker()
    chain.start_device("--idle-timeout", "4")
    chain.start_gateway()
    console = Console(page)  # (no request stays open: settled waits for each to end)
    no_websocket(page)
    cells = open_worksheet(page, chain)
    bar = page.locator(".cellbus-session")
    state = bar.locator(".cellbus-session-state")
    keep = bar.get_by_role("button", name="Keep")
    run(cells.nth(0), "x = 1")
    expect(cells.nth(0)).to_have_attribute("data-status", "done")
    expect(state).to_contain_text("idle: variables are cleared in", timeout=10_000)
    keep.click()
    expect(keep).to_be_hidden()
    expect(keep).to_be_visible(timeout=10_000)  # the keep-alive run's own idle time
    assert chain.broker is not None
    chain.broker.wait_for_log(r"closed session \S+ \(idle timeout\)", timeout=30)
    expect(bar).to_have_attribute("data-state", "gone")
    expect(state).to_contain_text("gone: idle too long; its variables were cleared")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "poll-session-gone.png"))
    page.reload()
    expect(bar).to_have_attribute("data-state", "gone")
    expect(state).to_contain_text("gone: idle too long")
    run(cells.nth(1), "print(x)")
    expect(cells.nth(1).locator(".cellbus-error")).to_contain_text("NameError")
    expect(bar).to_have_attribute("data-state", "idle")
    assert console.settled(page) == []
    # The endpoint itself: the notes after a seq, the session they are of.
    status, body = chain.http("GET", f"/home/guest/{worksheet_of(page)}/session?since=0")
    assert status == 200 and isinstance(body["session"], str), body
    assert body["seq"] > 0 and all(m["metadata"]["cellbus"]["seq"] <= body["seq"]
                                   for m in body["messages"]), body
    status, body = chain.http("GET", "/home/guest/no-such-ws/session?since=0")
    assert status == 200 and body == {"session": None, "seq": 0, "messages": [],
                                      "more": False}, body
    assert chain.http("GET", "/home/guest/w/session?since=x")[0] == 400
