"""A shared link that cannot be opened says why in the page's words: ``/?z=`` with text that
is no compressed code showed the browser's own "Failed to execute 'atob' on 'Window'...",
and ``/?q=`` names the permalink it could not find."""

from __future__ import annotations

from typing import Any

from harness import Chain
from test_browser import browser, expect, page, web  # noqa: F401


def test_a_link_that_cannot_be_opened_says_why(page: Any, web: Chain) -> None:  # noqa: F811
    for query, words in (("z=garbage!!", "this link's code (?z=) is damaged"),
                         ("z=eJwrKMrMK9EwMtIEAA", "this link's code (?z=) is damaged"),
                         ("q=doesnotexist", "no such permalink doesnotexist")):
        page.goto(web.url(f"/?{query}&ws=links"))
        expect(page.locator("#shared")).to_contain_text(words)
        assert "atob" not in page.locator("#shared").inner_text()
