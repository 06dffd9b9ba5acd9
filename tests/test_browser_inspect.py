"""Shift+Tab right after a name shows the session's help on it (its signature and
docstring, Jupyter's inspect_request), as in Jupyter, over the WebSocket and over long
polling (POST …/inspect); Escape or moving on closes it; elsewhere Shift+Tab still
dedents."""

from __future__ import annotations

from typing import Any

import pytest

from test_browser import (browser, code_box, code_of, expect, open_worksheet, page,  # noqa: F401
                          run, web)
from test_browser_console import Console

DEFINE = "def add(a, b=2):\n    'Adds a and b, as a notebook user would.'\n    return a + b"


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_shift_tab_after_a_name_shows_its_help(page: Any, web: Any, transport: str) -> None:
    console = Console(page)
    if transport == "polling":
        page.route_web_socket("**/ws", lambda ws: ws.close())
    cells = open_worksheet(page, web)
    run(cells.nth(0), DEFINE)
    expect(cells.nth(0)).to_have_attribute("data-status", "done")
    box = code_box(cells.nth(1))
    box.fill("add(")
    box.press("End")
    box.press("Shift+Tab")
    help_box = cells.nth(1).locator(".cellbus-inspect")
    expect(help_box).to_contain_text("add(a, b=2)")
    expect(help_box).to_contain_text("Adds a and b, as a notebook user would.")
    expect(code_of(cells.nth(1))).to_have_value("add(")  # nothing typed, nothing dedented
    box.press("Escape")
    expect(help_box).to_have_count(0)
    box.press("Shift+Tab")
    expect(help_box).to_be_visible()
    page.keyboard.type("1")  # typing on: it goes
    expect(help_box).to_have_count(0)
    box.press("Enter")
    page.keyboard.type("x")
    indented = code_of(cells.nth(1)).input_value()
    assert indented.startswith("add(1\n    "), indented  # (in the parenthesis: indented)
    page.keyboard.press("Home")
    page.keyboard.press("Shift+Tab")  # before the line's text: a dedent, as before
    expect(code_of(cells.nth(1))).to_have_value(indented.replace("\n    ", "\n", 1))
    if transport == "websocket":
        assert console.settled(page) == []
