"""Permalinks over a real chain: stored by the broker (surviving its restart), counted
against the maker's quota, opened by /?q=ID and /?z=... in real Chromium with their code
ready to run, and made by the page's Share button."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import zlib

from access_util import JSON, add_user, bearer, call
from harness import Chain, until
from test_browser import (browser, code_box, code_of, expect, open_page,  # noqa: F401
                          page, web)

CODE = "print('shared', 6 * 7)"


def make(chain: Chain, code: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    answer = call(chain.port, "POST", "/permalink", json.dumps({"code": code}),
                  {**JSON, **(headers or {})})
    return answer.status, answer.body


def test_a_permalink_survives_a_broker_restart_and_counts_against_the_quota(
        chain: Chain) -> None:
    """Tests that POST /permalink answers a short id (the same for the same code), that
    GET /permalink/ID answers the code after the broker restarted, that an unknown id is
    404, and that a user a token names may make --user-permalinks of them, then 429."""
    token = add_user(chain, "ann")
    chain.start_broker("--user-permalinks", "2")
    chain.start_gateway("--auth", "token")
    ann = bearer(token)
    status, first = make(chain, CODE, ann)
    assert status == 201 and first["url"] == f"/?q={first['id']}", first
    assert len(first["id"]) == 12
    assert make(chain, CODE, ann) == (201, first)  # the same code: the same link, no new row
    # No one can tell from a guessed piece of code whether it was shared: its id is no
    # plain hash of the code (it is keyed with a secret of the broker's).
    canonical = json.dumps({"code": CODE, "interact": None}, sort_keys=True,
                           separators=(",", ":")).encode()
    guessed = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).decode()[:12]
    assert first["id"] != guessed
    assert call(chain.port, "GET", f"/permalink/{guessed}", headers=ann).status == 404
    assert make(chain, "1 + 1", ann)[0] == 201
    status, over = make(chain, "2 + 2", ann)
    assert status == 429 and "--user-permalinks" in over["error"], over
    assert make(chain, CODE)[0] == 401  # no token: no permalink

    assert chain.broker is not None
    chain.broker.stop()
    chain.start_broker("--user-permalinks", "2")
    answer = call(chain.port, "GET", f"/permalink/{first['id']}", headers=ann)
    assert answer.status == 200, answer.body
    assert answer.body == {"id": first["id"], "code": CODE, "interact": None}
    assert call(chain.port, "GET", "/permalink/nothere", headers=ann).status == 404


def test_shared_links_open_with_their_code_ready_to_run(page, web) -> None:  # noqa: F811
    """Tests that the Share button makes a permalink of the cell's code and shows its link,
    that the link (/?q=ID) opens a worksheet with that code in its first cell, ready to
    run, that running it shows its output and, under the cell, what it used, and that
    /?z=... opens code carried compressed in the URL itself."""
    chain = web
    page.goto(chain.url("/?ws=maker"))
    first = page.locator(".cellbus-cell").nth(0)
    code_box(first).fill(CODE)
    page.locator("#share").click()
    link = page.locator("#shared-link")
    expect(link).to_have_text(re.compile(re.escape(chain.url("/?q=")) + r"[\w-]{12}$"))
    url = link.inner_text()
    assert url.startswith(chain.url("/?q=")), url

    page.goto(url)
    first = page.locator(".cellbus-cell").nth(0)
    expect(code_of(first)).to_have_value(CODE)
    expect(first.locator(".CodeMirror-line")).to_have_text(CODE)  # the editor shows it too
    expect(first.locator(".cellbus-output")).to_have_text("")  # ready, not run
    code_box(first).press("Control+Enter")
    expect(first.locator(".cellbus-output")).to_have_text("shared 42")
    expect(first).to_have_attribute("data-status", "done")
    expect(first.locator(".cellbus-usage")).to_contain_text("CPU")
    expect(first.locator(".cellbus-usage")).to_contain_text("peak memory")

    z = base64.urlsafe_b64encode(zlib.compress(b"print('from z')")).decode().rstrip("=")
    page.goto(chain.url(f"/?z={z}"))
    expect(code_of(page.locator(".cellbus-cell").nth(0))).to_have_value(
        "print('from z')")


def test_a_z_link_that_inflates_past_a_cells_input_is_refused_at_once(
        page, web) -> None:  # noqa: F811
    """Tests that a /?z= link of 11 KB whose code inflates to 8 MiB (over the 1 MiB a ?z=
    link opens, the gateway's default --max-input) says so within 5 s and leaves the first
    cell empty and the page working. Before, the page inflated it all and put it in the
    cell: 40 MiB from a 54 KB link held its thread for 45 s."""
    z = base64.urlsafe_b64encode(zlib.compress(b"#" * (8 << 20), 9)).decode().rstrip("=")
    assert len(z) < 12_000
    page.goto(web.url(f"/?z={z}"))
    expect(page.locator("#shared")).to_contain_text(
        "this link's code (?z=) is over 1.0 MiB", timeout=5000)
    first = page.locator(".cellbus-cell").nth(0)
    expect(code_of(first)).to_have_value("")
    code_box(first).fill(CODE)
    code_box(first).press("Control+Enter")
    expect(first.locator(".cellbus-output")).to_have_text("shared 42")


def test_share_takes_the_cell_typed_in_last(page, web) -> None:  # noqa: F811
    """Share makes a permalink of the cell the user typed in last, not of the first cell
    with code: with CodeMirror the focus is in the editor's own input, not the cell's
    textarea, and the page must still know which cell that is."""
    chain = web
    page.goto(chain.url("/?ws=maker2"))
    cells = page.locator(".cellbus-cell")
    code_box(cells.nth(0)).fill("print('not this one')")
    code_box(cells.nth(1)).fill(CODE)
    page.locator("#share").click()
    link = page.locator("#shared-link")
    expect(link).to_have_text(re.compile(re.escape(chain.url("/?q=")) + r"[\w-]{12}$"))
    page.goto(link.inner_text())
    expect(code_of(page.locator(".cellbus-cell").nth(0))).to_have_value(CODE)


def test_share_keeps_the_interact_values(browser, page, running_chain) -> None:  # noqa: F811
    """Share stores the values of the cell's interact controls with its code: a slider
    moved before sharing shows the moved value when the link is opened and evaluated, and
    the output is the function's for that value, not for the default (in a new page of
    a browser context of its own)."""
    chain = running_chain
    page.goto(chain.url("/?ws=slid"))
    first = page.locator(".cellbus-cell").nth(0)
    code = "@interact\ndef f(n=slider(1, 20, step=1), word='hi'):\n    print('n is', n, word)"
    code_box(first).fill(code)
    code_box(first).press("Control+Enter")
    box = first.locator(".cellbus-interact")
    expect(box.locator(".cellbus-interact-output")).to_have_text("n is 1 hi")
    box.get_by_role("slider", name="n").fill("7")
    expect(box.locator(".cellbus-interact-output")).to_have_text("n is 7 hi")
    page.locator("#share").click()
    link = page.locator("#shared-link")
    expect(link).to_have_text(re.compile(re.escape(chain.url("/?q=")) + r"[\w-]{12}$"))
    url = link.inner_text()
    stored = call(chain.port, "GET", "/permalink/" + url.rsplit("=", 1)[1])
    assert stored.body["interact"] == {"n": 7, "word": "hi"}, stored.body

    for other in open_page(browser):
        other.goto(url)
        first = other.locator(".cellbus-cell").nth(0)
        expect(code_of(first)).to_have_value(code)
        code_box(first).press("Control+Enter")
        box = first.locator(".cellbus-interact")
        expect(box.get_by_role("slider", name="n")).to_have_value("7")
        expect(box.locator(".cellbus-control-value")).to_have_text("7")
        expect(box.locator(".cellbus-interact-output")).to_have_text("n is 7 hi")
        expect(box).not_to_have_attribute("aria-busy", "true")
        expect(box.locator(".cellbus-interact-output")).to_have_text("n is 7 hi")  # stays


def test_a_link_made_without_a_token_is_kept_and_a_delete_says_why(web: Chain) -> None:  # noqa: F811
    """Tests that DELETE of a link no token made answers 403 saying it is kept for good (it
    answered 404 "no such permalink", though GET opened it), and that it still opens; an
    id no link has answers 404."""
    status, made = make(web, "print('kept for good')")
    assert status == 201, made
    refused = call(web.port, "DELETE", f"/permalink/{made['id']}")
    assert refused.status == 403 and "made without a token" in refused.body["error"], refused
    assert call(web.port, "GET", f"/permalink/{made['id']}").status == 200
    gone = [call(web.port, method, "/permalink/nosuchlink0") for method in ("GET", "DELETE")]
    assert [(r.status, r.body["error"]) for r in gone] == [
        (404, "no such permalink nosuchlink0")] * 2  # one answer, whichever asks


def test_no_user_can_tell_whether_another_shared_a_guessed_piece_of_code(chain: Chain) -> None:
    """Tests that bob's answers for code ann shared are those for code no one shared: his
    share of it made him a link of his own, his DELETE of that link answered 200 (before,
    403 "only the user who made this link": ann's), and, at his --user-permalinks, his
    share answered 429 (before, 201: her link, which his quota did not count). Each
    answered whether someone had shared exactly that code, which ids keyed with a secret
    were meant to keep from anyone. Ann's link still opens and is still hers to delete."""
    ann, bob = (bearer(add_user(chain, name)) for name in ("ann", "bob"))
    chain.start_broker("--user-permalinks", "2")
    chain.start_gateway("--auth", "token")
    secret = "token = 'hunter2'"
    status, hers = make(chain, secret, ann)
    assert status == 201, hers

    def probe(code: str) -> tuple[int, int]:
        """What bob learns of ``code``: his share's status, then his delete's."""
        status, made = make(chain, code, bob)
        assert status == 201, made
        return status, call(chain.port, "DELETE", f"/permalink/{made['id']}",
                            headers=bob).status

    assert probe(secret) == probe("token = 'guess'") == (201, 200)
    assert make(chain, "1", bob)[0] == make(chain, "2", bob)[0] == 201  # his quota, full
    assert make(chain, secret, bob)[0] == make(chain, "3", bob)[0] == 429
    opened = call(chain.port, "GET", f"/permalink/{hers['id']}", headers=bob)
    assert opened.status == 200 and opened.body["code"] == secret
    assert make(chain, secret, ann) == (201, hers)  # the same code: her same link
    assert call(chain.port, "DELETE", f"/permalink/{hers['id']}", headers=ann).status == 200


def stored_code(chain: Chain, worksheet: str) -> list[str]:
    """The code of the worksheet's cells as the store keeps its layout (user guest)."""
    answer = call(chain.port, "GET", f"/home/guest/{worksheet}/layout")
    return [c["code"] for c in answer.body.get("cells") or []] if answer.status == 200 else []


def test_a_shared_link_naming_a_worksheet_opens_a_new_one(page, web) -> None:  # noqa: F811
    """Tests that a shared link with ``ws=`` (``/?ws=thesis&z=...``, which anyone can write
    and send) opens the shared code in a worksheet of its own, as a link without it does,
    and leaves the named worksheet's stored cells as they were; and that a reload of the
    page it opened keeps what was typed there since. Before, the link's code replaced the
    first cell of that worksheet (the person's own, when signed in) and was saved over it,
    and a reload put the shared code back over what was typed."""
    chain = web
    page.goto(chain.url("/?ws=thesis"))
    code_box(page.locator(".cellbus-cell").nth(0)).fill("print('my own work')")
    until(lambda: stored_code(chain, "thesis")[:1] == ["print('my own work')"], "the first save")
    z = base64.urlsafe_b64encode(zlib.compress(b"print('theirs')")).decode().rstrip("=")
    page.goto(chain.url(f"/?ws=thesis&z={z}"))
    first = page.locator(".cellbus-cell").nth(0)
    expect(code_of(first)).to_have_value("print('theirs')")
    expect(page.locator("#ws-name")).not_to_have_text("thesis")
    opened = page.locator("#ws-name").inner_text()
    until(lambda: stored_code(chain, opened)[:1] == ["print('theirs')"], "the link's save")
    assert stored_code(chain, "thesis")[:1] == ["print('my own work')"]
    code_box(first).press("Control+a")  # CodeMirror types at the cursor: replace all
    code_box(first).fill("print('edited')")
    until(lambda: stored_code(chain, opened)[:1] == ["print('edited')"], "the edit's save")
    page.reload()
    expect(code_of(page.locator(".cellbus-cell").nth(0))).to_have_value("print('edited')")
    assert page.locator("#ws-name").inner_text() == opened
