"""A gateway behind a reverse proxy (``--trusted-proxy``): a request the proxy forwards
counts as its client's, named by ``X-Forwarded-For``, for the anonymous visitor's sessions,
``--rate``, the access log and the loopback-only ``/metrics``. Before, every visitor behind
the proxy was the proxy's one address: one visitor's four sessions or one rate bucket were
everyone's, and ``/metrics`` answered the whole internet through a proxy on the same host.
The header of a peer that is no trusted proxy, and what a client wrote into it itself before
the proxy's own entry, are never believed."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.access import make_policy
from gateway.clientaddr import client_ip, parse_proxies
from harness import Chain, free_port
from protocol.errors import ConfigError

PROXY = parse_proxies(["127.0.0.1", "10.0.0.0/8"])


@pytest.mark.parametrize("peer, forwarded, client", [
    ("198.51.100.4", ["203.0.113.5"], "198.51.100.4"),  # not a proxy: its header is nothing
    ("127.0.0.1", ["203.0.113.5"], "203.0.113.5"),
    ("127.0.0.1", ["6.6.6.6, 203.0.113.5"], "203.0.113.5"),  # the client wrote 6.6.6.6
    ("127.0.0.1", ["203.0.113.5", "10.1.2.3"], "203.0.113.5"),  # two proxies, two headers
    ("::ffff:127.0.0.1", ["2001:db8::7"], "2001:db8::7"),
    ("127.0.0.1", [], "127.0.0.1"),
    ("127.0.0.1", ["unknown"], "127.0.0.1"),  # no address: the proxy's own
    ("127.0.0.1", ["203.0.113.5, junk, 10.1.2.3"], "10.1.2.3"),
])
def test_the_client_is_the_last_hop_no_trusted_proxy_vouches_for(
        peer: str, forwarded: list[str], client: str) -> None:
    assert client_ip(peer, forwarded, PROXY) == client


def test_options_that_cannot_work_are_refused() -> None:
    with pytest.raises(ConfigError, match="--trusted-proxy 'nginx'"):
        make_policy(host="127.0.0.1", port=1, proxies=["nginx"])
    with pytest.raises(ConfigError, match="what its --trusted-proxy forwards"):
        make_policy(host="127.0.0.1", port=1, auth="none", proxies=["127.0.0.1"])
    assert make_policy(host="127.0.0.1", port=1, proxies=["127.0.0.1"]).auth == "token"
    public = make_policy(host="127.0.0.1", port=1, allow_anonymous=True, proxies=["::1"])
    assert public.auth == "none" and public.public


def evaluate(chain: Chain, port: int, user: str, forwarded: str) -> tuple[int, Any]:
    return chain.http("POST", f"/home/{user}/w/c/evaluate", b'{"input": "print(1)"}',
                      headers={"X-Forwarded-For": forwarded}, port=port)


def test_visitors_behind_a_trusted_proxy_are_counted_apart(chain: Chain) -> None:
    chain.start_broker()
    chain.start_device("--max-sessions", "12")
    proxied = chain.port
    gateway = chain.start_gateway("--trusted-proxy", "127.0.0.1", "--allow-anonymous",
                                  "--log-requests")
    chain.port = free_port()  # a public gateway that trusts no proxy
    chain.start_gateway("--host", "0.0.0.0", "--allow-anonymous", name="gateway-b")
    direct = chain.port
    # One visitor's sessions (under names of its choosing) count against its own address:
    a, b = "203.0.113.5", "198.51.100.7"
    assert [evaluate(chain, proxied, f"a{i}", a)[0] for i in range(4)] == [202] * 4
    # The entry a client writes into the header itself is nothing:
    status, doc = evaluate(chain, proxied, "a4", f"6.6.6.6, {a}")
    assert status == 429 and doc["error"].startswith(
        f"quota: the visitor ip:{a} already has 4 running sessions"), doc
    assert evaluate(chain, proxied, "b0", b)[0] == 202  # another visitor behind the same proxy
    # A gateway that trusts no proxy takes no header's word: all of these are 127.0.0.1's.
    answers = [evaluate(chain, direct, f"d{i}", f"192.0.2.{i}") for i in range(5)]
    assert [s for s, _ in answers[:4]] == [202] * 4, answers
    assert answers[4][0] == 429 and answers[4][1]["error"].startswith(
        "quota: the visitor ip:127.0.0.1 already has 4 running sessions"), answers[4]
    # The access log names the client and the proxy; /metrics is for this host only.
    gateway.wait_for_log(rf"POST /home/a0/w/c/evaluate \({a} via 127\.0\.0\.1\)")
    assert chain.http("GET", "/metrics", headers={"X-Forwarded-For": a}, port=proxied)[0] == 404
    assert chain.http("GET", "/metrics", port=proxied)[0] == 200
