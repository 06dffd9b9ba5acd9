"""LaTeX math on the worksheet page, as Jupyter shows it: ``$...$``, ``$$...$$``, ``\\\\(...\\\\)``
and ``\\\\[...\\\\]`` in Markdown cells and ``text/markdown`` output (a single backslash is
Markdown's escape there, as JupyterLab 4.6 has it: ``\\[note\\]`` shows ``[note]``), and
``text/latex`` output (IPython's Math and Latex, sympy's ``_repr_latex_``), rendered by KaTeX
(static/vendor/katex/) after marked and DOMPurify. Code spans and blocks keep their ``$``, a
price is not math (pandoc's rule: ``costs $5 and $6``), and a bad formula shows its source in an
error colour while the rest of the page works. Before, all of it showed as its source text."""

from __future__ import annotations

from typing import Any

from test_browser import (browser, code_box, expect, open_worksheet, page, run,  # noqa: F401
                          web)
from test_browser_console import Console

MARKDOWN = r"""Inline $x^2_{i}$ and \\(\alpha\\), then display:

$$\int_0^1 f(x)\,dx$$

\\[a_1 * b_1\\]

See \[note\] and \(aside\), as in JupyterLab.

Run `echo $HOME` and it costs $5 and $6.

```
cp $A $B
```

Bad: $\frac{1$ and on.

Untrusted: $\href{javascript:window.__xss=1}{x}$ \\(\htmlId{own}{y}\\)

Escaped: \$5 and $z$.

    x = $a$ + $b$"""


def test_markdown_math_renders_and_code_and_prices_stay(page: Any, web: Any) -> None:
    """Tests that a Markdown cell's inline and display math become KaTeX (the TeX kept as
    its annotation), that `$` in a code span, code blocks, prices and `\\$` stays literal,
    that an invalid formula shows its source as a KaTeX error, that \\href and \\htmlId
    make no link and no id (KaTeX's trust is off), and that the page still runs code."""
    console = Console(page)
    cells = open_worksheet(page, web)
    cells.nth(0).get_by_role("combobox", name="Cell type (cell 1)").select_option("markdown")
    code_box(cells.nth(0)).fill(MARKDOWN)
    code_box(cells.nth(0)).press("Shift+Enter")
    md = cells.nth(0).locator(".cellbus-markdown")
    expect(md.locator(".katex-display")).to_have_count(2)
    expect(md.locator(".katex")).to_have_count(7)  # 5 inline, 2 display
    expect(md.locator(".katex annotation")).to_have_text(
        ["x^2_{i}", r"\alpha", r"\int_0^1 f(x)\,dx", "a_1 * b_1",
         r"\href{javascript:window.__xss=1}{x}", r"\htmlId{own}{y}", "z"])
    expect(md.locator("em")).to_have_count(0)  # `*` and `_` in math are not Markdown
    expect(md.locator("p code")).to_have_text("echo $HOME")
    expect(md.locator("pre code")).to_have_text(["cp $A $B\n", "x = $a$ + $b$\n"])
    expect(md.locator("p").last).to_contain_text("Escaped: $5 and ")
    expect(md.locator("p").last.locator(".katex annotation")).to_have_text("z")
    expect(md.locator("p").nth(3)).to_have_text("See [note] and (aside), as in JupyterLab.")
    expect(md.locator("p").nth(4)).to_have_text("Run echo $HOME and it costs $5 and $6.")
    error = md.locator(".katex-error")
    expect(error).to_have_text(r"\frac{1")
    assert error.evaluate("e => getComputedStyle(e).color") != md.evaluate(
        "e => getComputedStyle(e).color")
    expect(md.locator("p").nth(5)).to_contain_text("and on.")
    assert md.locator("a, [href], #own").count() == 0
    assert page.evaluate("window.__xss") is None
    run(cells.nth(1), "print('still working')")
    expect(cells.nth(1).locator(".cellbus-output")).to_have_text("still working")
    assert console.settled(page) == []


LATEX_OUTPUT = r"""from IPython.display import Latex, Markdown, Math
display(Math(r'\frac{a}{b}'))
display(Latex(r'$$\sqrt{2}$$'))
display(Markdown('Markdown output: $y_1$, [a link](https://example.com/?q=$a$&r=$b$)'))
class Bad:
    def _repr_latex_(self):
        return r'$\frac{1$'
    def __repr__(self):
        return 'plain fallback'
display(Bad())"""


def test_latex_output_renders_and_falls_back_to_plain(page: Any, web: Any) -> None:
    """Tests that text/latex output (IPython's Math, and Latex with its `$$`) and math in
    text/markdown output render with KaTeX, that a link's URL keeps its `$`, and that
    LaTeX KaTeX cannot parse shows the object's text/plain repr."""
    console = Console(page)
    cell = open_worksheet(page, web).nth(0)
    run(cell, LATEX_OUTPUT)
    expect(cell).to_have_attribute("data-status", "done")
    out = cell.locator(".cellbus-output")
    expect(out.locator(".katex annotation")).to_have_text(
        [r"\displaystyle \frac{a}{b}", r"\sqrt{2}", "y_1"])  # Math's own \displaystyle
    expect(out.locator(".katex-display")).to_have_count(1)  # Latex's $$ (Math: inline $)
    expect(out.locator(".katex-error")).to_have_count(0)
    expect(out).to_contain_text("plain fallback")
    # `$` in a link's URL is not math there: the URL keeps it (percent-encoded, as marked does)
    expect(out.locator("a")).to_have_attribute("href", "https://example.com/?q=%24a%24&r=%24b%24")
    assert console.settled(page) == []


#: Markdown output whose links are made of "java", a mark of no formula and "script:": as a
#: percent-encoded mark in a Markdown link and as character references in raw HTML (an
#: image map's area, which opens in the page itself), with one formula so that marks are put.
PLANTED_MARKS = r"""from IPython.display import Markdown
gif = 'data:image/gif;base64,R0lGODlhAQABAIAAAP///wAAACwAAAAAAQABAAACAkQBADs='
display(Markdown('Math $x$, [md link](java%EE%80%809%EE%80%81script:window.__xss=1) '
                 f'<img id="map" src="{gif}" width="80" height="80" usemap="#m">'
                 '<map name="m"><area shape="rect" coords="0,0,80,80" '
                 'href="java&#xE000;7&#xE001;script:window.__xss=2"></map>'))"""


def test_a_planted_math_mark_makes_no_script_link(page: Any, web: Any) -> None:
    """Tests that Markdown output (what a shared link's code shows another user who runs
    it) cannot hide a javascript: URL from DOMPurify behind a mark of math it never had:
    the links keep the mark, open in a new tab (an image map's area too), and clicking
    them runs nothing in the page (before, putMath took the mark out after DOMPurify, the
    hrefs were javascript:window.__xss=..., and a click on the image set window.__xss to 2;
    with the mark kept, the area's click took the worksheet page away)."""
    cell = open_worksheet(page, web).nth(0)
    run(cell, PLANTED_MARKS)
    expect(cell).to_have_attribute("data-status", "done")
    md = cell.locator(".cellbus-output .cellbus-md")
    expect(md.locator(".katex annotation")).to_have_text("x")
    hrefs = md.locator("[href]").evaluate_all("ns => ns.map((n) => n.getAttribute('href'))")
    assert len(hrefs) == 2 and not any(h.lower().startswith("javascript") for h in hrefs), hrefs
    url = page.url
    md.locator("#map").click()
    md.locator("a").click()
    expect(md.locator(".katex annotation")).to_have_text("x")  # still this page
    assert page.url == url and page.evaluate("window.__xss") is None
