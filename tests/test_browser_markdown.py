"""Markdown cells on the worksheet page: made with the cell-type selector or Escape then M,
rendered in place by Shift+Enter (marked, then DOMPurify), edited again by double-click;
kept in the store as the worksheet's layout (broker/layouts.py), so a reload and another
browser show them in their place among the code cells; never sent to a device; and inert:
raw HTML carrying script in every usual way runs none of it."""

from __future__ import annotations

import json
from typing import Any

from access_util import JSON, add_user, bearer, call, evaluate_body
from harness import Chain, until
from test_browser import (browser, code_box, code_of, expect, open_page,  # noqa: F401
                          open_worksheet, page, run, web)

#: Raw HTML in Markdown that would set window.__xss if anything of it ran.
PAYLOADS = [
    "<script>window.__xss = 'script'</script>",
    '<img src="nothere.png" onerror="window.__xss = \'img onerror\'">',
    '<iframe srcdoc="<script>parent.__xss = \'iframe srcdoc\'</script>"></iframe>',
    "<svg><script>window.__xss = 'svg script'</script></svg>",
    '<svg><image href="nothere.png" onerror="window.__xss = \'svg onerror\'"/></svg>',
    '<details open ontoggle="window.__xss = \'ontoggle\'"><summary>s</summary>x</details>',
    '<object data="javascript:window.__xss = \'object\'"></object>',
    '<embed src="javascript:window.__xss = \'embed\'">',
    '<form action="javascript:window.__xss = \'form\'"><button id="xss-submit">go</button></form>',
    '<input autofocus onfocus="window.__xss = \'onfocus\'">',
    '<a id="xss-link" href="javascript:window.__xss = \'link\'">raw link</a>',
    "[md link](javascript:window.__xss='md%20link')",
    '<math><mtext><table><mglyph><style><img src=x onerror="window.__xss = \'mxss\'">'
    "</style></mglyph></table></mtext></math>",
    '<video><source onerror="window.__xss = \'source\'"></video>',
    "<style>@import url(nothere.css);</style>",
]
#: Anything active left in a rendered cell (by the sanitizer's settings).
ACTIVE = ("script, iframe, frame, object, embed, svg, math, form, input, button, style, "
          "link, meta, base, [href^='javascript' i], [src^='javascript' i], "
          "[action], [formaction], [style]")


def rendered(cell: Any) -> Any:
    return cell.locator(".cellbus-markdown")


def test_markdown_cells_render_and_stay_in_place(browser: Any, page: Any,  # noqa: F811
                                                 web: Chain) -> None:
    """Tests that a cell made Markdown by its type selector, and one by Escape then M,
    render on Shift+Enter and Ctrl+Enter, that moving one keeps it rendered, that a reload
    and another browser show them rendered in the same order among the code cells, that
    double-click edits one again and Escape then Y makes it code that runs, and that no
    Markdown reached the broker as work (its cell has no request)."""
    cells = open_worksheet(page, web)
    run(cells.nth(0), "print('code first')")
    expect(cells.nth(0).locator(".cellbus-output")).to_have_text("code first")
    cells.nth(1).get_by_role("combobox", name="Cell type (cell 2)").select_option("markdown")
    code_box(cells.nth(1)).fill("# Notes\n\nSome *words* and `print(1)`.")
    code_box(cells.nth(1)).press("Shift+Enter")
    expect(rendered(cells.nth(1)).locator("h1")).to_have_text("Notes")
    expect(rendered(cells.nth(1)).locator("em")).to_have_text("words")
    expect(code_box(cells.nth(2))).to_be_focused()  # Shift+Enter moved on, as for code
    code_box(cells.nth(2)).press("Escape")
    code_box(cells.nth(2)).press("m")
    expect(cells.nth(2)).to_have_attribute("data-type", "markdown")
    expect(code_of(cells.nth(2))).to_have_value("")  # the M was not typed
    code_box(cells.nth(2)).fill("- one\n- two")
    code_box(cells.nth(2)).press("Control+Enter")
    expect(rendered(cells.nth(2)).locator("li")).to_have_text(["one", "two"])
    page.get_by_role("button", name="Move up (cell 2)").click()  # Markdown first
    expect(rendered(cells.nth(0)).locator("h1")).to_have_text("Notes")
    link = page.url

    def check(p: Any) -> None:
        cells = p.locator(".cellbus-cell")
        expect(cells).to_have_count(3)
        expect(rendered(cells.nth(0)).locator("h1")).to_have_text("Notes")
        expect(cells.nth(0).locator(".CodeMirror")).to_be_hidden()
        expect(cells.nth(1).locator(".cellbus-output")).to_have_text("code first")
        expect(code_of(cells.nth(1))).to_have_value("print('code first')")
        expect(rendered(cells.nth(2)).locator("li")).to_have_text(["one", "two"])
        expect(p.get_by_role("combobox", name="Cell type (cell 2)")).to_have_value("markdown")
        expect(p.get_by_role("combobox", name="Cell type (cell 1)")).to_have_value("code")

    page.reload()
    check(page)
    for other in open_page(browser):  # another browser: nothing of this one's storage
        other.goto(link)
        check(other)
    cells = page.locator(".cellbus-cell")
    rendered(cells.nth(2)).dblclick()
    expect(code_box(cells.nth(2))).to_be_focused()
    expect(code_of(cells.nth(2))).to_have_value("- one\n- two")
    code_box(cells.nth(2)).press("Control+a")  # CodeMirror types at the cursor: replace all
    code_box(cells.nth(2)).fill("print('now code')")
    code_box(cells.nth(2)).press("Escape")
    code_box(cells.nth(2)).press("y")
    expect(cells.nth(2)).to_have_attribute("data-type", "code")
    code_box(cells.nth(2)).press("Control+Enter")
    expect(cells.nth(2).locator(".cellbus-output")).to_have_text("now code")
    ws = link.split("ws=")[1]
    assert call(web.port, "GET", f"/home/guest/{ws}/2/update").status == 404  # never ran


def test_a_stale_tab_does_not_save_over_another_tabs_cells(browser: Any, page: Any,  # noqa: F811
                                                             web: Chain) -> None:
    """Tests that a page which loaded a worksheet before another one added a Markdown cell
    to it saves nothing over that cell when typed in: it says so, the store keeps the other
    page's cells, and a reload shows them."""
    open_worksheet(page, web)  # the stale tab, loaded first
    ws = page.url.split("ws=")[1]
    path = f"/home/guest/{ws}/layout"
    for other in open_page(browser):
        other.goto(page.url)
        cells = other.locator(".cellbus-cell")
        cells.nth(1).get_by_role("combobox", name="Cell type (cell 2)").select_option(
            "markdown")
        code_box(cells.nth(1)).fill("# From the other tab")
        code_box(cells.nth(1)).press("Shift+Enter")
        expect(rendered(cells.nth(1)).locator("h1")).to_have_text("From the other tab")
        until(lambda: "# From the other tab" in json.dumps(call(web.port, "GET", path).body),
              "the other tab's layout stored")
    code_box(page.locator(".cellbus-cell").nth(0)).fill("x = 1")  # saved 0.5 s later
    expect(page.locator("#layout-note")).to_contain_text("changed in another tab")
    stored = call(web.port, "GET", path).body["cells"]
    assert [c["code"] for c in stored][:2] == ["", "# From the other tab"], stored
    page.reload()
    expect(rendered(page.locator(".cellbus-cell").nth(1)).locator("h1")).to_have_text(
        "From the other tab")


def test_markdown_runs_no_script(page: Any, web: Chain) -> None:  # noqa: F811
    """Tests that raw HTML in a Markdown cell, carrying script in each way of PAYLOADS,
    sets no global when rendered, when its images fail to load, and when its links and
    buttons are clicked, and that nothing active is left in the rendered cell (while the
    Markdown around it still renders)."""
    page.add_init_script("window.__imgErrors = 0; document.addEventListener('error', "
                         "(e) => { if (e.target.tagName === 'IMG') window.__imgErrors++; }, true)")
    cells = open_worksheet(page, web)
    cell = cells.nth(0)
    cell.get_by_role("combobox", name="Cell type (cell 1)").select_option("markdown")
    code_box(cell).fill("# Safe\n\n" + "\n\n".join(PAYLOADS) + "\n\nthe end")
    code_box(cell).press("Control+Enter")
    out = rendered(cell)
    expect(out.locator("h1")).to_have_text("Safe")
    expect(out).to_contain_text("the end")
    images = out.locator("img").count()
    assert images >= 1  # the image of the onerror payload stays, without its handler
    page.wait_for_function(f"window.__imgErrors >= {images}")
    assert page.evaluate("window.__xss") is None
    url = page.url
    for target in ("#xss-link", "#xss-submit", "a"):
        for node in out.locator(target).all():
            node.click()
    expect(out.locator("h1")).to_have_text("Safe")  # still this page: nothing navigated
    assert page.url == url and page.evaluate("window.__xss") is None
    assert len(page.context.pages) == 1  # and no link opened a window of its own
    active = out.locator(ACTIVE)
    assert active.count() == 0, [active.nth(i).evaluate("n => n.outerHTML")
                                 for i in range(active.count())]
    assert page.evaluate("[...document.querySelectorAll('.cellbus-markdown *')].flatMap("
                         "(n) => [...n.attributes].map((a) => a.name))"
                         ".filter((a) => a.startsWith('on'))") == []


def test_layout_api_is_the_users_own(chain: Chain) -> None:
    """Tests GET and POST /home/USER/WORKSHEET/layout: null before any save, the cells as
    saved (only their id, type and code, outputs_hidden when true and outputs_cleared when
    given) and the ids of those
    with runs, 400 for a layout of the wrong shape, and 404 for another user's worksheet
    under --auth token."""
    ann, bob = add_user(chain, "ann"), add_user(chain, "bob")
    chain.start_broker()
    chain.start_gateway("--auth", "token")
    path = "/home/ann/notes/layout"
    assert call(chain.port, "GET", path, headers=bearer(ann)).body == {
        "cells": None, "revision": None, "ran": []}
    cells = [{"id": "1", "type": "markdown", "code": "# hi", "extra": 1},
             {"id": "2", "type": "code", "code": "print(1)", "outputs_hidden": True,
              "outputs_cleared": "a-run-id"},
             {"id": "3", "type": "code", "code": "", "outputs_hidden": False}]
    saved = call(chain.port, "POST", path, json.dumps({"cells": cells}),
                 {**JSON, **bearer(ann)})
    assert saved.status == 200 and saved.body["cells"] == 3, saved.body
    cells[0].pop("extra")
    cells[2].pop("outputs_hidden")  # kept only when true
    run = call(chain.port, "POST", "/home/ann/notes/2/evaluate", evaluate_body("print(1)"),
               {**JSON, **bearer(ann)})
    assert run.status == 202, run.body  # stored, so a run the read names (no device runs it)
    assert call(chain.port, "GET", path, headers=bearer(ann)).body == {
        "cells": cells, "revision": saved.body["revision"], "ran": ["2"]}
    bad = call(chain.port, "POST", path, json.dumps({"cells": [{"id": "1", "type": "html"}]}),
               {**JSON, **bearer(ann)})
    assert bad.status == 400 and "type" in bad.body["error"], bad.body
    hidden = [{"id": "1", "outputs_hidden": 1}]
    bad = call(chain.port, "POST", path, json.dumps({"cells": hidden}), {**JSON, **bearer(ann)})
    assert bad.status == 400 and "outputs_hidden" in bad.body["error"], bad.body
    for cleared in (7, ""):  # the id of the run cleared, or absent
        body = json.dumps({"cells": [{"id": "1", "outputs_cleared": cleared}]})
        bad = call(chain.port, "POST", path, body, {**JSON, **bearer(ann)})
        assert bad.status == 400 and "outputs_cleared" in bad.body["error"], bad.body
    assert call(chain.port, "GET", path, headers=bearer(bob)).status == 404
    assert call(chain.port, "POST", path, json.dumps({"cells": []}),
                {**JSON, **bearer(bob)}).status == 404
    assert call(chain.port, "GET", path, headers=bearer(ann)).body["cells"] == cells


def test_a_save_over_cells_it_never_saw_is_refused(chain: Chain) -> None:
    """Tests that a save naming the revision its page loaded replaces the layout, and one
    naming an older revision (a stale tab) gets 409 and changes nothing, so it cannot drop
    cells another tab added; a save that names none replaces whatever is there."""
    chain.start_broker()
    chain.start_gateway()
    path = "/home/guest/shared/layout"

    def post(body: dict[str, Any]) -> Any:
        return call(chain.port, "POST", path, json.dumps(body), JSON)

    loaded = call(chain.port, "GET", path).body["revision"]  # both tabs loaded: no layout
    first = post({"cells": [{"id": "1", "type": "code", "code": "x = 1"}], "base": loaded})
    assert first.status == 200, first.body
    notes = [{"id": "1", "type": "code", "code": "x = 1"},
             {"id": "2", "type": "markdown", "code": "# Notes"}]
    second = post({"cells": notes, "base": first.body["revision"]})  # tab A adds Markdown
    assert second.status == 200 and second.body["revision"] != first.body["revision"]
    stale = post({"cells": [{"id": "1", "type": "code", "code": "x = 2"}],
                  "base": first.body["revision"]})  # tab B never saw it
    assert stale.status == 409 and "another tab" in stale.body["error"], stale.body
    assert post({"cells": [], "base": loaded}).status == 409  # nor deletes it
    assert call(chain.port, "GET", path).body == {"cells": notes, "ran": [],
                                                  "revision": second.body["revision"]}
    assert post({"cells": notes, "base": 5}).status == 400
    assert post({"cells": notes[:1]}).status == 200  # no base: the last save wins
