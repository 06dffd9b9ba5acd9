"""Markdown output (``text/markdown``: an object's ``_repr_markdown_``, IPython's Markdown)
is rendered, as Jupyter renders it, and as a Markdown cell is: marked, then DOMPurify, so
what the cell's code writes stays inert (no script, no event handler) and its links open in
a new tab. Before, it showed as its source text."""

from __future__ import annotations

from typing import Any

from test_browser import browser, expect, open_worksheet, page, run, web  # noqa: F401
from test_browser_console import Console

CODE = """class Note:
    def _repr_markdown_(self):
        return ('# Title\\n\\nSome *emphasis* and [a link](https://example.com/).\\n\\n'
                '<img src="data:,x" onerror="document.title = 1">'
                '<script>document.title = 2</script>')
display(Note())"""


def test_markdown_output_is_rendered_and_inert(page: Any, web: Any) -> None:
    console = Console(page)
    cell = open_worksheet(page, web).nth(0)
    title = page.title()
    run(cell, CODE)
    expect(cell).to_have_attribute("data-status", "done")
    md = cell.locator(".cellbus-output .cellbus-md")
    expect(md.locator("h1")).to_have_text("Title")
    expect(md.locator("em")).to_have_text("emphasis")
    link = md.locator("a")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    assert md.locator("script").count() == 0
    assert md.locator("img").get_attribute("onerror") is None
    assert page.title() == title
    assert console.settled(page) == []


LABELS = """from IPython.display import Markdown
display(Markdown('<label id="to-share" for="share">Click to go on</label> '
                 '<label id="to-run" for="run-all">or here</label>'))"""


def test_markdown_output_drives_no_control_of_the_page(page: Any, web: Any) -> None:
    """Tests that a label in Markdown output (what a shared link's code shows another user
    who runs it) is not the label of the page's own controls: clicking its text clicks no
    button of the page (before, `for="share"` made a permalink of the user's code and
    copied it, and `for="run-all"` ran every cell)."""
    page.add_init_script("window.__clicked = []; document.addEventListener('click', "
                         "(e) => window.__clicked.push(e.target.id), true)")
    cell = open_worksheet(page, web).nth(0)
    run(cell, LABELS)
    expect(cell).to_have_attribute("data-status", "done")
    md = cell.locator(".cellbus-output .cellbus-md")
    expect(md.locator("label")).to_have_count(2)
    md.locator("#to-share").click()
    md.locator("#to-run").click()
    page.wait_for_function("window.__clicked.length >= 2")
    assert page.evaluate("window.__clicked") == ["to-share", "to-run"]
    assert md.locator("label[for]").count() == 0
    expect(page.locator("#shared")).to_have_text("")
