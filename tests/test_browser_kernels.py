"""The worksheet page's kernel selector and makeCell's ``kernel`` option, in real Chromium
against the whole chain with a device offering the built-in Python and bash_kernel; and an
.ipynb opened on the page runs in the notebook's kernel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kernels import require_kernel
from module_chain import module_chain
from test_browser import (browser, code_of, expect, open_worksheet, page,  # noqa: F401
                          run)


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One chain for the module's tests, each on a worksheet of its own."""
    require_kernel("bash")
    yield from module_chain(tmp_path_factory, "kernels", device=("--kernels", "python,bash"))


def test_kernel_selector_picks_the_worksheets_kernel(page, web) -> None:  # noqa: F811
    cells = open_worksheet(page, web)
    select = page.locator("#kernel")
    expect(select.locator("option")).to_have_count(2)
    expect(select).to_have_value("python")
    bar = page.locator(".cellbus-session .cellbus-kernel")
    expect(bar).to_have_text("Python 3")
    hint = "e => e.CodeMirror.getOption('placeholder')"
    assert cells.nth(2).locator(".CodeMirror").evaluate(hint) == \
        "Python code; Shift+Enter evaluates"
    select.select_option("bash")
    expect(bar).to_have_text("Bash")  # it said "Python 3" over the bash session
    expect(cells.nth(2).locator("textarea.cellbus-input")).to_have_attribute(
        "placeholder", "Shell code; Shift+Enter evaluates")  # it said "Python code"
    assert cells.nth(2).locator(".CodeMirror").evaluate(hint) == \
        "Shell code; Shift+Enter evaluates"
    run(cells.nth(0), 'echo "from bash $((6*7))"')
    expect(cells.nth(0).locator(".cellbus-output")).to_have_text("from bash 42")
    # every cell's editor highlights shell now
    for n in range(3):
        mode = cells.nth(n).locator(".CodeMirror").evaluate("e => e.CodeMirror.getOption('mode')")
        assert mode == "shell", n
    run(cells.nth(1), "echo $BASH_VERSINFO")  # later cells: the same bash session
    expect(cells.nth(1)).to_have_attribute("data-status", "done")
    assert cells.nth(1).locator(".cellbus-output").inner_text().strip().isdigit()
    # Another kernel picked while the session runs: the session restarts in it, as
    # JupyterLab's Change Kernel (before, the next cell's Python ran in bash: an error).
    select.select_option("python")
    expect(page.locator(".cellbus-kernel")).to_have_text("Python 3")
    run(cells.nth(2), "print('from python', 6 * 7)")
    expect(cells.nth(2).locator(".cellbus-output")).to_have_text("from python 42")


def test_make_cell_kernel_option(page, web) -> None:  # noqa: F811
    page.goto(web.url("/static/cellbus.js"))  # the gateway's origin, no worksheet page
    page.set_content(f'<script src="{web.url("/static/cellbus.js")}"></script><div id="c"></div>')
    page.evaluate(f"""() => cellbus.makeCell(document.getElementById("c"), {{
        server: {web.url("/")!r}, worksheet: "opt", code: 'echo "opt $((2+3))"',
        kernel: "bash", autoeval: true}})""")
    expect(page.locator(".cellbus-output")).to_have_text("opt 5")


def test_an_opened_notebook_runs_in_its_kernel_and_a_download_keeps_it(
        page: Any, web: Any, tmp_path: Path) -> None:  # noqa: F811
    """Tests that a notebook nbformat made for bash_kernel (its kernelspec ``bash``) opens in
    a worksheet whose kernel is bash, so Run all runs its cells there (before, in the
    built-in Python: SyntaxError); and that the worksheet downloaded and opened again is
    bash still (its cellbus kernel), the round trip keeping it."""
    nbformat = pytest.importorskip("nbformat")
    v4 = nbformat.v4
    notebook = v4.new_notebook(cells=[v4.new_code_cell('echo "bash $((6*7))"')], metadata={
        "kernelspec": {"name": "bash", "display_name": "Bash", "language": "bash"}})
    path = tmp_path / "bash.ipynb"
    nbformat.write(notebook, path)
    cells = open_worksheet(page, web)
    page.get_by_label("Open .ipynb").set_input_files(path)
    expect(page.locator("#kernel")).to_have_value("bash")
    expect(code_of(cells.nth(0))).to_have_value('echo "bash $((6*7))"')
    page.get_by_role("button", name="Run all", exact=True).click()
    expect(cells.nth(0).locator(".cellbus-output")).to_have_text("bash 42")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download .ipynb").click()
    again = tmp_path / "again.ipynb"
    download.value.save_as(again)
    open_worksheet(page, web)  # the default kernel, python
    expect(page.locator("#kernel")).to_have_value("python")
    page.get_by_label("Open .ipynb").set_input_files(again)
    expect(page.locator("#kernel")).to_have_value("bash")
    page.get_by_role("button", name="Run all", exact=True).click()
    expect(page.locator(".cellbus-cell").nth(0).locator(".cellbus-output")).to_have_text(
        "bash 42")


def test_a_notebook_in_a_kernel_not_offered_says_so_and_the_person_picks(
        page: Any, web: Any, tmp_path: Path) -> None:  # noqa: F811
    """Tests that a notebook whose kernel this gateway does not offer (Julia) is not opened
    in the default kernel without a word: the page names that kernel and lets the person
    pick one of those offered (bash here, its cells then run there) or cancel, which opens
    nothing. Before, it opened in Python and said nothing. A notebook of ipykernel
    (``python3``, not offered here) opens in the one kernel offered in its language, the
    built-in ``python``, as JupyterLab picks, without asking."""
    nbformat = pytest.importorskip("nbformat")
    v4 = nbformat.v4
    notebook = v4.new_notebook(cells=[v4.new_code_cell('echo "picked $((6*7))"')], metadata={
        "kernelspec": {"name": "julia-1.10", "display_name": "Julia 1.10", "language": "julia"}})
    path = tmp_path / "julia.ipynb"
    nbformat.write(notebook, path)
    open_worksheet(page, web)
    url = page.url
    note = page.locator("#notebook-note")
    page.get_by_label("Open .ipynb").set_input_files(path)
    expect(note).to_contain_text("julia.ipynb names the kernel Julia 1.10 (julia-1.10), which"
                                 " this gateway does not offer")
    note.get_by_role("button", name="Cancel").click()
    expect(note).to_have_text("julia.ipynb was not opened.")
    assert page.url == url

    page.get_by_label("Open .ipynb").set_input_files(path)
    choice = page.get_by_label("kernel to open julia.ipynb in")
    expect(choice).to_be_focused()
    choice.select_option("bash")
    note.get_by_role("button", name="Open").click()
    expect(page.locator("#kernel")).to_have_value("bash")
    cells = page.locator(".cellbus-cell")
    expect(code_of(cells.nth(0))).to_have_value('echo "picked $((6*7))"')
    page.get_by_role("button", name="Run all", exact=True).click()
    expect(cells.nth(0).locator(".cellbus-output")).to_have_text("picked 42")

    ipykernel = v4.new_notebook(cells=[v4.new_code_cell("print('py', 6 * 7)")], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                       "language": "python"}})
    nbformat.write(ipykernel, tmp_path / "py.ipynb")
    open_worksheet(page, web, kernel="bash")
    page.get_by_label("Open .ipynb").set_input_files(tmp_path / "py.ipynb")
    expect(page.locator("#kernel")).to_have_value("python")
    page.get_by_role("button", name="Run all", exact=True).click()
    expect(page.locator(".cellbus-cell").nth(0).locator(".cellbus-output")).to_have_text("py 42")
