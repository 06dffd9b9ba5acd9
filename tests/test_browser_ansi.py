"""ANSI colours in output show as colours, not raw escapes (issue 26, item 4): ansi_up,
pinned from npm and served by the gateway (static/vendor/ansi_up.js), turns them into
spans; text is escaped all the same."""

from __future__ import annotations

from typing import Any

from test_browser import ARTIFACTS, browser, expect, open_worksheet, page, run, web  # noqa: F401

CODE = r"""import sys
print('\x1b[31mred\x1b[0m and \x1b[1;32mbold green\x1b[0m <b>not html</b>')
print('\x1b[34mblue to stderr\x1b[0m', file=sys.stderr)
raise ValueError('\x1b[33myellow\x1b[0m')"""


def test_ansi_colours_render_as_colours(page: Any, web: Any) -> None:
    cell = open_worksheet(page, web).nth(0)
    run(cell, CODE)
    expect(cell).to_have_attribute("data-status", "error")
    out = cell.locator(".cellbus-stdout")
    expect(out.locator("span.ansi-red-fg")).to_have_text("red")
    expect(out.locator("span.ansi-green-fg")).to_have_text("bold green")
    expect(out).to_have_text("red and bold green <b>not html</b>")  # no escapes, no HTML
    assert out.locator("b").count() == 0
    red = out.locator("span.ansi-red-fg").evaluate("e => getComputedStyle(e).color")
    assert red != out.evaluate("e => getComputedStyle(e).color"), red  # a colour of its own
    expect(cell.locator(".cellbus-stderr span.ansi-blue-fg")).to_have_text("blue to stderr")
    error = cell.locator(".cellbus-error")
    expect(error.locator("span.ansi-yellow-fg")).to_have_text("yellow")
    assert "\x1b" not in cell.locator(".cellbus-output").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ansi.png"))
