"""Clickjacking: no page of another origin may show the gateway's pages in a frame.

The worksheet page runs code with one click on its Run button, and ``/?q=ID`` opens it with
any code ready to run. Framed invisibly under a decoy button by a page of another port of
the same host (same site: the browser sends the ``SameSite=Strict`` sign-in cookie along),
or of any site when the gateway runs without auth, it ran that code as the victim. Real
Chromium; the framing page is a plain web server on another loopback port.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from access_util import add_user, call, other_site
from harness import Chain
from test_browser import launch_chromium, open_page

pytestmark = pytest.mark.timeout(120)

#: The gateway's pages a frame could show.
PAGES = ("/?ws=framed", "/embed-example")

FRAMING = """<!doctype html><html><body>
<script>window.loaded = 0;</script>
{frames}
</body></html>"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_chromium()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    yield from open_page(browser)


def framed_cells(page: Any, chain: Chain) -> dict[str, int]:
    """Open a page of another port that frames each of :data:`PAGES`; once every frame has
    loaded (its own content or the browser's error page), how many cells each one shows."""
    frames = "\n".join(f'<iframe src="{chain.url(path)}" width="900" height="600" '
                       'onload="window.loaded++"></iframe>' for path in PAGES)
    with other_site({"/frames.html": FRAMING.format(frames=frames)}) as port:
        page.goto(f"http://127.0.0.1:{port}/frames.html")
        page.wait_for_function(f"window.loaded === {len(PAGES)}")
        shown = {}
        for path, frame in zip(PAGES, page.main_frame.child_frames, strict=True):
            shown[path] = frame.evaluate(
                "document.querySelectorAll('.cellbus-cell, .cellbus-input').length")
    return shown


@pytest.mark.parametrize("auth", ["token", "none"])
def test_no_other_page_can_frame_the_gateways_pages(page: Any, chain: Chain, auth: str) -> None:
    """Before, a page of another port framed the signed-in worksheet (token auth) or any
    worksheet (no auth), cells and Run buttons working in the frame."""
    token = add_user(chain, "alice") if auth == "token" else None
    chain.start_broker()
    chain.start_device()
    chain.start_gateway("--auth", auth)
    if token:  # signed in as a user signs in: the link typed into the address bar
        page.goto(chain.url(f"/?token={token}"))
        page.locator(".cellbus-cell").first.wait_for()
    assert framed_cells(page, chain) == dict.fromkeys(PAGES, 0)
    for path in (*PAGES, "/signin", "/health", "/home/alice/w/1/update"):
        r = call(chain.port, "GET", path)
        assert r.headers["X-Frame-Options"] == "DENY", path
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"], path
