"""Links in output: an OSC 8 hyperlink in ANSI text (stdout, stderr, a traceback) opens in a
new tab without an opener or referrer, and only for http(s) and mailto URLs; javascript:
and data: URLs become no link anywhere in output (ANSI text, Markdown, HTML output, which
runs in its sandboxed frame)."""

from __future__ import annotations

from typing import Any

from test_browser import browser, code_box, expect, open_worksheet, page, run, web  # noqa: F401


def osc8(url: str, text: str) -> str:
    """Python source for an OSC 8 hyperlink (ESC ] 8 ; ; URL ST TEXT ESC ] 8 ; ; ST)."""
    return f"'\\x1b]8;;{url}\\x1b\\\\{text}\\x1b]8;;\\x1b\\\\'"


CODE = "\n".join([
    "import sys",
    f"print('\\x1b[31mred\\x1b[0m', {osc8('https://example.org/a', 'web')}, "
    f"{osc8('mailto:x@example.org', 'mail')})",
    f"print({osc8('javascript:window.__xss=1', 'js')}, "
    f"{osc8('data:text/html,<script>1</script>', 'data')}, "
    f"{osc8('JavaScript:window.__xss=2', 'JS')}, {osc8('constructor:x', 'proto')})",
    f"print({osc8('http://example.org/b', 'err')}, file=sys.stderr)",
    f"raise ValueError({osc8('https://example.org/tb', 'tb')})",
])


def test_ansi_links_open_in_a_new_tab_and_only_for_web_and_mail(page: Any, web: Any) -> None:
    """Tests that OSC 8 links in stdout, stderr and a traceback are <a target=_blank
    rel="noopener noreferrer">, that a javascript:, data: or unknown-scheme link shows its
    text only, and that nothing ran."""
    cell = open_worksheet(page, web).nth(0)
    run(cell, CODE)
    expect(cell).to_have_attribute("data-status", "error")
    out = cell.locator(".cellbus-output")
    expect(out.locator(".cellbus-error a")).to_have_text("tb")
    expect(out.locator(".cellbus-stdout span.ansi-red-fg")).to_have_text("red")
    links = out.locator("a")
    expect(links).to_have_text(["web", "mail", "err", "tb"])
    for i in range(links.count()):
        link = links.nth(i)
        assert link.get_attribute("target") == "_blank"
        assert set(link.get_attribute("rel").split()) == {"noopener", "noreferrer"}
    assert [links.nth(i).get_attribute("href") for i in range(4)] == [
        "https://example.org/a", "mailto:x@example.org", "http://example.org/b",
        "https://example.org/tb"]
    expect(out.locator(".cellbus-stdout")).to_contain_text("js data JS proto")
    assert page.evaluate("window.__xss") is None


def test_no_javascript_or_data_link_in_any_output(page: Any, web: Any) -> None:
    """Tests that HTML output with javascript: and data: links stays in its sandboxed frame
    (no link of it in the page), and that a Markdown cell's such links are dropped."""
    cells = open_worksheet(page, web)
    run(cells.nth(0), "class Links:\n"
        "    def _repr_html_(self):\n"
        "        return '<a href=\"javascript:parent.__xss=1\">h</a><a href=\"data:,x\">d</a>'\n"
        "class Md:\n"
        "    def _repr_markdown_(self):\n"
        "        return '[md](javascript:window.__xss=4)'\n"
        "class Svg:\n"
        "    def _repr_svg_(self):\n"
        "        return ('<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"9\" height=\"9\">'\n"
        "                '<a href=\"javascript:window.__xss=5\"><rect width=\"9\" height=\"9\"/>'\n"
        "                '</a></svg>')\n"
        "display(Links()); display(Md()); display(Svg())")
    out = cells.nth(0).locator(".cellbus-output")
    expect(out.locator("iframe.cellbus-html")).to_have_count(1)
    expect(out.locator("[data-mime='text/markdown']")).to_have_text(
        "[md](javascript:window.__xss=4)")  # Markdown output is shown as its text
    expect(out.locator("img.cellbus-image")).to_have_count(1)  # SVG: an <img>, no links
    out.locator("img.cellbus-image").click()
    assert cells.nth(0).locator("iframe.cellbus-html").get_attribute("sandbox") == "allow-scripts"
    cells.nth(1).get_by_role("combobox", name="Cell type (cell 2)").select_option("markdown")
    code_box(cells.nth(1)).fill("[js](javascript:window.__xss=3) [d](data:text/html,x) "
                                "[ok](https://example.org/m)")
    code_box(cells.nth(1)).press("Shift+Enter")
    markdown = cells.nth(1).locator(".cellbus-markdown")
    expect(markdown.locator("a[href]")).to_have_count(1)
    expect(markdown.locator("a[href]")).to_have_attribute("href", "https://example.org/m")
    assert page.locator("a[href^='javascript' i], a[href^='data' i]").count() == 0
    assert page.evaluate("window.__xss") is None
