"""Active output in real Chromium (issue 19, item 3): HTML a cell shows runs, sandboxed.

The audit's probe was a ``_repr_html_`` with ``<img src=x onerror=...>``: run in the
gateway's origin, it read another worksheet of the user through the API. Here the same kind
of probe (an ``onerror`` handler, which ran before too, and a ``<script>``) reports what it
can reach, from wherever it ran: the page itself before the fix, its sandboxed frame after.
It must run, and reach nothing of the user's: no cookie, no localStorage, no API answer
with their credentials, no host page. Plots drawn by script still work, also with a
library loaded from another server, and frames take their content's height.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from access_util import JSON, add_user, bearer, call, evaluate_body, other_site
from harness import Chain
from test_access import wait_done
from test_browser import browser, expect, open_page, page, run, web  # noqa: F401 (fixtures)

pytestmark = pytest.mark.timeout(120)

SECRET = "secret-of-alice-7f3a"
#: Reports, into an element ``#probe`` of the document it runs in, what it can reach.
PROBE = """
<div id="probe">waiting</div>
<img src="x-missing" onerror="(async (gw) => {
  const r = {ran: true};
  const tries = {
    cookie: () => document.cookie,
    storage: () => JSON.stringify(Object.entries(localStorage)),
    host: () => window.parent.document.title,
    top: () => window.top.document.body.innerHTML.length,
    api: async () => {
      const answer = await fetch(gw + 'home/alice/other/1/update', {credentials: 'include'});
      return answer.status + ' ' + await answer.text();
    },
  };
  for (const [name, go] of Object.entries(tries)) {
    try { r[name] = String(await go()); } catch (e) { r[name] = 'refused: ' + e.name; }
  }
  const probe = document.getElementById('probe');
  probe.textContent = JSON.stringify(r);
  probe.dataset.done = '1';
})('GATEWAY')">
<canvas id="plot" width="120" height="60"></canvas>
<script>
  const ctx = document.getElementById("plot").getContext("2d");
  ctx.fillStyle = "rgb(200, 0, 0)";
  ctx.fillRect(0, 0, 120, 60);
  document.getElementById("plot").dataset.drawn = "yes";
</script>
<div style="height: 321px">tall</div>
"""


def show_html(html: str) -> str:
    """A cell's code that displays ``html`` as HTML output."""
    return ("class Html:\n"
            "    def _repr_html_(self):\n"
            f"        return {html!r}\n"
            "display(Html())\n")


def probe_result(page: Any, timeout: float = 20) -> tuple[Any, dict[str, str]]:
    """The frame the probe ran in (the page's own main frame, if it was not sandboxed) and
    what it reported, once it has."""
    deadline = time.monotonic() + timeout
    while True:
        for frame in page.frames:
            text = frame.evaluate("() => { const p = document.getElementById('probe');"
                                  " return p && p.dataset.done ? p.textContent : null; }")
            if text:
                return frame, json.loads(text)
        assert time.monotonic() < deadline, "the probe in the output never ran"
        page.wait_for_timeout(50)  # a poll of every frame, bounded by the deadline


def test_html_output_runs_sandboxed(page: Any, chain: Chain) -> None:
    """--auth token, alice signed in, with another worksheet holding a secret and code saved
    in localStorage: her cell's HTML output runs its script (the probe reports, the canvas
    is drawn), in a sandboxed frame of the cell, and reaches no cookie, no localStorage, no
    API answer and no host page. The frame is as tall as its content."""
    token = add_user(chain, "alice")
    chain.start_broker()
    chain.start_device()
    chain.start_gateway("--auth", "token")
    r = call(chain.port, "POST", "/home/alice/other/1/evaluate",
             evaluate_body(f"print({SECRET!r})"), {**JSON, **bearer(token)})
    assert r.status == 202, r.body
    assert SECRET in json.dumps(wait_done(chain, "alice/other/1", token))
    page.goto(chain.url(f"/?ws=probe&token={token}"))  # typed: signed in
    cell = page.locator(".cellbus-cell").nth(0)
    page.evaluate(f"localStorage.setItem('cellbus:code:alice/other', {json.dumps([SECRET])!r})")
    run(cell, show_html(PROBE.replace("GATEWAY", chain.url("/"))))
    expect(cell).to_have_attribute("data-status", "done")
    frame, seen = probe_result(page)
    assert seen.pop("ran") is True
    assert frame != page.main_frame, \
        f"the output ran in the page's origin and saw {({k: v[:200] for k, v in seen.items()})}"
    assert token not in seen["cookie"] and seen["cookie"].startswith("refused"), seen
    assert SECRET not in seen["storage"] and seen["storage"].startswith("refused"), seen
    assert seen["host"].startswith("refused") and seen["top"].startswith("refused"), seen
    assert SECRET not in seen["api"] and not seen["api"].startswith("200"), seen
    element = frame.frame_element()
    assert element.get_attribute("sandbox") == "allow-scripts"
    assert element.evaluate("e => e.closest('.cellbus-output') !== null")
    expect(frame.locator("#plot")).to_have_attribute("data-drawn", "yes")  # script ran
    content = frame.evaluate("document.documentElement.getBoundingClientRect().height")
    assert content > 321
    page.wait_for_function("([e, h]) => Math.abs(e.getBoundingClientRect().height - h) <= 1",
                           arg=[element, content])


GROWING = """<div id="box" style="height: 100px">box</div>
<script>window.addEventListener("message", (e) => {
  if (e.data === "grow") document.getElementById("box").style.height = "400px";
});</script>"""


def test_frames_follow_their_content_and_only_theirs(page: Any, web: Chain) -> None:
    """A frame whose content grows grows with it; a height message from anything but that
    frame (the page itself, or another frame) resizes nothing; a frame's own claim is
    bounded."""
    page.goto(web.url("/?ws=frames"))
    cells = page.locator(".cellbus-cell")
    run(cells.nth(0), show_html(GROWING))
    run(cells.nth(1), show_html("<p>liar</p><script>setInterval(() => parent.postMessage("
                                "{type: 'cellbus-frame-height', height: 1e9}, '*'), 50)"
                                "</script>"))  # again and again: the last word is its own
    first = cells.nth(0).locator("iframe.cellbus-frame")
    liar = cells.nth(1).locator("iframe.cellbus-frame")
    expect(first).to_have_count(1)
    expect(liar).to_have_count(1)

    def height(frame: Any) -> float:
        return float(frame.evaluate("e => e.getBoundingClientRect().height"))

    page.wait_for_function("e => Math.abs(e.getBoundingClientRect().height - 102) <= 1",
                           arg=first.element_handle())
    page.wait_for_function("e => e.getBoundingClientRect().height === 20000",
                           arg=liar.element_handle())  # its claim, bounded
    page.evaluate("""() => new Promise((resolve) => {  // forged: from the page itself
        window.addEventListener("message", (e) => { if (e.data === "after") resolve(); });
        window.postMessage({type: "cellbus-frame-height", height: 5}, "*");
        window.postMessage("after", "*");  // handled after the forged one: in order
    })""")
    assert (height(first), height(liar)) == (pytest.approx(102, abs=1), 20000)
    first.evaluate("e => e.contentWindow.postMessage('grow', '*')")
    page.wait_for_function("e => Math.abs(e.getBoundingClientRect().height - 402) <= 1",
                           arg=first.element_handle())
    assert height(first) == pytest.approx(402, abs=1)


INTERACT = ("@interact\n"
            "def f(n=slider(1, 9, step=1)):\n"
            "    display(Html(n))\n")
INTERACT_HTML = ("class Html:\n"
                 "    def __init__(self, n):\n"
                 "        self.n = n\n"
                 "    def _repr_html_(self):\n"
                 "        return ('<b id=\"n\">%d</b><script>document.getElementById(\"n\")'\n"
                 "                '.dataset.ran = \"yes\"</script>' % self.n)\n")


def test_interact_html_output_is_sandboxed(page: Any, web: Chain) -> None:
    """An interact's HTML output is a sandboxed frame too, and a new run replaces it."""
    page.goto(web.url("/?ws=interact-frames"))
    cell = page.locator(".cellbus-cell").nth(0)
    run(cell, INTERACT_HTML + INTERACT)
    box = cell.locator(".cellbus-interact")
    frame = box.locator(".cellbus-interact-output iframe.cellbus-frame")
    expect(frame).to_have_attribute("sandbox", "allow-scripts")
    inside = box.frame_locator(".cellbus-interact-output iframe.cellbus-frame")
    expect(inside.locator("#n")).to_have_text("1")
    expect(inside.locator("#n")).to_have_attribute("data-ran", "yes")
    box.get_by_role("slider", name="n").fill("4")
    expect(inside.locator("#n")).to_have_text("4")
    expect(frame).to_have_count(1)


def test_embed_example_html_output_is_sandboxed(page: Any, web: Chain) -> None:
    """/embed-example's cells show HTML output in sandboxed frames as well."""
    page.goto(web.url("/embed-example"))
    cell = page.locator(".cellbus-cell").nth(1)
    run(cell, show_html('<p id="p">p</p><script>let seen;'
                        'try { seen = typeof window.parent.cellbus; } catch (e) { seen = e.name; }'
                        'document.getElementById("p").textContent = seen;</script>'))
    expect(cell.locator("iframe.cellbus-frame")).to_have_attribute("sandbox", "allow-scripts")
    expect(cell.frame_locator("iframe.cellbus-frame").locator("#p")).to_have_text("SecurityError")


PLOTLIB = "window.plotlib = {draw: (el) => { el.dataset.plotted = 'by plotlib'; }};"
EMBED = """<!doctype html>
<html><body>
<div id="cell"></div>
<script src="{gw}static/cellbus.js"></script>
<script>
  cellbus.makeCell(document.getElementById("cell"),
                   {{code: {code}, autoeval: true, worksheet: "embedded"}});
</script>
</body></html>
"""


def test_foreign_page_cell_plots_in_a_sandboxed_frame(page: Any, chain: Chain) -> None:
    """makeCell on a page of another (allowed) origin: the HTML output loads a plotting
    library from yet another server and draws with it, inside a sandboxed frame that cannot
    touch the embedding page."""
    pages: dict[str, str] = {"/plotlib.js": PLOTLIB}
    with other_site(pages) as port:
        site = f"http://127.0.0.1:{port}"
        chain.start_broker()
        chain.start_device()
        chain.start_gateway("--allow-origin", site)
        html = (f'<div id="plot">plot</div><script src="{site}/plotlib.js"></script>'
                "<script>plotlib.draw(document.getElementById('plot'));"
                "try { parent.document.body.textContent = 'defaced'; }"
                " catch (e) { document.getElementById('plot').dataset.host = e.name; }"
                "</script>")
        pages["/embed.html"] = EMBED.format(gw=chain.url("/"),
                                            code=json.dumps(show_html(html)).replace("</", "<\\/"))
        page.goto(f"{site}/embed.html")
        inside = page.frame_locator("#cell iframe.cellbus-frame")
        expect(inside.locator("#plot")).to_have_attribute("data-plotted", "by plotlib")
        expect(inside.locator("#plot")).to_have_attribute("data-host", "SecurityError")
        expect(page.locator("#cell .cellbus-evaluate")).to_be_visible()  # not defaced
