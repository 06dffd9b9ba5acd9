"""A notebook user's keys on the worksheet page, as in Jupyter: Alt+Enter runs the cell and
inserts a new one below it (focused); Up on a cell's first line and Down on its last go to
the cell above or below; a deleted cell comes back with Escape then Z, or its Undo button,
in its place with its code and output; and a run keeps the focus where it was."""

from __future__ import annotations

from typing import Any

from test_browser import (browser, code_box, code_of, expect, open_worksheet,  # noqa: F401
                          page, run, web)
from test_browser_console import Console


def focused_cell(page: Any) -> int:
    """The index of the cell whose code box has the focus, or -1."""
    return int(page.evaluate("""() => {
        const cell = document.activeElement && document.activeElement.closest('.cellbus-cell');
        return [...document.querySelectorAll('.cellbus-cell')].indexOf(cell);
    }"""))


def cursor_line(cell: Any) -> int:
    return int(cell.locator(".CodeMirror").evaluate("e => e.CodeMirror.getCursor().line"))


def test_alt_enter_runs_and_inserts_a_cell_below(page: Any, web: Any) -> None:
    console = Console(page)
    cells = open_worksheet(page, web)
    run(cells.nth(0), "x = 6 * 7\nprint('ran')", key="Alt+Enter")
    expect(cells).to_have_count(4)
    expect(cells.nth(0).locator(".cellbus-output")).to_have_text("ran")
    expect(code_of(cells.nth(1))).to_have_value("")
    expect(code_box(cells.nth(1))).to_be_focused()
    page.keyboard.type("print(x)")
    page.keyboard.press("Control+Enter")  # runs in place: the focus stays, after the run too
    expect(cells.nth(1).locator(".cellbus-output")).to_have_text("42")
    expect(cells.nth(1)).to_have_attribute("data-status", "done")
    expect(code_box(cells.nth(1))).to_be_focused()
    assert console.settled(page) == []


def test_up_and_down_at_a_cells_edge_go_to_the_next_cell(page: Any, web: Any) -> None:
    cells = open_worksheet(page, web)
    code_box(cells.nth(0)).fill("a = 1\nb = 2")
    code_box(cells.nth(1)).fill("c = 3\nd = 4")
    code_box(cells.nth(0)).press("Control+Home")
    page.keyboard.press("ArrowDown")  # line 2 of 2: still this cell
    assert focused_cell(page) == 0 and cursor_line(cells.nth(0)) == 1
    page.keyboard.press("ArrowDown")
    expect(code_box(cells.nth(1))).to_be_focused()
    assert cursor_line(cells.nth(1)) == 0  # its first line
    page.keyboard.press("ArrowUp")
    expect(code_box(cells.nth(0))).to_be_focused()
    assert cursor_line(cells.nth(0)) == 1  # its last line
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")  # the first cell's first line: nowhere above to go
    assert focused_cell(page) == 0 and cursor_line(cells.nth(0)) == 0
    expect(code_of(cells.nth(0))).to_have_value("a = 1\nb = 2")  # no key typed anything


def test_a_deleted_cell_comes_back_with_escape_z_or_undo(page: Any, web: Any) -> None:
    console = Console(page)
    cells = open_worksheet(page, web)
    run(cells.nth(1), "print('kept')")
    expect(cells.nth(1).locator(".cellbus-output")).to_have_text("kept")
    cells.nth(1).get_by_role("button", name="Delete cell").click()
    expect(cells).to_have_count(2)
    page.keyboard.press("Escape")
    page.keyboard.press("z")
    expect(cells).to_have_count(3)
    expect(code_of(cells.nth(1))).to_have_value("print('kept')")
    expect(cells.nth(1).locator(".cellbus-output")).to_have_text("kept")
    for i in (0, 2):
        expect(code_of(cells.nth(i))).to_have_value("")  # the z typed nothing
    cells.nth(1).get_by_role("button", name="Delete cell").click()
    expect(cells).to_have_count(2)
    page.get_by_role("button", name="Undo delete").click()
    expect(cells).to_have_count(3)
    expect(code_of(cells.nth(1))).to_have_value("print('kept')")
    expect(page.get_by_role("button", name="Undo delete")).to_be_hidden()
    with page.expect_request_finished(lambda r: r.url.endswith("/layout")
                                      and r.method == "POST"):
        cells.nth(1).get_by_role("button", name="Move up").click()
    console.settled(page)
    page.reload()  # the cell brought back was saved, in its place
    expect(code_of(page.locator(".cellbus-cell").nth(0))).to_have_value("print('kept')")
    expect(page.locator(".cellbus-cell").nth(0).locator(".cellbus-output")).to_have_text("kept")
    assert console.settled(page) == []


def delete_with_command_keys(page: Any, web: Any) -> None:
    """Escape then D, D deletes the cell, as in Jupyter's command mode; the D's type nothing,
    the next cell has the focus, and Escape then Z brings the cell back."""
    cells = open_worksheet(page, web)
    for i, code in enumerate(("first = 1", "second = 2", "third = 3")):
        code_box(cells.nth(i)).fill(code)
    code_box(cells.nth(1)).press("Escape")
    page.keyboard.press("d")
    expect(cells).to_have_count(3)  # one D alone deletes nothing, nor is it typed
    page.keyboard.press("d")
    expect(cells).to_have_count(2)
    assert [code_of(cells.nth(i)).input_value() for i in range(2)] == ["first = 1", "third = 3"]
    expect(code_box(cells.nth(1))).to_be_focused()
    page.keyboard.press("Escape")
    page.keyboard.press("d")
    page.keyboard.press("x")  # not a second D: nothing deleted, and typing goes on
    expect(cells).to_have_count(2)
    page.keyboard.press("Escape")
    page.keyboard.press("z")
    expect(cells).to_have_count(3)
    assert [code_of(cells.nth(i)).input_value() for i in range(3)] == [
        "first = 1", "second = 2", "third = 3x"]


def test_escape_then_d_d_deletes_the_cell(page: Any, web: Any) -> None:
    """In CodeMirror."""
    delete_with_command_keys(page, web)


def test_escape_then_d_d_without_codemirror(page: Any, web: Any) -> None:
    """In the plain textarea of a page without CodeMirror."""
    page.route("**/vendor/codemirror/**", lambda route: route.abort())
    delete_with_command_keys(page, web)


def test_stop_pressed_with_the_keyboard_keeps_the_focus_in_the_cell(page: Any,
                                                                     web: Any) -> None:
    """Stop hides itself once the run stops: the focus it had goes to the cell's Evaluate
    button beside it, not to the page's body (where a keyboard user's next Tab started
    again from the top of the page)."""
    cells = open_worksheet(page, web)
    run(cells.nth(1), "import time\nprint('sleeping', flush=True)\ntime.sleep(60)")
    expect(cells.nth(1).locator(".cellbus-output")).to_have_text("sleeping")
    stop = cells.nth(1).get_by_role("button", name="Stop")
    stop.focus()
    page.keyboard.press("Enter")
    expect(cells.nth(1)).to_have_attribute("data-status", "error")  # KeyboardInterrupt
    expect(stop).to_be_hidden()
    expect(cells.nth(1).get_by_role("button", name="Evaluate")).to_be_focused()
    page.keyboard.press("Shift+Tab")  # and from there on, in the page's order
    expect(code_box(cells.nth(1))).to_be_focused()


def test_the_focus_stays_in_the_cell_after_a_render_or_a_prompts_answer(page: Any,
                                                                       web: Any) -> None:
    """Ctrl+Enter on a Markdown cell renders it and leaves the focus on it (Enter edits it
    again), and a prompt answered with Enter hands its focus to its cell's code once it
    goes; before, both left the focus on the page's body."""
    cells = open_worksheet(page, web)
    code_box(cells.nth(0)).fill("# Notes")
    page.keyboard.press("Escape")
    page.keyboard.press("m")
    page.keyboard.press("Control+Enter")
    expect(cells.nth(0).locator(".cellbus-markdown h1")).to_have_text("Notes")
    expect(cells.nth(0).locator(".cellbus-markdown")).to_be_focused()
    page.keyboard.press("Enter")
    expect(code_box(cells.nth(0))).to_be_focused()
    run(cells.nth(1), "name = input('who? ')\nprint('hi', name)")
    answer = cells.nth(1).locator("input.cellbus-prompt-input")
    expect(answer).to_be_focused()
    page.keyboard.type("ada")
    page.keyboard.press("Enter")
    expect(cells.nth(1).locator(".cellbus-output")).to_contain_text("hi ada")
    expect(answer).to_have_count(0)
    expect(code_box(cells.nth(1))).to_be_focused()


def split_and_merge(page: Any, web: Any) -> None:
    """Ctrl+Shift+Minus splits the cell at the cursor, the rest in a new cell below with the
    focus at its start; Escape then Shift+M merges the cell with the one below, as in
    Jupyter (Escape then Z brings the cell merged away back). Before, the Shift after an
    Escape ended the command keys, so an "M" was typed; and Ctrl+Shift+Minus did nothing."""
    cells = open_worksheet(page, web)
    code_box(cells.nth(0)).fill("a = 1\nb = 2")
    code_box(cells.nth(1)).fill("c = 3")
    code_box(cells.nth(0)).press("Control+Home")
    page.keyboard.press("ArrowDown")  # the start of "b = 2"
    page.keyboard.press("Control+Shift+Minus")
    expect(cells).to_have_count(4)
    assert [code_of(cells.nth(i)).input_value() for i in range(3)] == ["a = 1", "b = 2", "c = 3"]
    expect(code_box(cells.nth(1))).to_be_focused()
    page.keyboard.type("x")  # at its start
    expect(code_of(cells.nth(1))).to_have_value("xb = 2")
    page.keyboard.press("Escape")
    page.keyboard.press("Shift+M")
    expect(cells).to_have_count(3)
    assert [code_of(cells.nth(i)).input_value() for i in range(3)] == [
        "a = 1", "xb = 2\n\nc = 3", ""]
    expect(cells.nth(1)).not_to_have_attribute("data-type", "markdown")  # not Escape then M
    expect(code_box(cells.nth(1))).to_be_focused()
    page.keyboard.press("Escape")
    page.keyboard.press("z")
    expect(cells).to_have_count(4)
    expect(code_of(cells.nth(2))).to_have_value("c = 3")


def test_split_and_merge_cells(page: Any, web: Any) -> None:
    """In CodeMirror."""
    split_and_merge(page, web)


def test_split_and_merge_cells_without_codemirror(page: Any, web: Any) -> None:
    """In the plain textarea of a page without CodeMirror."""
    page.route("**/vendor/codemirror/**", lambda route: route.abort())
    split_and_merge(page, web)


def test_escape_then_i_i_interrupts_and_0_0_restarts(page: Any, web: Any) -> None:
    """Jupyter's other doubled command keys: Escape then I, I stops the running cell, and
    Escape then 0, 0 restarts the session; before, each typed "ii" or "00" into the code."""
    cells = open_worksheet(page, web)
    run(cells.nth(0), "import time\nx = 1\nprint('sleeping', flush=True)\ntime.sleep(60)")
    expect(cells.nth(0).locator(".cellbus-output")).to_have_text("sleeping")
    code_box(cells.nth(1)).fill("print(x)")
    page.keyboard.press("Escape")
    page.keyboard.press("i")
    page.keyboard.press("i")
    expect(cells.nth(0).locator(".cellbus-error")).to_contain_text("KeyboardInterrupt")
    page.keyboard.press("Escape")
    page.keyboard.press("0")
    page.keyboard.press("0")
    bar = page.locator(".cellbus-session")
    expect(bar).to_have_attribute("data-state", "gone")
    expect(bar.locator(".cellbus-session-state")).to_contain_text("restarted")
    expect(code_of(cells.nth(1))).to_have_value("print(x)")  # nothing typed
    page.keyboard.press("Control+Enter")
    expect(cells.nth(1).locator(".cellbus-error")).to_contain_text("NameError")


def select_with_command_keys(page: Any, web: Any) -> None:
    """As Jupyter's command mode: Escape then K goes to the cell above, J to the one below,
    and more J and K go on from there (command keys still), none typed into the code (before,
    'k' was typed into the cell); past the first cell K stays put."""
    cells = open_worksheet(page, web)
    for n, code in enumerate(["a = 1", "b = 2", "c = 3"]):
        code_box(cells.nth(n)).fill(code)
    code_box(cells.nth(2)).focus()
    page.keyboard.press("Escape")
    for key, then in [("k", 1), ("k", 0), ("k", 0), ("j", 1), ("Escape", 1), ("j", 2)]:
        page.keyboard.press(key)
        expect(code_box(cells.nth(then))).to_be_focused()
    for n, code in enumerate(["a = 1", "b = 2", "c = 3"]):
        expect(code_of(cells.nth(n))).to_have_value(code)
    page.keyboard.type("q")  # a key that is no command key types again (X cuts)
    expect(code_of(cells.nth(2))).not_to_have_value("c = 3")


def test_escape_then_j_and_k_go_to_the_cell_below_and_above(page: Any, web: Any) -> None:
    """In CodeMirror."""
    select_with_command_keys(page, web)


def test_escape_then_j_and_k_without_codemirror(page: Any, web: Any) -> None:
    """In the plain textarea of a page without CodeMirror."""
    page.route("**/vendor/codemirror/**", lambda route: route.abort())
    select_with_command_keys(page, web)


def test_ctrl_s_saves_the_cells_at_once_and_not_the_browsers_page(page: Any,
                                                                   web: Any) -> None:
    """Ctrl+S, a Jupyter user's habit, saves the worksheet's cells in the store at once and
    says so, and the browser's own Save Page (a file dialog) does not open: the key's
    default is prevented. Before, the page left Ctrl+S to the browser."""
    cells = open_worksheet(page, web)
    page.evaluate("""() => addEventListener("keydown", (event) => {
        if (event.key === "s") window.__saveKey = event.defaultPrevented; })""")
    code_box(cells.nth(0)).focus()
    page.keyboard.type("print('kept')")
    with page.expect_request_finished(lambda r: r.url.endswith("/layout")
                                      and "kept" in (r.post_data or "")):
        page.keyboard.press("Control+s")
    assert page.evaluate("window.__saveKey") is True
    expect(page.locator("#notebook-note")).to_contain_text("Saved")

