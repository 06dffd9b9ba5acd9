"""cellbus.js when the gateway closes its socket as too slow (code 4008): it connects again
after a pause that grows with each such close, and resumes from the last seq it has."""

from __future__ import annotations

import json
import time
from typing import Any

from test_browser import browser, expect, open_worksheet, page, run, web  # noqa: F401

TOO_SLOW = 4008


class Sockets:
    """Every WebSocket the page opens to /ws, proxied to the real gateway by Playwright;
    the test closes the page's side with any code it likes."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.opened: list[dict[str, Any]] = []  # {"at", "route", "subscribes"}
        page.route_web_socket("**/ws", self._open)

    def _open(self, route: Any) -> None:
        server = route.connect_to_server()
        record: dict[str, Any] = {"at": time.monotonic(), "route": route, "subscribes": []}
        self.opened.append(record)

        def from_page(message: str | bytes) -> None:
            msg = json.loads(message)
            if msg.get("header", {}).get("msg_type") == "subscribe_request":
                record["subscribes"].append(msg["content"])
            server.send(message)

        route.on_message(from_page)

    def wait_for(self, count: int, timeout: float = 20) -> dict[str, Any]:
        """The count-th socket, once it has subscribed."""
        deadline = time.monotonic() + timeout
        while len(self.opened) < count or not self.opened[count - 1]["subscribes"]:
            assert time.monotonic() < deadline, f"{len(self.opened)} sockets, not {count}"
            self.page.wait_for_timeout(20)  # lets Playwright deliver the routes' events
        return self.opened[count - 1]

    def close_as_too_slow(self, record: dict[str, Any]) -> float:
        record["route"].close(code=TOO_SLOW, reason="too slow")
        return time.monotonic()


def test_socket_closed_as_too_slow_reconnects_with_backoff_and_resumes(page, web) -> None:
    sockets = Sockets(page)
    cell = open_worksheet(page, web).nth(0)
    first = sockets.wait_for(1)
    run(cell, "import time\nfor i in range(16):\n    print(i, flush=True)\n    time.sleep(0.25)")
    out = cell.locator(".cellbus-output")
    expect(out).to_contain_text("2")
    closed = sockets.close_as_too_slow(first)
    second = sockets.wait_for(2)
    resumed = second["subscribes"][0]
    assert resumed["since"] > 0 and resumed["session"], resumed  # from where it was
    closed_again = sockets.close_as_too_slow(second)
    third = sockets.wait_for(3)
    first_pause, second_pause = second["at"] - closed, third["at"] - closed_again
    # Not at once (a storm on a flooded gateway), and longer the second time: 1 s, then 2 s
    # (each +-25%); before, every reconnect came after 0.25 s.
    assert first_pause >= 0.7 and second_pause >= 1.4, (first_pause, second_pause)
    assert third["subscribes"][0]["since"] >= resumed["since"]
    expect(cell).to_have_attribute("data-status", "done")
    expect(out).to_have_text("\n".join(str(i) for i in range(16)))
    expect(out.locator(".cellbus-block")).to_have_count(1)
