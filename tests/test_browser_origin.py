"""A page of another site that the gateway does not allow is told so (issue 26, item 6): on
the page, and in the 403's body, naming the option an operator sets (--allow-origin).
Before, the page said "Could not reach the server; check the connection"."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from access_util import other_site, stored_requests
from harness import Chain
from test_browser import ARTIFACTS, expect, page  # noqa: F401
from test_browser_access import EMBED, browser, start  # noqa: F401


def test_refused_origin_says_so_on_the_page(page: Any, chain: Chain) -> None:
    pages: dict[str, str] = {}
    with other_site(pages) as port:
        origin = f"http://127.0.0.1:{port}"
        start(chain)  # no --allow-origin
        pages["/embed.html"] = EMBED.format(gw=chain.url("/"), options="{}")
        page.goto(f"{origin}/embed.html")
        cell = page.locator(".cellbus-cell")
        expect(cell).to_have_attribute("data-status", "failed")
        notice = cell.locator(".cellbus-notice")
        expect(notice).to_contain_text(f"--allow-origin {origin}")
        assert "Could not reach" not in notice.inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "refused-origin.png"), full_page=True)
    assert stored_requests(chain) == []


def test_refused_origin_403_names_the_option_and_is_readable(chain: Chain) -> None:
    start(chain)
    origin = "https://pages.example"
    request = urllib.request.Request(chain.url("/home/guest/ws/1/update"),
                                     headers={"Origin": origin})
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("a page of a refused origin was answered")
    except urllib.error.HTTPError as e:
        status, headers, body = e.code, e.headers, json.loads(e.read())
    assert status == 403
    assert f"--allow-origin {origin}" in body["error"], body
    assert headers["Access-Control-Allow-Origin"] == origin  # so that page can read why
    assert headers.get("Access-Control-Allow-Credentials") is None
