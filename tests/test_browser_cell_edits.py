"""A JupyterLab user's cell edits on the worksheet page: Escape then C, X and V copy, cut and
paste cells; Escape then O hides a cell's output; Clear output keeps it cleared; a rendered
Markdown cell takes the command keys; a Move button pressed with the keyboard keeps the
focus; and a screen reader finds each cell and its output by name."""

from __future__ import annotations

import json
import re
from typing import Any

from access_util import call
from test_browser import (browser, code_box, code_of, expect, open_worksheet,  # noqa: F401
                          page, run, web)


def copy_cut_and_paste(page: Any, web: Any) -> None:
    """Escape then C copies the cell, V pastes it below (Shift+V above) as a new cell with
    the focus, and X cuts it (Escape then Z brings it back), X then V moving it down, with
    its output, as in Jupyter's command mode; the keys type nothing, and a note says what
    was copied. Before, each key was typed into the code ('a = 1cv')."""
    cells = open_worksheet(page, web)

    def codes(*expected: str) -> None:
        expect(cells).to_have_count(len(expected))
        for i, code in enumerate(expected):
            expect(code_of(cells.nth(i))).to_have_value(code)
    run(cells.nth(0), "print('one')")
    expect(cells.nth(0).locator(".cellbus-output")).to_have_text("one")
    code_box(cells.nth(1)).fill("b = 2")
    code_box(cells.nth(0)).press("Escape")
    page.keyboard.press("c")
    expect(page.get_by_role("status").filter(has_text="Cell 1 copied")).to_be_visible()
    page.keyboard.press("v")  # C then V: still command keys
    expect(cells).to_have_count(4)
    codes("print('one')", "print('one')", "b = 2", "")
    expect(code_box(cells.nth(1))).to_be_focused()
    expect(cells.nth(1).locator(".cellbus-output")).to_be_empty()  # a new cell: no run
    code_box(cells.nth(2)).press("Escape")
    page.keyboard.press("Shift+V")
    codes("print('one')", "print('one')", "print('one')", "b = 2", "")
    expect(code_box(cells.nth(2))).to_be_focused()
    code_box(cells.nth(0)).press("Escape")
    page.keyboard.press("x")  # cut: the focus goes to the next cell, V pastes below it
    expect(cells).to_have_count(4)
    page.keyboard.press("v")
    expect(cells).to_have_count(5)
    codes("print('one')", "print('one')", "print('one')", "b = 2", "")
    expect(cells.nth(1).locator(".cellbus-output")).to_have_text("one")  # itself, moved
    expect(cells.nth(1).get_by_role("button", name="Evaluate (cell 1)")).to_be_visible()
    code_box(cells.nth(3)).press("Escape")
    page.keyboard.press("x")
    expect(cells).to_have_count(4)
    page.keyboard.press("Escape")
    page.keyboard.press("z")
    codes("print('one')", "print('one')", "print('one')", "b = 2", "")


def test_escape_then_c_x_v_copy_cut_and_paste_cells(page: Any, web: Any) -> None:
    """In CodeMirror."""
    copy_cut_and_paste(page, web)


def test_escape_then_c_x_v_without_codemirror(page: Any, web: Any) -> None:
    """In the plain textarea of a page without CodeMirror."""
    page.route("**/vendor/codemirror/**", lambda route: route.abort())
    copy_cut_and_paste(page, web)


def test_a_screen_reader_finds_each_cell_and_its_output_by_name(page: Any, web: Any) -> None:
    """Each cell is a group named for it, holding its code box and buttons, and its output a
    log named for the cell, so a screen reader moves by cell and says whose output it reads.
    Before, the page was one run of unnamed boxes, buttons and text."""
    cells = open_worksheet(page, web)
    run(cells.nth(1), "print('spoken')")
    cell = page.get_by_role("group", name="cell 2", exact=True)
    expect(cell.get_by_role("textbox", name="code of cell 2")).to_have_count(1)
    expect(cell.get_by_role("button", name="Evaluate (cell 2)")).to_have_count(1)
    expect(cell.get_by_role("log", name="output of cell 2")).to_have_text("spoken")


def test_escape_then_o_hides_the_output_and_shows_it_again(page: Any, web: Any) -> None:
    """As JupyterLab's Escape then O (its collapser): the output is hidden, a button in its
    place shows it again, a run meanwhile keeps it hidden and its output shows with it, the
    focus stays in the cell, and the cell's Hide tool does the same (pressed while hidden);
    a hidden output stays hidden over a reload, as JupyterLab keeps it in the notebook.
    Before, Escape then O typed 'o' into the code, and no output could be hidden; and a
    reload showed every hidden output again."""
    cells = open_worksheet(page, web)
    cell = cells.nth(0)
    run(cell, "print('long', 1)")
    output = cell.get_by_role("log", name="output of cell 1")
    expect(output).to_have_text("long 1")
    page.keyboard.press("Escape")
    page.keyboard.press("o")
    show = cell.get_by_role("button", name="Show output (cell 1)")
    expect(output).to_be_hidden()
    expect(show).to_have_text("Show output")  # its name holds what it shows (speech control)
    expect(code_box(cell)).to_be_focused()
    expect(code_of(cell)).to_have_value("print('long', 1)")  # no 'o' typed
    code_box(cell).fill("print('long', 2)")
    page.keyboard.press("Control+Enter")
    expect(cell).to_have_attribute("data-status", "done")
    expect(output).to_be_hidden()  # stays hidden for a run
    show.click()
    expect(output).to_have_text("long 2")
    expect(show).to_be_hidden()
    expect(code_box(cell)).to_be_focused()  # not the page's body
    hide = cell.get_by_role("button", name="Hide output (cell 1)")
    hide.click()
    expect(output).to_be_hidden()
    expect(hide).to_have_attribute("aria-pressed", "true")
    hide.click()
    expect(output).to_be_visible()
    expect(hide).to_have_attribute("aria-pressed", "false")
    hide.click()  # kept with the worksheet's cells: hidden again after a reload
    expect(hide).to_have_attribute("aria-pressed", "true")
    page.reload()
    expect(cells.nth(0).locator(".cellbus-output")).to_be_hidden()
    expect(show).to_be_visible()
    expect(hide).to_have_attribute("aria-pressed", "true")
    show.click()
    expect(output).to_have_text("long 2")


def test_a_cleared_output_stays_cleared_until_the_cell_runs_again(page: Any, web: Any) -> None:
    """As Jupyter's Clear output: the cleared output stays cleared over a reload and in
    another tab following the worksheet (it takes the layout, which names the run cleared),
    with no [n], while the other cells keep theirs; the cell's next run shows its output
    everywhere; the store keeps the cleared run's output (its /update has it). Before, Clear
    output cleared this page only: a reload and the other tab showed the output again."""
    cells = open_worksheet(page, web)
    run(cells.nth(0), "print('first', 1)")
    first = cells.nth(0).locator(".cellbus-output")
    expect(first).to_have_text("first 1")
    run(cells.nth(1), "print('kept')")
    expect(cells.nth(1).locator(".cellbus-output")).to_have_text("kept")
    other = page.context.new_page()  # another tab of the worksheet, open meanwhile
    other.goto(page.url)
    theirs = other.locator(".cellbus-cell")
    expect(theirs.nth(0).locator(".cellbus-output")).to_have_text("first 1")
    page.get_by_role("button", name="Clear output (cell 1)").click()
    expect(first).to_be_empty()
    run(cells.nth(2), "print('third')")  # the other tab follows it and takes the layout
    expect(theirs.nth(2).locator(".cellbus-output")).to_have_text("third")
    expect(theirs.nth(0).locator(".cellbus-output")).to_be_empty()
    expect(theirs.nth(1).locator(".cellbus-output")).to_have_text("kept")
    with page.expect_response(lambda r: "/1/update" in r.url) as restored:
        page.reload()
    restored.value.finished()
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
    expect(cells.nth(1).locator(".cellbus-output")).to_have_text("kept")
    expect(cells.nth(2).locator(".cellbus-output")).to_have_text("third")
    expect(first).to_be_empty()
    expect(cells.nth(0).locator(".cellbus-count")).to_be_hidden()
    expect(cells.nth(1).locator(".cellbus-count")).to_be_visible()
    ws = page.url.split("ws=")[1]
    kept = call(web.port, "GET", f"/home/guest/{ws}/1/update").body
    assert "first 1" in json.dumps(kept["output"]), kept  # the store still has it
    code_box(cells.nth(0)).press("Control+a")  # CodeMirror types at the cursor: replace all
    run(cells.nth(0), "print('first', 2)")
    expect(first).to_have_text("first 2")
    expect(theirs.nth(0).locator(".cellbus-output")).to_have_text("first 2")
    page.reload()
    expect(first).to_have_text("first 2")
    other.close()


def saved_cleared(*ids: str) -> Any:
    """A predicate of responses: a layout save that holds cells ``ids`` cleared."""
    def saved(response: Any) -> bool:
        if not (response.url.endswith("/layout") and response.request.method == "POST"):
            return False
        body = response.request.post_data_json or {}
        return set(ids) <= {c.get("id") for c in body.get("cells", [])
                            if isinstance(c, dict) and c.get("outputs_cleared")}
    return saved


def reload_restored(page: Any, cell_id: str) -> None:
    """Reload, and wait until cell ``cell_id`` has shown what the store has of it."""
    with page.expect_response(lambda r: f"/{cell_id}/update" in r.url) as restored:
        page.reload()
    restored.value.finished()
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")


def test_a_cleared_cell_moved_stays_cleared_and_clear_outputs_clears_all(
        page: Any, web: Any) -> None:
    """A cleared cell cut and pasted back (a move) stays cleared over a reload: before, the
    clipboard kept no outputs_cleared, the layout saved lost it, and a reload showed the
    output again. Clear outputs (Jupyter's Clear All Outputs) clears every cell's so."""
    cells = open_worksheet(page, web)
    for i in range(3):
        run(cells.nth(i), f"print('out', {i + 1})")
        expect(cells.nth(i).locator(".cellbus-output")).to_have_text(f"out {i + 1}")
    with page.expect_response(saved_cleared("1")):
        page.get_by_role("button", name="Clear output (cell 1)").click()
    code_box(cells.nth(0)).press("Escape")
    page.keyboard.press("x")
    expect(cells).to_have_count(2)
    expect(code_box(cells.nth(0))).to_be_focused()  # (a V pressed before it is lost)
    with page.expect_response(saved_cleared("1")):
        page.keyboard.press("v")  # below the cell that took the focus
    expect(cells.nth(1)).to_have_attribute("aria-label", "cell 1")  # itself, moved
    reload_restored(page, "1")
    expect(cells.nth(1)).to_have_attribute("aria-label", "cell 1")
    expect(cells.nth(0).locator(".cellbus-output")).to_have_text("out 2")
    expect(cells.nth(1).locator(".cellbus-output")).to_be_empty()
    with page.expect_response(saved_cleared("1", "2", "3")):
        page.get_by_role("button", name="Clear outputs").click()
    for i in range(3):
        expect(cells.nth(i).locator(".cellbus-output")).to_be_empty()
    reload_restored(page, "3")
    for i in range(3):
        expect(cells.nth(i).locator(".cellbus-output")).to_be_empty()
    expect(cells.nth(2).locator(".cellbus-count")).to_be_hidden()


def test_a_move_button_pressed_with_the_keyboard_keeps_the_focus(page: Any, web: Any) -> None:
    """Enter on a cell's Move down button moves it and leaves the focus on that button, so
    Enter again moves it again, as a keyboard user expects of a button; before, the focus
    went to the cell's code and the second Enter typed a new line into it."""
    cells = open_worksheet(page, web)
    code_box(cells.nth(0)).fill("a = 1")
    down = page.get_by_role("button", name="Move down (cell 1)")
    down.focus()
    page.keyboard.press("Enter")
    expect(code_of(cells.nth(1))).to_have_value("a = 1")
    expect(down).to_be_focused()
    page.keyboard.press("Enter")
    expect(code_of(cells.nth(2))).to_have_value("a = 1")  # not 'a = 1\n', nor in place
    expect(down).to_be_focused()


def test_a_rendered_markdown_cell_takes_the_command_keys(page: Any, web: Any) -> None:
    """A rendered Markdown cell has no code box: as in JupyterLab's command mode, K and J go
    on from it, Down goes to the next cell, Shift+Enter goes on to the next cell, and D, D
    deletes it (Escape then Z brings it back). Before, Escape then K onto it stopped there:
    no key but Enter did anything."""
    cells = open_worksheet(page, web)
    code_box(cells.nth(0)).fill("a = 1")
    code_box(cells.nth(1)).fill("# Title")
    code_box(cells.nth(1)).press("Escape")
    page.keyboard.press("m")
    page.keyboard.press("Shift+Enter")  # rendered; the next cell has the focus
    rendered = cells.nth(1).locator(".cellbus-markdown")
    expect(rendered).to_be_visible()
    code_box(cells.nth(2)).fill("c = 3")
    page.keyboard.press("Escape")
    page.keyboard.press("k")
    expect(rendered).to_be_focused()
    page.keyboard.press("k")
    expect(code_box(cells.nth(0))).to_be_focused()
    page.keyboard.press("j")
    expect(rendered).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(code_box(cells.nth(2))).to_be_focused()
    rendered.focus()
    page.keyboard.press("Shift+Enter")
    expect(code_box(cells.nth(2))).to_be_focused()
    rendered.focus()
    page.keyboard.press("d")
    page.keyboard.press("d")
    expect(cells).to_have_count(2)
    expect(code_box(cells.nth(1))).to_be_focused()
    page.keyboard.press("Escape")
    page.keyboard.press("z")
    expect(cells).to_have_count(3)
    expect(code_of(cells.nth(1))).to_have_value("# Title")
    for i, code in ((0, "a = 1"), (2, "c = 3")):
        expect(code_of(cells.nth(i))).to_have_value(code)  # no key typed into them


def test_escape_then_up_and_down_go_to_the_cell_above_and_below(page: Any, web: Any) -> None:
    """As JupyterLab's command mode: Escape then Up goes to the cell above wherever the
    cursor is in the code (not only on its first line), more Up and Down go on from there;
    before, Escape then Up moved the cursor a line up in the code."""
    cells = open_worksheet(page, web)
    code_box(cells.nth(0)).fill("a = 1")
    code_box(cells.nth(1)).fill("b = 2\nc = 3\nd = 4")
    code_box(cells.nth(1)).press("Control+End")  # its last line
    page.keyboard.press("Escape")
    page.keyboard.press("ArrowUp")
    expect(code_box(cells.nth(0))).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(code_box(cells.nth(1))).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(code_box(cells.nth(2))).to_be_focused()
    expect(code_of(cells.nth(1))).to_have_value("b = 2\nc = 3\nd = 4")


def test_the_tabs_icon_shows_a_run(page: Any, web: Any) -> None:
    """As JupyterLab's busy icon: the tab's icon changes while a cell runs, and back once it
    ended, so a tab in the background says when a long run is over."""
    cells = open_worksheet(page, web)
    icon = page.locator("link[rel=icon]")
    idle = icon.get_attribute("href")
    run(cells.nth(0), "import time\ntime.sleep(1)")
    expect(icon).to_have_attribute("href", re.compile(r"^data:image/svg\+xml,"))
    expect(cells.nth(0)).to_have_attribute("data-status", "done")
    expect(icon).to_have_attribute("href", idle or "")


def test_a_rendered_markdown_cell_brought_back_or_pasted_has_the_focus(page: Any,
                                                                        web: Any) -> None:
    """A rendered Markdown cell brought back (Escape then Z), pasted (V) or moved has the
    focus on its text, where its keys work; before, the focus went to its hidden code box,
    and so to the page's body: the next key did nothing."""
    cells = open_worksheet(page, web)
    code_box(cells.nth(0)).fill("# Notes")
    code_box(cells.nth(0)).press("Escape")
    page.keyboard.press("m")
    page.keyboard.press("Control+Enter")  # rendered, focused
    rendered = cells.nth(0).locator(".cellbus-markdown")
    expect(rendered).to_be_focused()
    for key in ("d", "d"):
        page.keyboard.press(key)
    expect(cells).to_have_count(2)
    page.keyboard.press("Escape")
    page.keyboard.press("z")
    expect(cells).to_have_count(3)
    expect(rendered).to_be_focused()
    page.keyboard.press("c")
    page.keyboard.press("v")
    expect(cells).to_have_count(4)
    expect(cells.nth(1).locator(".cellbus-markdown")).to_be_focused()
    cells.nth(1).get_by_role("button", name="Move down").click()
    expect(cells.nth(2).locator(".cellbus-markdown")).to_be_focused()


def test_escape_then_enter_types_no_new_line(page: Any, web: Any) -> None:
    """As Jupyter's Enter in command mode (edit the cell): Escape then J then Enter, and
    Escape then Enter, leave the code as it was, and typing goes on there; before, each
    Enter typed a new line into the code."""
    cells = open_worksheet(page, web)
    code_box(cells.nth(0)).fill("a = 1")
    code_box(cells.nth(1)).fill("b = 2")
    code_box(cells.nth(0)).press("Escape")
    for key in ("j", "Enter"):
        page.keyboard.press(key)
    expect(code_box(cells.nth(1))).to_be_focused()
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    page.keyboard.press("Control+End")
    page.keyboard.type("0")
    expect(code_of(cells.nth(1))).to_have_value("b = 20")
    expect(code_of(cells.nth(0))).to_have_value("a = 1")
