"""The worksheet page and Jupyter: Run all (the button and Ctrl+F9: code cells in order, each
after the one before, stopping at the first error), Download .ipynb (the page's cells and
their outputs, as nbformat validates), and Open .ipynb (a notebook's code and Markdown cells,
not its outputs, into this worksheet if it is empty, else a new one; nothing runs; a file
that is no notebook, or over the layout's limits, refused on the page)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from access_util import JSON, call
from harness import Chain
from test_browser import (PNG_B64, browser, code_box, code_of, expect,  # noqa: F401
                          open_worksheet, page, web)

nbformat = pytest.importorskip("nbformat")
v4 = nbformat.v4

PNG_CELL = ("import base64\n"
            "class Dot:\n"
            "    def _repr_png_(self):\n"
            f"        return base64.b64decode('{PNG_B64}')\n"
            "display(Dot())")


def fill(cell: Any, text: str) -> None:
    code_box(cell).fill(text)


def worksheet_of(page: Any) -> str:
    return page.url.split("ws=")[1].split("&")[0]


def never_ran(web: Chain, ws: str, cell_id: str) -> bool:
    return call(web.port, "GET", f"/home/guest/{ws}/{cell_id}/update").status == 404


def test_run_all_then_download(page: Any, web: Chain, tmp_path: Path) -> None:  # noqa: F811
    """Tests that Run all runs the code cells top to bottom (their execution counts are
    1, 2, 3, 4 in page order), renders the Markdown cell, stops at the cell that fails (the
    one after it never runs) and says so; then that Download .ipynb gives WORKSHEET.ipynb,
    valid nbformat 4, with the cells in order and each one's stream, result, image and
    error."""
    cells = open_worksheet(page, web)
    ws = worksheet_of(page)
    cells.nth(0).get_by_role("combobox", name="Cell type (cell 1)").select_option("markdown")
    fill(cells.nth(0), "# Results\n\nof *today*")
    fill(cells.nth(1), "print('hello')")
    fill(cells.nth(2), "6 * 7")
    for code in (PNG_CELL, "1 / 0", "print('after the error')"):
        page.get_by_role("button", name="+ Add cell").click()
        fill(cells.last, code)
    expect(cells).to_have_count(6)
    page.get_by_role("button", name="Run all", exact=True).click()
    expect(cells.nth(4)).to_have_attribute("data-status", "error")
    expect(page.locator("#notebook-note")).to_have_text(
        "Run all stopped at cell 5 (error): the cells after it did not run.")
    expect(cells.nth(0).locator(".cellbus-markdown h1")).to_have_text("Results")
    for i, count in ((1, 1), (2, 2), (3, 3), (4, 4)):
        expect(cells.nth(i).locator(".cellbus-count")).to_have_text(f"[{count}]")
        expect(cells.nth(i)).to_have_attribute("data-status", "done" if i < 4 else "error")
    expect(cells.nth(5)).to_have_attribute("data-status", "idle")
    assert never_ran(web, ws, "6")

    with page.expect_download() as info:
        page.get_by_role("link", name="Download .ipynb").click()
    download = info.value
    assert download.suggested_filename == f"{ws}.ipynb"
    path = tmp_path / "got.ipynb"
    download.save_as(path)
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert [(c.cell_type, c.source) for c in nb.cells] == [
        ("markdown", "# Results\n\nof *today*"), ("code", "print('hello')"), ("code", "6 * 7"),
        ("code", PNG_CELL), ("code", "1 / 0"), ("code", "print('after the error')")]
    _, hello, value, image, error, after = nb.cells
    assert [(o.output_type, o.name, o.text) for o in hello.outputs] == [
        ("stream", "stdout", "hello\n")]
    assert [(o.output_type, o.data, o.execution_count) for o in value.outputs] == [
        ("execute_result", {"text/plain": "42"}, 2)]
    assert [(o.output_type, o.data["image/png"]) for o in image.outputs] == [
        ("display_data", PNG_B64)]
    assert [(o.output_type, o.ename) for o in error.outputs] == [
        ("error", "ZeroDivisionError")]
    assert [c.execution_count for c in nb.cells[1:]] == [1, 2, 3, 4, None]
    assert after.outputs == []


def notebook_file(tmp_path: Path, name: str, cells: list[Any]) -> Path:
    path = tmp_path / name
    nbformat.write(v4.new_notebook(cells=cells), path)
    return path


def test_open_ipynb_into_the_empty_worksheet_then_run_all(page: Any, web: Chain,  # noqa: F811
                                                          tmp_path: Path) -> None:
    """Tests that a notebook made by nbformat opens into the empty worksheet: its Markdown
    and code cells in order (a raw cell left out), the Markdown rendered, none of the
    notebook's outputs shown and nothing run, a cell whose output Jupyter hid hiding its
    output here; and that Ctrl+F9 runs all in order, sharing variables, stopping at the
    error."""
    old = v4.new_code_cell("x = 20", outputs=[
        v4.new_output("stream", name="stdout", text="OLD OUTPUT")], execution_count=7)
    path = notebook_file(tmp_path, "in.ipynb", [
        v4.new_markdown_cell("# Imported\n\nsome *words*"), old,
        v4.new_code_cell("print(x + 1)", metadata={"jupyter": {"outputs_hidden": True}}),
        v4.new_raw_cell("raw text"),
        v4.new_code_cell("x / 0"), v4.new_code_cell("print('never')")])
    cells = open_worksheet(page, web)
    ws = worksheet_of(page)
    page.get_by_label("Open .ipynb").set_input_files(path)
    expect(cells).to_have_count(5)
    assert worksheet_of(page) == ws  # it was empty: the notebook went into it
    expect(cells.nth(0).locator(".cellbus-markdown h1")).to_have_text("Imported")
    expect(cells.nth(0)).to_have_attribute("data-type", "markdown")
    for i, code in ((1, "x = 20"), (2, "print(x + 1)"), (3, "x / 0"), (4, "print('never')")):
        expect(code_of(cells.nth(i))).to_have_value(code)
        expect(cells.nth(i)).to_have_attribute("data-status", "idle")
        expect(cells.nth(i).locator(".cellbus-output")).to_be_empty()
    for cell_id in ("2", "3", "4", "5"):
        assert never_ran(web, ws, cell_id)
    code_box(cells.nth(2)).press("Control+F9")
    expect(cells.nth(3)).to_have_attribute("data-status", "error")
    expect(cells.nth(2).locator(".cellbus-output")).to_have_text("21")
    expect(cells.nth(2).locator(".cellbus-output")).to_be_hidden()  # hidden in Jupyter too
    expect(cells.nth(2).get_by_role("button", name="Show output (cell 3)")).to_be_visible()
    expect(cells.nth(3).locator(".cellbus-error")).to_contain_text("ZeroDivisionError")
    expect(page.locator("#notebook-note")).to_contain_text("stopped at cell 4 (error)")
    expect(cells.nth(4)).to_have_attribute("data-status", "idle")
    assert never_ran(web, ws, "5")


def test_open_ipynb_refusals_and_a_new_worksheet(page: Any, web: Chain,  # noqa: F811
                                                 tmp_path: Path) -> None:
    """Tests that a file that is no JSON, a notebook of format 3, one of more cells than a
    layout holds and one of more bytes are refused with a message saying why, the worksheet
    left as it was; and that a notebook opened on a worksheet that is not empty goes to a
    new worksheet, the old one kept."""
    cells = open_worksheet(page, web)
    ws = worksheet_of(page)
    fill(cells.nth(0), "print('mine')")
    note = page.locator("#notebook-note")
    opener = page.get_by_label("Open .ipynb")
    bad = tmp_path / "bad.ipynb"
    for text in ("this is not JSON", json.dumps({"nbformat": 3, "nbformat_minor": 0,
                                                 "worksheets": [{"cells": []}]})):
        bad.write_text(text)
        opener.set_input_files(bad)
        expect(note).to_have_text("bad.ipynb cannot be opened: not a Jupyter notebook of "
                                  'format 4 (an .ipynb file, JSON with "nbformat": 4 and its '
                                  '"cells")')
        note.evaluate("n => { n.textContent = ''; }")
    many = notebook_file(tmp_path, "many.ipynb", [v4.new_code_cell(f"{i}")
                                                  for i in range(1001)])
    opener.set_input_files(many)
    expect(note).to_contain_text("many.ipynb cannot be opened: a layout is a list of at most "
                                 "1000 cells")
    big = notebook_file(tmp_path, "big.ipynb", [v4.new_markdown_cell("x" * 2**20)])
    opener.set_input_files(big)
    expect(note).to_contain_text("big.ipynb cannot be opened: a layout is over the limit")
    assert worksheet_of(page) == ws
    expect(cells).to_have_count(3)
    expect(code_of(cells.nth(0))).to_have_value("print('mine')")

    small = notebook_file(tmp_path, "small.ipynb", [v4.new_code_cell("print('theirs')")])
    opener.set_input_files(small)
    page.wait_for_url(lambda url: f"ws={ws}" not in url)
    cells = page.locator(".cellbus-cell")
    expect(code_of(cells.nth(0))).to_have_value("print('theirs')")
    expect(cells).to_have_count(3)  # a worksheet shows three cells at least
    page.goto(web.url(f"/?ws={ws}"))
    expect(page.locator(".cellbus-cell")).to_have_count(3)
    expect(code_of(page.locator(".cellbus-cell").nth(0))).to_have_value("print('mine')")


def test_a_download_that_cannot_be_made_says_why_and_keeps_the_page(
        page: Any, web: Chain) -> None:  # noqa: F811
    """Tests that Download .ipynb offline, or refused by the gateway, says so above the
    cells and leaves the worksheet page where it is; before, the browser went to its error
    page (offline) or to the gateway's JSON answer, the worksheet gone from the tab."""
    cells = open_worksheet(page, web)
    url = page.url
    fill(cells.nth(0), "print('kept')")
    code_box(cells.nth(0)).press("Control+Enter")
    expect(cells.nth(0).locator(".cellbus-output")).to_have_text("kept")
    note = page.locator("#notebook-note")
    page.context.set_offline(True)
    page.get_by_role("link", name="Download .ipynb").click()
    expect(note).to_have_text("The notebook was not downloaded: this browser is offline;"
                              " try again once it is back online.")
    page.context.set_offline(False)
    page.route("**/notebook.ipynb", lambda route: route.fulfill(
        status=413, content_type="application/json",
        body=json.dumps({"error": "the notebook is over 48 MiB"})))
    page.get_by_role("link", name="Download .ipynb").click()
    expect(note).to_have_text("The notebook was not downloaded: the notebook is over 48 MiB")
    assert page.url == url
    expect(cells.nth(0).locator(".cellbus-output")).to_have_text("kept")


def test_offline_the_worksheets_buttons_say_so_in_words(page: Any, web: Chain,  # noqa: F811
                                                        tmp_path: Path) -> None:
    """Tests that Open .ipynb, Delete worksheet and Share, pressed offline, say that the
    browser is offline (before: the browser's "Failed to fetch"), and change nothing."""
    cells = open_worksheet(page, web)
    fill(cells.nth(0), "print('mine')")
    path = notebook_file(tmp_path, "in.ipynb", [v4.new_code_cell("print('theirs')")])
    page.context.set_offline(True)
    note = page.locator("#notebook-note")
    offline = "this browser is offline; try again once it is back online."
    page.get_by_label("Open .ipynb").set_input_files(path)
    expect(note).to_have_text("in.ipynb cannot be opened: " + offline)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete worksheet").click()
    expect(note).to_have_text("The worksheet was not deleted: " + offline)
    page.get_by_role("button", name="Share").click()
    expect(page.locator("#shared")).to_have_text("No link was made: " + offline)
    page.context.set_offline(False)
    expect(code_of(cells.nth(0))).to_have_value("print('mine')")


def test_a_worksheet_of_200_cells_loads_without_a_layout_per_cell(page: Any,  # noqa: F811
                                                                   web: Chain) -> None:
    """Tests that a worksheet of 200 cells (a notebook a person opens) loads with few
    layouts of the page, not one or more per cell, and that a cell far down shows its code
    once scrolled to and runs. Before, each cell's editor was made in the page and measured
    itself, forcing a layout of all above it: 1,486 layouts (3.9 s of a 5-10 s load on a
    loaded 2-core machine); after, 81."""
    ws = "t-many"
    cells = [{"id": str(i), "type": "markdown" if i % 10 == 0 else "code",
              "code": f"# Part {i}" if i % 10 == 0 else f"x{i} = {i}\nprint(x{i})"}
             for i in range(1, 201)]
    assert call(web.port, "POST", f"/home/guest/{ws}/layout", json.dumps({"cells": cells}),
                JSON).status == 200
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")
    page.goto(web.url(f"/?ws={ws}"))
    shown = page.locator(".cellbus-cell")
    expect(shown).to_have_count(200)
    expect(shown.nth(1).locator(".CodeMirror-code")).to_have_text("x2 = 2print(x2)")
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    assert metrics["LayoutCount"] < 400, metrics  # a count, not a time: 1,486 before
    far = shown.nth(150)
    far.scroll_into_view_if_needed()
    expect(far.locator(".CodeMirror-code")).to_have_text("x151 = 151print(x151)")
    code_box(far).press("Control+Enter")
    expect(far.locator(".cellbus-output")).to_have_text("151")
