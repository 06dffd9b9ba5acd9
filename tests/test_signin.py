"""Signing a browser in with ``?token=`` (issue 19, item 2), over real HTTP.

A link with a token is how an operator hands a user their sign-in, and how a hostile site
would swap a victim's account for its own: a page of another site navigates the victim to
``/?token=ATTACKER&ws=trap&user=attacker``, and everything the victim runs afterwards lands
in the attacker's account. So the cookie is set only for a navigation the user made
(``Sec-Fetch-Site: none`` or ``same-origin``); any other (cross-site, same-site, or a client
that does not say) gets a page that asks, and answering it is a same-origin ``POST /signin``
with tornado's ``_xsrf``. A sign-in is never replaced without the page saying who is signed
in. With ``--auth token`` no page works as the ``?user=`` it names: signed out, ``/`` is
the sign-in form. Chromium playing the hostile site is in tests/test_browser_access.py.
"""

from __future__ import annotations

import re
import urllib.parse

import pytest

from access_util import Answer, add_user, call
from harness import Chain
from test_access import assert_no_token_in_logs, start

pytestmark = pytest.mark.timeout(90)

NAVIGATION = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def signin_chain(chain: Chain) -> tuple[Chain, dict[str, str]]:
    """--auth token with users alice and mallory: (chain, tokens)."""
    tokens = {"alice": add_user(chain, "alice"), "mallory": add_user(chain, "mallory")}
    start(chain, "--auth", "token")
    return chain, tokens


def token_cookie(chain: Chain, answer: Answer) -> str | None:
    """The sign-in cookie's value an answer sets, if it sets one."""
    for header in answer.headers.get_all("Set-Cookie") or []:
        name, _, rest = header.partition("=")
        if name == f"cellbus_token_{chain.port}":
            return rest.split(";")[0]
    return None


def xsrf_of(chain: Chain, answer: Answer) -> tuple[str, str]:
    """The ``_xsrf`` cookie an answer sets and the form field its page carries."""
    cookie = next(h.split(";")[0] for h in answer.headers.get_all("Set-Cookie") or []
                  if h.startswith(f"_xsrf_{chain.port}="))
    field = re.search(rb'name="_xsrf" value="([^"]+)"', answer.body)
    assert field, answer.body
    return cookie, field.group(1).decode()


def test_url_token_signs_in_only_a_navigation_the_user_made(
        signin_chain: tuple[Chain, dict[str, str]]) -> None:
    """A link followed from another site (cross-site or same-site), or from a client that
    sends no Sec-Fetch-Site, sets no cookie: it gets a page that names the token's user and
    asks; typed or bookmarked (none) or from the gateway's own page (same-origin), the
    cookie is set and the token leaves the URL."""
    chain, tokens = signin_chain
    link = f"/?ws=trap&user=mallory&token={tokens['mallory']}"
    for site in ("cross-site", "same-site", None):
        headers = {**NAVIGATION, **({"Sec-Fetch-Site": site} if site else {})}
        r = call(chain.port, "GET", link, headers=headers)
        assert r.status == 200 and token_cookie(chain, r) is None, (site, r.status, r.headers)
        assert r.headers["Content-Type"].startswith("text/html")
        assert b"mallory" in r.body and b'action="/signin"' in r.body, site
        assert b"makeWorksheet" not in r.body  # the page asks; it is no worksheet
        assert r.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    for site in ("none", "same-origin"):
        r = call(chain.port, "GET", link, headers={**NAVIGATION, "Sec-Fetch-Site": site})
        assert r.status == 302 and r.headers["Location"] == "/?ws=trap&user=mallory", site
        assert token_cookie(chain, r) == tokens["mallory"]
    assert_no_token_in_logs(chain, tokens)


def test_a_sign_in_is_never_replaced_silently(
        signin_chain: tuple[Chain, dict[str, str]]) -> None:
    """Signed in as alice, even a typed link with mallory's token only asks, naming both;
    alice's own link just drops the token. The answer is a same-origin POST /signin with
    _xsrf, and it switches only when it names the sign-in it replaces; `next` stays on this
    gateway."""
    chain, tokens = signin_chain
    alice = {"Cookie": f"cellbus_token_{chain.port}={tokens['alice']}"}
    typed = {**NAVIGATION, "Sec-Fetch-Site": "none"}
    r = call(chain.port, "GET", f"/?ws=w&token={tokens['mallory']}", headers={**typed, **alice})
    assert r.status == 200 and token_cookie(chain, r) is None
    assert b"alice" in r.body and b"mallory" in r.body
    assert b'name="switch" value="alice"' in r.body
    own = call(chain.port, "GET", f"/?ws=w&token={tokens['alice']}", headers={**typed, **alice})
    assert own.status == 302 and own.headers["Location"] == "/?ws=w"
    xsrf_cookie, xsrf = xsrf_of(chain, r)
    jar = {"Cookie": f"{alice['Cookie']}; {xsrf_cookie}"}
    same = {"Origin": f"http://127.0.0.1:{chain.port}", "Sec-Fetch-Site": "same-origin"}

    def post(fields: dict[str, str], headers: dict[str, str]) -> Answer:
        return call(chain.port, "POST", "/signin", urllib.parse.urlencode(fields),
                    {**FORM, **headers})

    ask = {"token": tokens["mallory"], "next": "/?ws=w"}
    for fields, headers in (({**ask, "switch": "alice"}, {**jar, **same}),  # no _xsrf
                            ({**ask, "switch": "alice", "_xsrf": xsrf},  # another site
                             {**jar, "Sec-Fetch-Site": "cross-site"}),
                            ({**ask, "switch": "alice", "_xsrf": xsrf},
                             {**jar, "Sec-Fetch-Site": "same-site"})):
        refused = post(fields, headers)
        assert refused.status == 403 and token_cookie(chain, refused) is None, refused.body
    again = post({**ask, "_xsrf": xsrf}, {**jar, **same})  # no `switch`: it asks again
    assert again.status == 200 and token_cookie(chain, again) is None
    assert b'name="switch" value="alice"' in again.body
    stale = post({**ask, "switch": "bob", "_xsrf": xsrf}, {**jar, **same})
    assert stale.status == 200 and token_cookie(chain, stale) is None
    switched = post({**ask, "switch": "alice", "_xsrf": xsrf}, {**jar, **same})
    assert switched.status == 302 and switched.headers["Location"] == "/?ws=w"
    assert token_cookie(chain, switched) == tokens["mallory"]
    wrong = post({"token": "x" * 43, "_xsrf": xsrf}, {"Cookie": xsrf_cookie, **same})
    assert wrong.status == 401 and token_cookie(chain, wrong) is None
    for bad_next in ("//evil.test/x", "https://evil.test/", "/\\evil.test", "x"):
        fresh = post({"token": tokens["alice"], "next": bad_next, "_xsrf": xsrf},
                     {"Cookie": xsrf_cookie, **same})
        assert fresh.status == 302 and fresh.headers["Location"] == "/", bad_next
    assert_no_token_in_logs(chain, tokens)


def test_signed_out_pages_ask_for_a_token_and_ignore_user(
        signin_chain: tuple[Chain, dict[str, str]]) -> None:
    """--auth token, no sign-in: / and /embed-example are the sign-in form, whatever ?user=
    says; the form signs in (same-origin, _xsrf) and comes back to the page asked for."""
    chain, tokens = signin_chain
    for path in ("/?ws=trap&user=mallory", "/embed-example?user=mallory"):
        r = call(chain.port, "GET", path, headers={**NAVIGATION, "Sec-Fetch-Site": "none"})
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
        assert b'action="/signin"' in r.body and b'name="token"' in r.body, path
        assert b"makeWorksheet" not in r.body and b"makeCell(" not in r.body, path
    cookie, xsrf = xsrf_of(chain, r)
    fields = {"token": tokens["alice"], "next": "/?ws=mine", "_xsrf": xsrf}
    signed = call(chain.port, "POST", "/signin", urllib.parse.urlencode(fields),
                  {**FORM, "Cookie": cookie, "Sec-Fetch-Site": "same-origin"})
    assert signed.status == 302 and signed.headers["Location"] == "/?ws=mine"
    assert token_cookie(chain, signed) == tokens["alice"]
    page = call(chain.port, "GET", "/?ws=mine&user=mallory",
                headers={"Cookie": f"cellbus_token_{chain.port}={tokens['alice']}"})
    assert page.status == 200 and b"makeWorksheet" in page.body
    assert b'"alice"' in page.body
    assert_no_token_in_logs(chain, tokens)
