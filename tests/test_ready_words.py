"""What the gateway's /ready tells a load balancer, and its log the operator, while the
deployment is not ready: the problem as it is (a device that is registered but silent is not
"no device is registered"), and one access line per change of the answer, with its reason,
not an unexplained ERROR line per probe."""

from __future__ import annotations

import os
import re
import signal

from harness import Chain, until


def ready_lines(chain: Chain) -> list[str]:
    """The gateway's access lines for /ready."""
    assert chain.gateway is not None
    return [line for line in chain.gateway.log.splitlines() if " GET /ready " in line]


def test_a_frozen_device_is_named_silent_not_unregistered(chain: Chain) -> None:
    """Tests that /ready of a deployment whose only device is frozen (SIGSTOP) names that
    device and how long it has been silent, where before it said "no device is registered
    with the broker" (status listed it, 'no (6.1 s silent)'), and is ready again once it
    goes on."""
    chain.start_broker()
    device = chain.start_device(name="gpu1")
    chain.start_gateway()
    assert chain.http("GET", "/ready")[0] == 200
    os.killpg(device.proc.pid, signal.SIGSTOP)
    try:
        status, ready = until(lambda: (got := chain.http("GET", "/ready"))[0] == 503 and got,
                              "/ready to say 503", timeout=15)
    finally:
        os.killpg(device.proc.pid, signal.SIGCONT)
    assert ready["devices"] == 0, ready
    assert not any("registered" in p for p in ready["problems"]), ready
    assert any(re.match(r"devices: no live device: gpu1 silent for [\d.]+ s", p)
               for p in ready["problems"]), ready
    until(lambda: chain.http("GET", "/ready")[0] == 200, "/ready to say 200 again", timeout=20)


def test_probes_while_not_ready_are_one_line_with_the_reason(chain: Chain) -> None:
    """Tests that /ready probed again and again with no device logs one access line, which
    says why (before: an ERROR line per probe, '503 GET /ready (127.0.0.1) 2.80ms', with
    no reason), and a line again once the answer changes."""
    chain.start_broker()
    chain.start_gateway()
    for _ in range(4):
        status, ready = chain.http("GET", "/ready")
        assert status == 503 and ready["problems"] == [
            "devices: no device is registered with the broker"], ready
    lines = until(lambda: ready_lines(chain), "the /ready access line")
    assert len(lines) == 1, lines
    assert lines[0].endswith(": devices: no device is registered with the broker"), lines
    chain.start_device()
    assert chain.http("GET", "/ready")[0] == 200
    lines = until(lambda: len(got := ready_lines(chain)) == 2 and got, "the line of 200")
    assert re.search(r" INFO 200 GET /ready .*: ready again$", lines[1]), lines


def test_a_broker_that_is_gone_is_named_by_the_link_that_is_down(chain: Chain) -> None:
    """Tests that /ready with the broker stopped says the gateway has no link to it at its
    endpoint and asks whether a broker runs there (before: 'broker: the broker is not
    reachable', where status said 'nothing listens there: is the broker running...')."""
    broker = chain.start_broker()
    chain.start_device()
    chain.start_gateway()
    assert chain.http("GET", "/ready")[0] == 200
    broker.stop()
    assert chain.gateway is not None
    chain.gateway.wait_for_log(r"lost its link to the broker at " + re.escape(chain.gateway_ep))
    status, ready = chain.http("GET", "/ready")
    assert status == 503, ready
    assert ready["problems"] == [
        f"broker: the broker is not reachable (this gateway has no link to it at "
        f"{chain.gateway_ep}: is a broker running there, with this as its --gateway-bind, and "
        "is its port open to this host?)"
    ], ready


def test_only_clients_on_the_gateways_machine_get_the_problems_words(chain: Chain) -> None:
    """Tests that /ready, asked through a trusted proxy for a client elsewhere (a public
    gateway's visitor, anyone on the internet), says 503 and which part is not ready, but
    not the words that name the broker's endpoint (internal addresses and ports), devices
    and keys, which the gateway's own machine (and its log) still gets, as for /metrics.
    Before, anyone who could reach a gateway read its deployment's layout there."""
    broker = chain.start_broker()
    chain.start_device()
    gateway = chain.start_gateway("--trusted-proxy", "127.0.0.1", "--allow-anonymous")
    broker.stop()
    gateway.wait_for_log(r"lost its link to the broker at " + re.escape(chain.gateway_ep))
    elsewhere = {"X-Forwarded-For": "203.0.113.5"}
    status, ready = chain.http("GET", "/ready", headers=elsewhere)
    assert status == 503 and ready["ready"] is False, ready
    assert [p.split(":")[0] for p in ready["problems"]] == ["broker"], ready
    assert chain.gateway_ep not in str(ready), ready
    status, ready = chain.http("GET", "/ready")
    assert status == 503 and chain.gateway_ep in ready["problems"][0], ready
