"""The browser client (gateway/static/cellbus.js) in real Chromium, against the whole chain.

Playwright drives Debian's Chromium (``/usr/bin/chromium``; ``bin/test`` installs it when it
can). Without it these tests are skipped, except in CI (``CI=true``), where they fail.
Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway import script
from module_chain import module_chain
from netturns import network_turn

CHROMIUM = os.environ.get("CELLBUS_CHROMIUM", "/usr/bin/chromium")
#: The flags this machine's closed network needs (no background connections to Google).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
WAIT = 20_000  # ms: the longest any single expectation waits
STALE = re.compile(r"\bcellbus-stale\b")
#: An 8x6 red PNG, for a file the cell's code writes.
PNG_B64 = ("iVBORw0KGgoAAAANSUhEUgAAAAgAAAAGCAIAAABxZ0isAAAAEklEQVR4nGP4z8CAFWEXpZMEADMoL9H"
           "swQX5AAAAAElFTkSuQmCC")


def unavailable(reason: str) -> None:
    """In CI a missing browser is a failure; elsewhere a skip that says what to install."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: browser tests must run)", pytrace=False)
    pytest.skip(f"{reason}; install it with `apt-get install chromium` as root, or run "
                "bin/test as root, which does")


def launch_chromium(*extra_args: str) -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (skips, or fails in CI, without)."""
    if not Path(CHROMIUM).exists():
        unavailable(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is missing (pip install -e '.[test]')")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS,
                                                                      *extra_args])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_chromium()


def open_page(browser: Any, **context_options: Any) -> Iterator[Any]:
    """A fresh page in a context of its own (storage, cookies); uncaught script errors
    fail the test."""
    with network_turn(exclusive=False):  # the multi-host bed changes nothing meanwhile
        yield from _open_page(browser, **context_options)


def _open_page(browser: Any, **context_options: Any) -> Iterator[Any]:
    context = browser.new_context(**context_options)
    context.set_default_timeout(WAIT)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # What the page could not load, to say with a script error: "cellbus is not defined" in a
    # whole run left unknown whether cellbus.js failed to load, and why.
    unloaded: list[str] = []
    page.on("requestfailed", lambda r: unloaded.append(f"{r.url}: {r.failure}"))
    page.on("response", lambda r: r.status >= 400 and unloaded.append(f"{r.url}: {r.status}"))
    yield page
    context.close()
    assert not errors, f"script errors on the page: {errors}; requests that failed: {unloaded}"


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    yield from open_page(browser, viewport={"width": 1000, "height": 800})


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
        ) -> Iterator[Any]:
    """A running chain for the module's tests, each on a worksheet (so a session) of its own
    (tests/module_chain.py); its node logs go to test-artifacts/browser-logs/ afterwards. A
    test that stops or restarts a node takes ``own_web``."""
    name = request.module.__name__
    yield from module_chain(tmp_path_factory, name, log=ARTIFACTS / "browser-logs" / f"{name}.log")


@pytest.fixture
def own_web(running_chain: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A running chain for this test alone; its node logs are kept in
    test-artifacts/browser-logs/ afterwards."""
    yield running_chain
    logs = ARTIFACTS / "browser-logs"
    logs.mkdir(parents=True, exist_ok=True)
    text = "\n\n".join(f"== {n.argv[1]} ==\n{n.log}" for n in running_chain.nodes)
    (logs / f"{request.node.name}.log").write_text(text)


def expect(locator: Any) -> Any:
    """Playwright's ``expect``, waiting up to :data:`WAIT` (the context's default timeout
    does not reach ``expect``, which waited 5 s: a loaded machine's margin)."""
    from playwright.sync_api import expect as pw_expect
    pw_expect.set_options(timeout=WAIT)
    return pw_expect(locator)


def open_worksheet(page: Any, chain: Any, **query: Any) -> Any:
    params = "&".join(f"{k}={v}" for k, v in {"ws": f"t-{uuid.uuid4().hex[:8]}", **query}.items())
    page.goto(chain.url(f"/?{params}"))
    cells = page.locator(".cellbus-cell")
    expect(cells).to_have_count(3)
    return cells


def code_box(cell: Any) -> Any:
    """Where a user types a cell's code: CodeMirror's input (the worksheet page loads it),
    or the cell's own textarea where CodeMirror is not loaded (the one visible textarea)."""
    return cell.locator("textarea:visible")


def code_of(cell: Any) -> Any:
    """The cell's own textarea, which holds its code with or without CodeMirror (to read
    its value: with CodeMirror it is hidden)."""
    return cell.locator("textarea.cellbus-input")


def run(cell: Any, code: str, key: str = "Control+Enter") -> None:
    code_box(cell).fill(code)
    code_box(cell).press(key)


def test_type_and_evaluate_with_indicator(page, web) -> None:
    """Shift+Enter evaluates: the indicator shows at once, output arrives, the indicator
    goes, and the focus moves to the next cell."""
    cells = open_worksheet(page, web)
    first = cells.nth(0)
    code_box(first).fill("import time\ntime.sleep(1)\nprint('hello', 6 * 7)")
    code_box(first).press("Shift+Enter")
    assert first.locator(".cellbus-working").is_visible()  # at once, before any answer
    expect(code_box(cells.nth(1))).to_be_focused()
    expect(first.locator(".cellbus-output")).to_have_text("hello 42")
    expect(first).to_have_attribute("data-status", "done")
    expect(first.locator(".cellbus-working")).to_be_hidden()
    expect(first.locator(".cellbus-status")).to_contain_text("done")


def test_output_streams_in_order(page, web) -> None:
    """The first line shows while the code still runs, before the last is printed."""
    cell = open_worksheet(page, web).nth(0)
    run(cell, "import time\nprint('first', flush=True)\ntime.sleep(2)\nprint('last')")
    out = cell.locator(".cellbus-output")
    expect(out).to_contain_text("first")
    assert "last" not in out.inner_text()
    expect(cell).to_have_attribute("data-status", "running")
    expect(out).to_have_text("first\nlast")
    expect(cell).to_have_attribute("data-status", "done")


def test_old_output_stays_stale_until_new_output(page, web) -> None:
    cell = open_worksheet(page, web).nth(0)
    run(cell, "print('old')")
    out = cell.locator(".cellbus-output")
    expect(out).to_have_text("old")
    run(cell, "import time\ntime.sleep(1)\nprint('new')")
    expect(out).to_have_class(STALE)
    assert out.inner_text().strip() == "old"
    expect(out).to_have_text("new")
    expect(out).not_to_have_class(STALE)


def test_rich_output_and_screenshot(page, web) -> None:
    """stderr apart from stdout, HTML, files as links (images among them inline), a result."""
    cell = open_worksheet(page, web).nth(0)
    run(cell, "import sys, base64\n"
              "print('to stdout')\n"
              "print('to stderr', file=sys.stderr)\n"
              "class Table:\n"
              "    def _repr_html_(self):\n"
              "        return ('<table><tr><td class=\"cell-html\">'\n"
              "                'html <b>bold</b></td></tr></table>')\n"
              "display(Table())\n"
              "open('notes.txt', 'w').write('some notes')\n"
              f"open('dot.png', 'wb').write(base64.b64decode('{PNG_B64}'))\n"
              "'<b>not html</b>'")
    expect(cell).to_have_attribute("data-status", "done")
    out = cell.locator(".cellbus-output")
    expect(out.locator(".cellbus-stdout")).to_have_text("to stdout")
    expect(out.locator(".cellbus-stderr")).to_have_text("to stderr")
    assert out.locator(".cellbus-stderr").evaluate("e => getComputedStyle(e).color") != \
        out.locator(".cellbus-stdout").evaluate("e => getComputedStyle(e).color")
    html = out.frame_locator("iframe.cellbus-html")  # sandboxed (tests/test_browser_output.py)
    expect(html.locator("td.cell-html b")).to_have_text("bold")
    expect(out.locator(".cellbus-result")).to_have_text("'<b>not html</b>'")  # text, escaped
    links = out.locator("a.cellbus-file-link")
    expect(links).to_have_count(2)
    png = out.locator(".cellbus-file img.cellbus-image")
    expect(png).to_have_count(1)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=png.element_handle())
    assert png.evaluate("img => img.naturalWidth") == 8
    text_href = out.locator("a.cellbus-file-link", has_text="notes.txt").get_attribute("href")
    status, body = web.http("GET", text_href)
    assert status == 200 and body == b"some notes"
    second = page.locator(".cellbus-cell").nth(1)
    run(second, "def f():\n    return 1 / 0\nf()")
    expect(second).to_have_attribute("data-status", "error")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "worksheet.png"), full_page=True)
    page.set_viewport_size({"width": 375, "height": 740})
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scroll
    page.screenshot(path=str(ARTIFACTS / "worksheet-phone.png"), full_page=True)


def test_error_with_traceback(page, web) -> None:
    cell = open_worksheet(page, web).nth(0)
    run(cell, "print('before')\ndef f():\n    return 1 / 0\nf()")
    error = cell.locator(".cellbus-output .cellbus-error")
    expect(error).to_contain_text("Traceback (most recent call last)")
    expect(error).to_contain_text("line 3, in f")
    expect(error).to_contain_text("ZeroDivisionError: division by zero")
    expect(cell.locator(".cellbus-stdout")).to_have_text("before")
    expect(cell).to_have_attribute("data-status", "error")
    expect(cell.locator(".cellbus-working")).to_be_hidden()


def test_cells_of_a_worksheet_share_state(page, web) -> None:
    """State carries from cell to cell; Shift+Enter on the last cell adds a new one."""
    cells = open_worksheet(page, web)
    run(cells.nth(0), "x = 41", key="Shift+Enter")
    expect(cells.nth(0)).to_have_attribute("data-status", "done")
    expect(cells.nth(0).locator(".cellbus-output")).to_be_empty()
    page.keyboard.type("print(x + 1)")
    page.keyboard.press("Shift+Enter")
    expect(cells.nth(1).locator(".cellbus-output")).to_have_text("42")
    run(cells.nth(2), "x * 2", key="Shift+Enter")
    expect(cells.nth(2).locator(".cellbus-output")).to_have_text("82")
    expect(cells).to_have_count(4)
    expect(code_box(cells.nth(3))).to_be_focused()


def test_no_output_notice_appears_then_clears(page, web) -> None:
    cell = open_worksheet(page, web, noOutputTimeout=500).nth(0)
    run(cell, "import time\ntime.sleep(2)\nprint('late')")
    notice = cell.locator(".cellbus-notice")
    expect(notice).to_be_visible(timeout=5000)
    expect(notice).to_contain_text("No output after 0.5 s")
    assert cell.locator(".cellbus-output").inner_text().strip() == ""
    expect(cell.locator(".cellbus-output")).to_have_text("late")
    expect(notice).to_be_hidden()


def test_stop_button_interrupts(page, web) -> None:
    cell = open_worksheet(page, web).nth(0)
    run(cell, "import time\nprint('started', flush=True)\ntime.sleep(30)")
    expect(cell.locator(".cellbus-output")).to_contain_text("started")
    cell.get_by_role("button", name="Stop").click()
    expect(cell.locator(".cellbus-error")).to_contain_text("KeyboardInterrupt")
    expect(cell).to_have_attribute("data-status", "error")
    expect(cell.get_by_role("button", name="Stop")).to_be_hidden()


def test_gateway_killed_mid_run_output_complete_once(page, own_web) -> None:
    """The gateway dies (SIGKILL) while output streams, and comes back on the same port: the
    page reconnects by itself, resumes from the last seq, and shows every line once."""
    chain = own_web
    cell = open_worksheet(page, chain).nth(0)
    run(cell, "import time\nfor i in range(20):\n    print(i, flush=True)\n    time.sleep(0.25)")
    out = cell.locator(".cellbus-output")
    expect(out).to_contain_text("2")
    chain.gateway.stop(signal.SIGKILL)
    expect(cell.locator(".cellbus-status")).to_contain_text("reconnecting")
    chain.start_gateway("--log-requests")  # its log names every request, polls included
    expect(cell).to_have_attribute("data-status", "done")
    expect(out).to_have_text("\n".join(str(i) for i in range(20)))
    expect(out.locator(".cellbus-block")).to_have_count(1)
    chain.gateway.wait_for_log(r"101 GET /ws")  # the page's new socket, logged as a poll is
    assert "/update" not in chain.gateway.log  # all of it came over the new socket


def test_long_polling_when_websockets_fail(page, web) -> None:
    """No WebSocket gets through (each is closed at once): evaluate and update over HTTP."""
    page.route_web_socket("**/ws", lambda ws: ws.close())
    cells = open_worksheet(page, web)
    run(cells.nth(0), "import time\nprint('first', flush=True)\ntime.sleep(1.5)\nprint('last')")
    out = cells.nth(0).locator(".cellbus-output")
    expect(out).to_contain_text("first")
    assert "last" not in out.inner_text()
    expect(out).to_have_text("first\nlast")
    run(cells.nth(1), "1 / 0")
    expect(cells.nth(1).locator(".cellbus-error")).to_contain_text("ZeroDivisionError")
    expect(cells.nth(1)).to_have_attribute("data-status", "error")


def test_embed_example_page(page, web) -> None:
    """Two single cells made with makeCell on a plain page; one evaluates when the page
    opens, the other draws a plot."""
    page.set_viewport_size({"width": 375, "height": 740})
    page.goto(web.url("/embed-example"))
    cells = page.locator(".cellbus-cell")
    expect(cells).to_have_count(2)
    expect(cells.nth(0).locator(".cellbus-output")).to_contain_text("3 squared is 9")
    cells.nth(1).get_by_role("button", name="Plot").click()
    img = cells.nth(1).locator(".cellbus-output img.cellbus-image")
    expect(img).to_be_visible(timeout=30_000)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=img.element_handle())
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "embed-example-phone.png"), full_page=True)


# -- the browser's fold gives the blocks protocol/fold.py gives -----------------------------

STREAMS = Path(__file__).parent / "data" / "streams"
FILE_MIME = "application/x-cellbus-file+json"
BUNDLES: list[Any] = [
    {"text/plain": "x"}, {"text/html": "<b>h</b>", "text/plain": "h"},
    {"image/png": "iVBOR", "text/plain": "fig"}, {"image/svg+xml": "<svg/>"},
    {"text/markdown": "# m", "text/plain": "m"}, {"text/latex": "$x$"}, {},
    {"text/latex": "$y$", "text/plain": "y"},
    {FILE_MIME: {"name": "a.txt", "size": 3, "mime": "text/plain"}, "text/plain": "a.txt"},
    {FILE_MIME: {"name": "big", "size": 9, "mime": "x", "too_large": True}},
    {FILE_MIME: {"name": "bad", "size": True, "mime": "x"}}, "not a dict",
]


def random_message(rng: random.Random, seq: int) -> dict[str, Any]:
    kind = rng.choice(["stream", "stream", "stream", "display_data", "execute_result", "error",
                       "clear_output", "interact_start", "interact_end", "execute_reply",
                       "status", "input_request", "bogus"])
    content: Any = {
        "stream": lambda: {"name": rng.choice(["stdout", "stderr", "stdin"]),
                           "text": rng.choice(["a\n", "b", "", "line\n"])},
        "display_data": lambda: {"data": rng.choice(BUNDLES)},
        "execute_result": lambda: {"data": rng.choice(BUNDLES)},
        "error": lambda: {"ename": "E", "evalue": "v",
                          "traceback": rng.choice([["tb\n", "E: v\n"], [1], []])},
        "clear_output": lambda: {"wait": rng.choice([True, False, "no", None])},
        "interact_start": lambda: {"interact_id": f"i{seq}", "controls": {"n": {"type": "x"}}},
        "interact_end": lambda: {},
        "execute_reply": lambda: {"status": "ok"},
        "status": lambda: {"execution_state": rng.choice(["idle", "busy"])},
        "input_request": lambda: {"prompt": rng.choice(["Name? ", "", 5]),
                                  "password": rng.choice([True, False, "no"])},
        "bogus": lambda: rng.choice([None, [], {"x": 1}]),
    }[kind]()
    return {"header": {"msg_type": kind}, "msg_type": kind, "parent_header": {},
            "metadata": {}, "content": content}


def test_browser_fold_matches_protocol_fold(page) -> None:
    """cellbus.js folds messages into the same blocks as protocol/fold.py: on the recorded
    streams and on random ones (interacts, clear_output and malformed messages among them)."""
    from protocol.fold import fold
    streams = [json.loads(p.read_text()) for p in sorted(STREAMS.glob("*.json"))]
    rng = random.Random(4)
    for _ in range(150):
        streams.append([[seq, random_message(rng, seq)] for seq in range(1, rng.randint(2, 25))])
    page.set_content("<!doctype html><title>fold</title>")
    page.add_script_tag(content=script.source().decode())
    got = page.evaluate("""streams => streams.map(stream => {
        const f = new cellbus.Fold();
        for (const [seq, msg] of stream) f.apply(seq, msg);
        return f.view();
    })""", streams)
    for stream, js in zip(streams, got):
        assert js == fold([(s, m) for s, m in stream]).blocks(), stream


def test_the_client_is_its_parts_in_one_script(chain) -> None:
    """/static/cellbus.js is gateway/static/cellbus/'s files in one script, served as tornado
    serves a static file: an ETag that a revalidation answers with 304, byte ranges, and
    the ``?v=`` version the pages link it with."""
    import urllib.error
    import urllib.request
    chain.start_broker()
    chain.start_gateway()
    whole = script.source()
    assert whole.count(b"\n  // -- ") == len(script.PARTS) and b"class Cell {" in whole
    with urllib.request.urlopen(chain.url("/static/cellbus.js"), timeout=10) as resp:
        assert resp.read() == whole
        etag = resp.headers["ETag"]
    assert etag
    again = urllib.request.Request(chain.url("/static/cellbus.js"),
                                   headers={"If-None-Match": etag})
    with pytest.raises(urllib.error.HTTPError) as unchanged:
        urllib.request.urlopen(again, timeout=10)
    unchanged.value.close()
    assert unchanged.value.code == 304
    part = urllib.request.Request(chain.url("/static/cellbus.js"),
                                  headers={"Range": "bytes=3-12"})
    with urllib.request.urlopen(part, timeout=10) as resp:
        assert resp.status == 206 and resp.read() == whole[3:13]
    with urllib.request.urlopen(chain.url("/"), timeout=10) as resp:
        linked = re.search(r'/static/cellbus\.js\?v=(\w+)', resp.read().decode())
    assert linked is not None
    with urllib.request.urlopen(chain.url(linked.group(0)), timeout=10) as resp:
        assert resp.read() == whole


def test_pages_and_client_are_served_with_their_types(chain) -> None:
    """The pages are HTML, the client is JavaScript and CSS; other paths stay JSON 404s."""
    import urllib.request
    chain.start_broker()
    chain.start_gateway()
    web = chain
    types = {}
    for path in ("/", "/embed-example", "/static/cellbus.js", "/static/cellbus.css"):
        with urllib.request.urlopen(web.url(path), timeout=10) as resp:
            types[path] = resp.headers["Content-Type"]
            body = resp.read().decode()
        if path.endswith(".js"):
            assert "window.cellbus" in body
        elif not path.endswith(".css"):
            assert "/static/cellbus.js" in body and 'name="viewport"' in body
    assert types["/"].startswith("text/html") and types["/embed-example"].startswith("text/html")
    assert "javascript" in types["/static/cellbus.js"]
    assert types["/static/cellbus.css"].startswith("text/css")
    assert web.http("GET", "/no/such/page") == (404, {"error": "no route /no/such/page"})
