"""The code editor (issue 26, item 4): CodeMirror 5 from static/vendor/codemirror/ on the
worksheet page, in the language of the worksheet's kernel, with the keys a Python programmer
expects: Tab and Shift+Tab indent and dedent by four spaces, Enter keeps the indentation (one
level more after a colon), Shift+Enter evaluates, and Escape then Tab leaves the editor (no
keyboard trap). A page that did not load CodeMirror keeps a plain textarea with those keys."""

from __future__ import annotations

from typing import Any

from test_browser import (ARTIFACTS, browser, code_box, code_of, expect,  # noqa: F401
                          open_worksheet, page, run, web)


def type_and_run(page: Any, cell: Any) -> None:
    """Type a function with the keys, indent and dedent it all, run it: the code as typed."""
    box, code = code_box(cell), code_of(cell)
    editor = cell.locator(".CodeMirror, textarea:visible").first  # what a user clicks
    editor.click()
    page.keyboard.type("def f(n):")
    page.keyboard.press("Enter")
    page.keyboard.type("if n:")
    page.keyboard.press("Enter")
    page.keyboard.type("return 42")
    page.keyboard.press("Enter")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    page.keyboard.type("print(f(1))")
    expect(code).to_have_value("def f(n):\n    if n:\n        return 42\nprint(f(1))")
    page.keyboard.press("Control+a")
    page.keyboard.press("Tab")  # the selected lines, one level in
    expect(code).to_have_value(
        "    def f(n):\n        if n:\n            return 42\n    print(f(1))")
    expect(box).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(code).to_have_value("def f(n):\n    if n:\n        return 42\nprint(f(1))")
    page.keyboard.press("Shift+Enter")
    expect(cell.locator(".cellbus-output")).to_have_text("42")
    editor.click()
    # A click in CodeMirror's selection (all of it is selected) may start a drag, and on
    # Chrome its end focuses the editor's input again from a 20 ms timer: on a busy machine
    # that came after the Tab below. A later timer of the page's runs after it.
    page.evaluate("() => new Promise((done) => setTimeout(done, 50))")
    page.keyboard.press("Escape")
    page.keyboard.press("Tab")
    expect(box).not_to_be_focused()


def test_codemirror_keys_and_highlighting(page: Any, web: Any) -> None:
    cell = open_worksheet(page, web).nth(0)
    expect(cell.locator(".CodeMirror")).to_have_count(1)
    type_and_run(page, cell)
    expect(cell.locator(".cm-keyword").first).to_have_text("def")  # highlighted as Python
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "editor-codemirror.png"))


def test_tab_after_a_name_completes_it_from_the_session(page: Any, web: Any) -> None:
    """As in Jupyter, Tab right after a name asks the session: one completion is put in at
    once, several are offered in a list (Enter takes one); Tab after spaces still indents."""
    cells = open_worksheet(page, web)
    run(cells.nth(0), "zebra_count = 41\nzebra_feed = 'hay'")
    expect(cells.nth(0).locator(".cellbus-status")).to_contain_text("done")
    second = cells.nth(1)
    code_box(second).fill("x = zebra_c")
    code_box(second).press("End")
    code_box(second).press("Tab")
    expect(code_of(second)).to_have_value("x = zebra_count")
    code_box(second).press("Enter")
    page.keyboard.type("zebra_")
    page.keyboard.press("Tab")
    hints = page.locator(".CodeMirror-hints li")
    expect(hints).to_have_text(["zebra_count", "zebra_feed"])
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(code_of(second)).to_have_value("x = zebra_count\nzebra_feed")
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")  # nothing before the cursor: an indent
    expect(code_of(second)).to_have_value("x = zebra_count\nzebra_feed\n    ")


def test_the_mode_follows_the_kernel(page: Any, web: Any) -> None:
    """Tests that each kernel's code is highlighted in its language, and that the session bar
    and the empty box's hint name it (R's kernelspec, "ir", was named "ir")."""
    modes = {"python": ("python", "Python 3", "Python"), "python3": ("python", "Python 3",
             "Python"), "ir": ("r", "R", "R"), "bash": ("shell", "Bash", "Shell")}
    for kernel, (mode, name, language) in modes.items():
        cell = open_worksheet(page, web, kernel=kernel).nth(0)
        shown = cell.locator(".CodeMirror").evaluate("e => e.CodeMirror.getOption('mode')")
        assert shown == mode, kernel
        expect(page.locator(".cellbus-session .cellbus-kernel")).to_have_text(name)
        expect(cell.locator("textarea.cellbus-input")).to_have_attribute(
            "placeholder", f"{language} code; Shift+Enter evaluates")
    code_box(cell).fill("echo $HOME # hi")
    expect(cell.locator(".cm-comment")).to_have_text("# hi")


def test_without_codemirror_a_plain_textarea(page: Any, web: Any) -> None:
    """An embedder that loads cellbus.js alone (here: CodeMirror's files are refused)."""
    page.route("**/vendor/codemirror/**", lambda route: route.abort())
    cell = open_worksheet(page, web).nth(0)
    expect(cell.locator(".CodeMirror")).to_have_count(0)
    expect(code_box(cell)).to_have_class("cellbus-input")
    type_and_run(page, cell)


def test_a_long_cell_scrolls_within_30_lines(page: Any, web: Any) -> None:
    """As the plain textarea was, the editor grows with its code up to 30 lines, then
    scrolls: a 100-line cell does not push the rest of the worksheet a page down."""
    cell = open_worksheet(page, web).nth(0)
    code_box(cell).fill("\n".join(f"x{i} = {i}" for i in range(100)))
    expect(cell.locator(".CodeMirror-line").first).to_have_text("x0 = 0")
    box = cell.locator(".CodeMirror").bounding_box()
    assert box is not None and 500 < box["height"] < 700, box


def insert_with_command_keys(page: Any, web: Any) -> None:
    """Escape then B in the first cell adds one below it, Escape then A in that new one adds
    one above it (between the two), each focused and empty; other keys type as always."""
    cells = open_worksheet(page, web)
    code_box(cells.nth(0)).fill("first = 1")
    code_box(cells.nth(1)).fill("second = 2")
    code_box(cells.nth(0)).press("Escape")
    code_box(cells.nth(0)).press("b")
    expect(cells).to_have_count(4)
    expect(code_box(cells.nth(1))).to_be_focused()
    page.keyboard.type("below")
    page.keyboard.press("Escape")
    page.keyboard.press("a")
    expect(cells).to_have_count(5)
    expect(code_box(cells.nth(1))).to_be_focused()
    page.keyboard.type("above")
    assert [code_of(cells.nth(i)).input_value() for i in range(4)] == [
        "first = 1", "above", "below", "second = 2"]


def test_escape_then_a_or_b_adds_a_cell_above_or_below(page: Any, web: Any) -> None:
    """As in Jupyter's command mode, in CodeMirror."""
    insert_with_command_keys(page, web)


def test_escape_then_a_or_b_without_codemirror(page: Any, web: Any) -> None:
    """The same keys in the plain textarea of a page without CodeMirror."""
    page.route("**/vendor/codemirror/**", lambda route: route.abort())
    insert_with_command_keys(page, web)
