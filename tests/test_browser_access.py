"""Browsers as attackers, and as embedders, in real Chromium (issue 10, Access).

A page served from a second local port (another origin, though the same site: cookies go
along) tries every way a page has to make a loopback gateway run code: a form, fetch with
and without CORS, a beacon, a WebSocket; and a page whose name is rebound to 127.0.0.1 (DNS
rebinding, played by Chromium's ``--host-resolver-rules``) asks the gateway as its own
origin. None of it may store a request: the store is checked directly, and the gateway's
log shows each attempt was refused. A page of an ``--allow-origin`` origin embeds a cell
with makeCell and sees its output, with and without tokens.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from access_util import add_user, other_site, stored_requests
from harness import Chain
from test_browser import expect, launch_chromium, open_page

pytestmark = pytest.mark.timeout(120)

#: The name Chromium resolves to 127.0.0.1 here, as a rebinding attacker's DNS would.
REBOUND = "rebound.test"
#: What the attacks try to run; it never does.
CODE = "open('/tmp/cellbus-attack-ran', 'w').write('x')"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_chromium(f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1")


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    yield from open_page(browser)


def start(chain: Chain, *gateway_options: str) -> None:
    """The chain, its gateway logging every request (the tests wait for the lines of
    requests that went well, a WebSocket's 101, as for refused ones)."""
    chain.start_broker()
    chain.start_device()
    chain.start_gateway("--log-requests", *gateway_options)


ATTACK = """<!doctype html>
<html><body>
<iframe name="sink"></iframe>
<form id="form" method="POST" target="sink" action="{gw}home/{user}/attack/1/evaluate">
  <input name="input" value="{code_attr}">
</form>
<script>
const GW = {gw_js}, USER = {user_js}, CODE = {code_js};
window.results = {{}};
async function attack() {{
  const url = GW + "home/" + USER + "/attack/";
  const body = JSON.stringify({{input: CODE}});
  const tries = {{
    "json-cors": () => fetch(url + "2/evaluate", {{method: "POST", credentials: "include",
        headers: {{"Content-Type": "application/json"}}, body: body}}),
    "text-no-cors": () => fetch(url + "3/evaluate", {{method: "POST", mode: "no-cors",
        credentials: "include", headers: {{"Content-Type": "text/plain"}}, body: body}}),
    "form-no-cors": () => fetch(url + "4/evaluate", {{method: "POST", mode: "no-cors",
        credentials: "include",
        headers: {{"Content-Type": "application/x-www-form-urlencoded"}},
        body: "input=" + encodeURIComponent(CODE)}}),
    "beacon": async () => navigator.sendBeacon(url + "5/evaluate",
        new Blob([body], {{type: "text/plain"}})),
  }};
  for (const [name, go] of Object.entries(tries)) {{
    try {{
      const r = await go();
      results[name] = typeof r === "object" ? r.type + " " + r.status : String(r);
    }} catch (e) {{
      results[name] = "refused: " + e.message;
    }}
  }}
  results.ws = await new Promise((resolve) => {{
    const ws = new WebSocket(GW.replace(/^http/, "ws") + "ws");
    ws.onopen = () => {{
      ws.send(JSON.stringify({{header: {{msg_type: "execute_request"}}, content: {{code: CODE}},
                               metadata: {{cellbus: {{user: USER, worksheet: "attack",
                                                      cell_id: "6"}}}}}}));
      setTimeout(() => resolve("open"), 1000);
    }};
    ws.onclose = (e) => resolve("closed " + e.code);
  }});
  document.getElementById("form").submit();
  results.done = true;
}}
attack();
</script>
</body></html>
"""


def attack_page(gateway: str, user: str) -> str:
    def attr(s: str) -> str:
        return s.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")

    return ATTACK.format(gw=gateway, user=user, code_attr=attr(CODE),
                         gw_js=json.dumps(gateway), user_js=json.dumps(user),
                         code_js=json.dumps(CODE))


def run_attack(page: Any, chain: Chain, user: str) -> dict[str, Any]:
    """Open the attack page from another port against ``user``'s cells; wait until each
    attempt reached the gateway and was refused there; return what the page saw."""
    with other_site({"/attack.html": attack_page(chain.url("/"), user)}) as port:
        page.goto(f"http://127.0.0.1:{port}/attack.html")
        page.wait_for_function("window.results && window.results.done === true")
        gateway = chain.gateway
        assert gateway is not None
        for cell in (1, 3, 4, 5):  # the form, both no-cors fetches and the beacon
            gateway.wait_for_log(rf"403 POST /home/{user}/attack/{cell}/evaluate")
        gateway.wait_for_log(r"403 OPTIONS /home/\S+/attack/2/evaluate")  # CORS preflight
        gateway.wait_for_log(r"403 GET /ws")
        results: dict[str, Any] = page.evaluate("window.results")
    assert results["ws"].startswith("closed"), results
    assert results["json-cors"].startswith("refused"), results
    return results


def attack_cells(chain: Chain) -> list[Any]:
    return [row for row in stored_requests(chain) if row[1] == "attack"]


def test_other_origin_cannot_run_code_without_auth(page: Any, chain: Chain) -> None:
    """A loopback gateway with no auth: a page of another port, and a page whose name is
    rebound to 127.0.0.1, store nothing; the gateway's own page still works."""
    start(chain)
    run_attack(page, chain, "guest")
    page.goto(f"http://{REBOUND}:{chain.port}/")  # what DNS rebinding makes of a page
    status = page.evaluate("""(code) => fetch("/home/guest/attack/7/evaluate", {
        method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({input: code})}).then((r) => r.status)""", CODE)
    assert status == 403  # answered: one accepted would have been stored before its 202
    assert attack_cells(chain) == []
    page.goto(chain.url("/embed-example"))  # while the gateway's own pages still work
    expect(page.locator(".cellbus-output").first).to_contain_text("3 squared is 9")
    assert stored_requests(chain)


def test_other_origin_cannot_use_the_signed_in_cookie(page: Any, chain: Chain) -> None:
    """--auth token: the browser signs in with ?token= (a HttpOnly, SameSite=Strict cookie,
    the token gone from the URL) and the gateway's pages work with it; a page of another
    port, which is the same site, so Chromium sends the cookie along, stores nothing."""
    token = add_user(chain, "alice")
    start(chain, "--auth", "token")
    page.goto(chain.url(f"/embed-example?token={token}"))
    assert page.url == chain.url("/embed-example")
    cookies = {c["name"]: c for c in page.context.cookies()}
    cookie = cookies[f"cellbus_token_{chain.port}"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    expect(page.locator(".cellbus-output").first).to_contain_text("3 squared is 9")
    assert [row[0] for row in stored_requests(chain)] == ["alice"]
    gateway = chain.gateway
    assert gateway is not None
    gateway.wait_for_log(r"101 GET /ws \(")  # the page's WebSocket, signed in by the cookie
    run_attack(page, chain, "alice")  # each attempt answered 403 (one accepted is stored
    assert attack_cells(chain) == []  # before its 202)
    assert token not in gateway.log


EMBED = """<!doctype html>
<html><body>
<h1>A page of another site</h1>
<div id="cell"></div>
<script src="{gw}static/cellbus.js"></script>
<script>
  cellbus.makeCell(document.getElementById("cell"), Object.assign(
      {{code: "print(6 * 7)", autoeval: true, worksheet: "embedded"}}, {options}));
</script>
</body></html>
"""


@pytest.mark.parametrize("auth", ["none", "token"])
def test_allowed_origin_embeds_a_cell(page: Any, chain: Chain, auth: str) -> None:
    """A page of an --allow-origin origin embeds a cell with makeCell and sees its output
    (with --auth token, makeCell is given the user and a token)."""
    options: dict[str, str] = {}
    if auth == "token":
        options = {"user": "alice", "token": add_user(chain, "alice")}
    pages: dict[str, str] = {}
    with other_site(pages) as port:
        start(chain, "--auth", auth, "--allow-origin", f"http://127.0.0.1:{port}")
        pages["/embed.html"] = EMBED.format(gw=chain.url("/"), options=json.dumps(options))
        page.goto(f"http://127.0.0.1:{port}/embed.html")
        expect(page.locator(".cellbus-output")).to_have_text("42")
    assert [row[:2] for row in stored_requests(chain)] == [(options.get("user", "guest"),
                                                            "embedded")]
    gateway = chain.gateway
    assert gateway is not None
    gateway.wait_for_log(r"101 GET /ws(\?token=\[redacted\])? \(")  # over its WebSocket
    assert "token" not in options or options["token"] not in gateway.log


HOSTILE = """<!doctype html>
<html><body><a id="go" href="{link}">a prize for you</a></body></html>
"""


def token_cookie(page: Any, chain: Chain) -> str | None:
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    return cookies.get(f"cellbus_token_{chain.port}")


def follow_hostile_link(page: Any, chain: Chain, origin: str, signed_in: str | None) -> None:
    """Open the hostile page at ``origin`` and click its link, as a victim would: the
    browser's sign-in stays ``signed_in``'s, and the gateway's page asks about mallory."""
    page.goto(f"{origin}/hostile.html")
    page.click("#go")
    page.wait_for_url(re.compile(re.escape(chain.url("/")) + ".*"))
    page.wait_for_load_state()
    assert token_cookie(page, chain) == signed_in
    expect(page.locator("#signin .user")).to_have_text("mallory")


def test_a_link_from_another_site_signs_no_one_in(page: Any, chain: Chain) -> None:
    """The audit's chain, played by Chromium (issue 19, item 2): a page of another site
    (a rebound name: cross-site; another port: same-site) links the victim to
    /?token=MALLORY&ws=trap&user=mallory. Signed out or signed in as alice, the browser gets
    no cookie of mallory's and no worksheet: a page that names mallory (and alice, when the
    browser sent her cookie) and asks. Declining leaves alice's worksheet as alice's, whatever
    ?user= says; only two explicit answers on the gateway's own page switch to mallory."""
    tokens = {"alice": add_user(chain, "alice"), "mallory": add_user(chain, "mallory")}
    start(chain, "--auth", "token")
    link = chain.url(f"/?token={tokens['mallory']}&ws=trap&user=mallory")
    with other_site({"/hostile.html": HOSTILE.format(link=link)}) as port:
        cross_site, same_site = f"http://{REBOUND}:{port}", f"http://127.0.0.1:{port}"
        follow_hostile_link(page, chain, cross_site, None)  # signed out
        expect(page.locator(".cellbus-cell")).to_have_count(0)
        page.goto(chain.url(f"/?token={tokens['alice']}"))  # typed: signs in
        expect(page.locator("#ws-user")).to_have_text("alice")
        assert token_cookie(page, chain) == tokens["alice"]
        follow_hostile_link(page, chain, cross_site, tokens["alice"])
        expect(page.locator("#signin .current")).to_have_count(0)  # no cookie went along
        follow_hostile_link(page, chain, same_site, tokens["alice"])
        expect(page.locator("#signin .current").first).to_have_text("alice")  # it went along
        page.click("#decline")
        expect(page.locator(".cellbus-cell")).to_have_count(3)
        expect(page.locator("#ws-user")).to_have_text("alice")  # not ?user=mallory
        assert page.evaluate("location.search") == "?ws=trap&user=mallory"
        follow_hostile_link(page, chain, cross_site, tokens["alice"])
        page.click("#confirm")  # the POST carries alice's cookie: it asks again, naming her
        expect(page.locator("#signin .current").first).to_have_text("alice")
        assert token_cookie(page, chain) == tokens["alice"]
        page.click("#confirm")
        expect(page.locator("#ws-user")).to_have_text("mallory")
        assert token_cookie(page, chain) == tokens["mallory"]
    assert stored_requests(chain) == []
