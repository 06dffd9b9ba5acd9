"""``@interact`` in the browser (cellbus issue 5): controls in real Chromium, whole chain.

One chain (broker, device, gateway) serves the whole module; each test has a worksheet, so a
session, of its own. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from gateway import script
from module_chain import module_chain
from test_browser import (ARTIFACTS, browser, expect, open_worksheet,  # noqa: F401 (fixtures)
                          page, run)


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A chain for the module; its node logs go to test-artifacts/browser-logs/ afterwards."""
    yield from module_chain(tmp_path_factory, "interact",
                            log=ARTIFACTS / "browser-logs" / "test_browser_interact.log")


def sent_interact_requests(page: Any) -> list[dict[str, Any]]:
    """Collects the interact_requests the page sends over its WebSocket (call before goto)."""
    sent: list[dict[str, Any]] = []

    def on_socket(ws: Any) -> None:
        def on_frame(payload: Any) -> None:
            try:
                msg = json.loads(payload)
            except (TypeError, ValueError):
                return
            if msg.get("header", {}).get("msg_type") == "interact_request":
                sent.append(msg)
        ws.on("framesent", on_frame)

    page.on("websocket", on_socket)
    return sent


def interact_of(cell: Any) -> tuple[Any, Any]:
    """The cell's interact, once shown, and its output area."""
    box = cell.locator(".cellbus-interact")
    expect(box).to_have_count(1)
    return box, box.locator(".cellbus-interact-output")


SEED = "@interact\ndef f(n=slider(1, 20, step=1)):\n    print(n)"


def test_seed_slider(page, web) -> None:
    """The seed's example: moving the slider to 7 re-runs f; the output becomes 7, and the
    slider is the same element throughout (output updates do not rebuild the controls)."""
    cell = open_worksheet(page, web).nth(0)
    run(cell, SEED)
    box, out = interact_of(cell)
    expect(out).to_have_text("1")
    expect(cell).to_have_attribute("data-status", "done")
    slider = box.get_by_role("slider", name="n")
    expect(slider).to_have_attribute("min", "1")
    expect(slider).to_have_attribute("max", "20")
    handle = slider.element_handle()
    slider.fill("7")
    expect(box.locator("output.cellbus-control-value")).to_have_text("7")
    expect(out).to_have_text("7")
    slider.press("ArrowRight")  # the keyboard works too
    expect(out).to_have_text("8")
    assert handle.evaluate("e => e.isConnected && e.value") == "8"
    expect(box.locator(".cellbus-working")).to_be_hidden()


def test_rapid_changes_are_coalesced(page, web) -> None:
    """20 slider positions in a tight loop (as a drag gives them): the last one shows, and the
    server coalesces the rest, so the function runs at most 20 times (usually far fewer)."""
    sent = sent_interact_requests(page)
    cells = open_worksheet(page, web)
    run(cells.nth(0), "import time\n"
                      "@interact\n"
                      "def f(n=slider(1, 20, step=1)):\n"
                      "    runs = globals().setdefault('runs', [])\n"
                      "    runs.append(n)\n"
                      "    time.sleep(0.05)\n"
                      "    print(n, len(runs))")
    box, out = interact_of(cells.nth(0))
    expect(out).to_have_text("1 1")
    box.get_by_role("slider", name="n").evaluate("""slider => {
        for (let v = 1; v <= 20; v++) {
            slider.value = String(v);
            slider.dispatchEvent(new Event("input", {bubbles: true}));
        }
    }""")
    expect(out).to_have_text(re.compile(r"^20 \d+\s*$"))
    expect(box.locator(".cellbus-working")).to_be_hidden()
    run(cells.nth(1), "print(len(runs) - 1, runs[1:])")  # runs[0]: the first, with the default
    expect(cells.nth(1)).to_have_attribute("data-status", "done")
    count_text, _, values = cells.nth(1).locator(".cellbus-output").inner_text().partition(" ")
    count = int(count_text)
    print(f"\ncoalescing: 20 changes, {len(sent)} interact_requests sent, {count} runs: {values}")
    assert len(sent) == 20
    assert [m["content"]["state"] for m in sent] == sorted({m["content"]["state"] for m in sent})
    assert 1 <= count <= 20
    assert values.strip().endswith("20]")
    assert out.inner_text().strip() == f"20 {count + 1}"


ALL_CONTROLS = """\
@interact
def f(s=slider(0, 10, step=1, default=2), r=range_slider(0, 10, step=1, default=(2, 5)),
      t=input_box('hi', label='text'), k=checkbox(False), sel=selector(['a', 'b', 'c']),
      sb=selector([10, 20, 30], buttons=True, label='pick'), col=color_selector('#112233'),
      g=input_grid(2, 2, default=[[1, 2], [3, 4]], type=int), go=button('Go')):
    for name, value in dict(s=s, r=r, t=t, k=k, sel=sel, sb=sb, col=col, g=g, go=go).items():
        print(name, repr(value))
"""


def test_every_control_round_trips(page, web) -> None:
    """Each control type sends its value; the function gets it converted, and prints it."""
    cell = open_worksheet(page, web).nth(0)
    run(cell, ALL_CONTROLS)
    box, out = interact_of(cell)
    expect(out).to_have_text("s 2\nr (2, 5)\nt 'hi'\nk False\nsel 'a'\nsb 10\n"
                             "col '#112233'\ng [[1, 2], [3, 4]]\ngo False")

    def shows(line: str) -> None:
        expect(out).to_contain_text(line)

    box.get_by_role("slider", name="s").fill("7")
    shows("s 7")
    box.get_by_role("slider", name="r, from").fill("3")
    shows("r (3, 5)")
    box.get_by_role("slider", name="r, to").fill("8")
    shows("r (3, 8)")
    expect(box.locator(".cellbus-control-range_slider output")).to_have_text("3 – 8")
    text = box.get_by_role("textbox", name="text")
    text.fill("hello world")
    text.press("Enter")
    shows("t 'hello world'")
    box.get_by_role("checkbox", name="k").check()
    shows("k True")
    box.get_by_role("combobox", name="sel").select_option(label="c")
    shows("sel 'c'")
    choice = box.get_by_role("button", name="30")
    choice.click()
    shows("sb 30")
    expect(choice).to_have_attribute("aria-pressed", "true")
    expect(box.get_by_role("button", name="10")).to_have_attribute("aria-pressed", "false")
    box.get_by_label("col", exact=True).fill("#FF8800")
    shows("col '#ff8800'")
    grid_cell = box.get_by_role("textbox", name="g, row 2, column 1")
    grid_cell.fill("7")
    grid_cell.press("Enter")
    shows("g [[1, 2], [7, 4]]")
    shows("go False")
    box.get_by_role("button", name="Go").click()
    expect(out).to_have_text("s 7\nr (3, 8)\nt 'hello world'\nk True\nsel 'c'\nsb 30\n"
                             "col '#ff8800'\ng [[1, 2], [7, 4]]\ngo True")
    box.get_by_role("checkbox", name="k").uncheck()  # the button is False again afterwards
    shows("k False")
    shows("go False")
    ARTIFACTS.mkdir(exist_ok=True)
    box.screenshot(path=str(ARTIFACTS / "interact.png"))
    page.set_viewport_size({"width": 375, "height": 740})
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # controls wrap
    box.screenshot(path=str(ARTIFACTS / "interact-phone.png"))


def test_auto_update_false_waits_for_update(page, web) -> None:
    sent = sent_interact_requests(page)
    cell = open_worksheet(page, web).nth(0)
    run(cell, "@interact(auto_update=False)\n"
              "def f(n=slider(1, 20, step=1), t=input_box('a')):\n"
              "    print(n, t)")
    box, out = interact_of(cell)
    expect(out).to_have_text("1 a")
    box.get_by_role("slider", name="n").fill("5")
    box.get_by_role("textbox", name="t").fill("b")
    box.get_by_role("textbox", name="t").blur()
    update = box.get_by_role("button", name="Update")
    expect(update).to_have_class(re.compile(r"\bcellbus-dirty\b"))
    assert out.inner_text().strip() == "1 a"
    update.click()
    expect(out).to_have_text("5 b")
    # The Update's request went out after any the changes made (one WebSocket keeps order)
    # and its run is back: had a change sent one, it would be here first.
    assert [m["content"]["values"] for m in sent] == [{"n": 5, "t": "b"}]
    expect(update).not_to_have_class(re.compile(r"\bcellbus-dirty\b"))


def test_bad_value_shows_error_and_control_stays_usable(page, web) -> None:
    cell = open_worksheet(page, web).nth(0)
    run(cell, "@interact\ndef f(x=input_box(1, type=int)):\n    print(x * 2)")
    box, out = interact_of(cell)
    expect(out).to_have_text("2")
    x = box.get_by_role("textbox", name="x")
    x.fill("abc")
    x.press("Enter")
    expect(out.locator(".cellbus-error")).to_contain_text("ValueError")
    expect(out.locator(".cellbus-error")).to_contain_text("'abc' is not a valid int")
    expect(x).to_be_enabled()
    x.fill("21")
    x.press("Enter")
    expect(out).to_have_text("42")
    expect(out.locator(".cellbus-error")).to_have_count(0)


def test_interact_over_http_when_websockets_fail(page, web) -> None:
    """No WebSocket gets through: POST …/interact, then long-poll /update for the run."""
    page.route_web_socket("**/ws", lambda ws: ws.close())
    cell = open_worksheet(page, web).nth(0)
    run(cell, SEED)
    box, out = interact_of(cell)
    expect(out).to_have_text("1")
    expect(cell).to_have_attribute("data-status", "done")
    slider = box.get_by_role("slider", name="n")
    slider.fill("7")
    expect(out).to_have_text("7")
    for v in range(8, 14):
        slider.fill(str(v))
    expect(out).to_have_text("13")
    expect(box.locator(".cellbus-working")).to_be_hidden()


# -- the client's side of the protocol, against a scripted WebSocket -------------------------

class MockGateway:
    """Plays the gateway's WebSocket for one page: subscribes, runs the cell (an interact
    with a slider n), and answers each interact_request with a run printing n (13: refused)."""

    SESSION = "sess-1"

    def __init__(self) -> None:
        self.ws: Any = None
        self.seq = 0
        self.sent: list[dict[str, Any]] = []  # what the page sent

    def route(self, ws: Any) -> None:
        self.ws = ws
        ws.on_message(self.on_message)

    def send(self, msg_type: str, content: dict[str, Any], parent: str = "",
             interact_id: str | None = None) -> None:
        self.seq += 1
        facts = {"seq": self.seq, "session": self.SESSION, "user": "u", "worksheet": "w",
                 "cell_id": "1"}
        if interact_id is not None:
            facts["interact_id"] = interact_id
        self.ws.send(json.dumps({"header": {"msg_id": f"m{self.seq}", "msg_type": msg_type},
                                 "msg_type": msg_type, "parent_header": {"msg_id": parent},
                                 "metadata": {"cellbus": facts}, "content": content}))

    def reply(self, request: dict[str, Any], msg_type: str, content: dict[str, Any]) -> None:
        self.ws.send(json.dumps({"header": {"msg_id": "r", "msg_type": msg_type},
                                 "msg_type": msg_type, "metadata": {}, "content": content,
                                 "parent_header": {"msg_id": request["header"]["msg_id"]}}))

    def run(self, parent: str, interact_id: str, state: int, text: str | None,
            ignored: bool = False) -> None:
        self.send("status", {"execution_state": "busy"}, parent, interact_id)
        if text:
            self.send("stream", {"name": "stdout", "text": text}, parent, interact_id)
        self.send("interact_reply", {"status": "ok", "interact_id": interact_id, "state": state,
                                     "ignored": ignored}, parent, interact_id)
        self.send("status", {"execution_state": "idle"}, parent, interact_id)

    def on_message(self, raw: str | bytes) -> None:
        msg = json.loads(raw)
        self.sent.append(msg)
        msg_type, msg_id = msg["header"]["msg_type"], msg["header"]["msg_id"]
        if msg_type == "subscribe_request":
            self.reply(msg, "subscribe_reply", {"ok": True, "session": self.SESSION, "seq": 0})
        elif msg_type == "execute_request":
            self.reply(msg, "request_accepted", {"ok": True, "status": "working",
                                                 "msg_id": msg_id})
            self.send("status", {"execution_state": "busy"}, msg_id)
            self.send("interact_start", {
                "interact_id": "I1", "layout": ["n"], "auto_update": True,
                "controls": {"n": {"type": "slider", "start": 0, "end": 20, "step": 1,
                                   "default": 1, "label": "n"}}}, msg_id)
            self.send("stream", {"name": "stdout", "text": "1\n"}, msg_id)
            self.send("interact_end", {"interact_id": "I1"}, msg_id)
            self.send("execute_reply", {"status": "ok"}, msg_id)
            self.send("status", {"execution_state": "idle"}, msg_id)
        elif msg_type == "interact_request":
            content = msg["content"]
            n = content["values"]["n"]
            if n == 13:
                self.reply(msg, "request_accepted", {"ok": False, "http_status": 503,
                                                     "error": "broker unreachable"})
                return
            self.reply(msg, "request_accepted", {"ok": True, "status": "needs_work",
                                                 "msg_id": msg_id})
            self.run(msg_id, content["interact_id"], content["state"], f"{n}\n" if n else None)


def test_interact_protocol_against_a_mock_gateway(page) -> None:
    """What the page sends, and what it makes of each run: output replaces the last run's;
    a stale (ignored) run changes nothing; a run another page asked for shows too; a run
    printing nothing empties the output; a refusal is said, and the slider stays usable."""
    gateway = MockGateway()
    page.route_web_socket("ws://cellbus.test/ws", gateway.route)
    page.set_content("<!doctype html><title>mock</title><div id=cell></div>")
    page.add_script_tag(content=script.source().decode())
    page.evaluate("""cellbus.makeCell(document.getElementById("cell"), {
        server: "http://cellbus.test/", user: "u", worksheet: "w", cellId: "1",
        code: "@interact ...", autoeval: true})""")
    box = page.locator(".cellbus-interact")
    out = box.locator(".cellbus-interact-output")
    expect(out).to_have_text("1")
    slider = box.get_by_role("slider", name="n")
    before = int(time.time() * 1000)
    slider.fill("5")
    expect(out).to_have_text("5")
    request = [m for m in gateway.sent if m["header"]["msg_type"] == "interact_request"][-1]
    assert request["content"]["interact_id"] == "I1"
    assert request["content"]["values"] == {"n": 5}
    assert request["content"]["state"] >= before
    assert request["metadata"] == {"cellbus": {"user": "u", "worksheet": "w", "cell_id": "1"}}
    assert set(request["header"]) == {"msg_id", "msg_type", "session", "username", "date",
                                      "version"}
    gateway.run("stale-request", "I1", 1, "3\n", ignored=True)  # skipped: changes nothing
    gateway.run("from-another-tab", "I1", 2**52, "9\n")
    expect(out).to_have_text("9")
    assert out.locator(".cellbus-block").count() == 1
    gateway.run("other-interact", "I2", 1, "elsewhere\n")  # not shown here: ignored
    slider.fill("0")  # prints nothing: the output empties
    expect(out.locator(".cellbus-block")).to_have_count(0)
    slider.fill("13")
    expect(box.get_by_role("alert")).to_contain_text("broker unreachable")
    expect(box.locator(".cellbus-working")).to_be_hidden()
    slider.fill("14")
    expect(out).to_have_text("14")
    expect(box.get_by_role("alert")).to_be_hidden()
    states = [m["content"]["state"] for m in gateway.sent
              if m["header"]["msg_type"] == "interact_request"]
    assert states == sorted(set(states)) and len(states) == 4
    expect(page.locator(".cellbus-cell .cellbus-output > .cellbus-block")).to_have_count(1)
