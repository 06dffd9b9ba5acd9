"""A real token in a URL never reaches a log, whatever separates or encodes it: the gateway's
access and warning lines redact the value of every ``token``/``_xsrf`` they find, not only
arguments tornado would parse (``?since=0;token=...`` is one argument to tornado)."""

from __future__ import annotations

import urllib.parse

from access_util import add_user, call
from harness import Chain
from test_access import assert_no_token_in_logs, start


def odd_urls(token: str) -> list[str]:
    cell = "/home/alice/w/1"
    quoted = urllib.parse.quote(token)
    return [f"{cell}/update?since=0;token={token}", f"{cell}/update?since=0&token={token}",
            f"{cell}/update?%74oken={token}", f"{cell}/update?token={token}&token={token}",
            f"{cell}/update?TOKEN={token}", f"{cell}/update?tok%65n%3D{quoted}",
            f"{cell}/update?%2574oken={token}", f"{cell}/update?since=0;%5Fxsrf={token}",
            f"{cell}/update?token+={token};x=1", f"{cell}/nope?a=1;token={token}",
            f"/?a=1;token={token}", f"/api/kernels?x=1;token={token}",
            f"/ws?since=0;token={token}", f"/permalink/abc?;token={token}#x"]


def test_no_token_in_any_log_after_odd_urls(chain: Chain) -> None:
    tokens = {"alice": add_user(chain, "alice")}
    start(chain, "--auth", "token")
    for url in odd_urls(tokens["alice"]):
        call(chain.port, "GET", url)
    call(chain.port, "GET", "/health?marker=done")
    assert chain.gateway is not None
    chain.gateway.wait_for_log(r"/health\?marker=done")  # every earlier line is in by now
    assert "/update?since=0;token=[redacted]" in chain.gateway.log
    assert_no_token_in_logs(chain, tokens)
