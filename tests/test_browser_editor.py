"""The code box's keys as a Python programmer expects (issue 26, item 4, in part): Tab and
Shift+Tab indent and dedent by four spaces, Enter keeps the indentation (one level more
after a colon), Shift+Enter evaluates; Escape then Tab leaves the box (no keyboard trap)."""

from __future__ import annotations

from typing import Any

from test_browser import browser, expect, open_worksheet, page, web  # noqa: F401


def test_tab_enter_and_shift_enter(page: Any, web: Any) -> None:
    cell = open_worksheet(page, web).nth(0)
    box = cell.locator("textarea")
    box.click()
    page.keyboard.type("def f(n):")
    page.keyboard.press("Enter")
    page.keyboard.type("if n:")
    page.keyboard.press("Enter")
    page.keyboard.type("return 42")
    page.keyboard.press("Enter")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    page.keyboard.type("print(f(1))")
    expect(box).to_have_value("def f(n):\n    if n:\n        return 42\nprint(f(1))")
    page.keyboard.press("Control+a")
    page.keyboard.press("Tab")  # the selected lines, one level in
    expect(box).to_have_value(
        "    def f(n):\n        if n:\n            return 42\n    print(f(1))")
    expect(box).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(box).to_have_value("def f(n):\n    if n:\n        return 42\nprint(f(1))")
    page.keyboard.press("Shift+Enter")
    expect(cell.locator(".cellbus-output")).to_have_text("42")
    box.click()
    page.keyboard.press("Escape")
    page.keyboard.press("Tab")
    expect(box).not_to_be_focused()
