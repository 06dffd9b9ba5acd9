"""Log lines a peer's messages cause are bounded (protocol/ratelog.py): a flood of bad
messages from one peer is one line per interval with a count, and many made-up peers get at
most a burst of lines per interval; over a real broker, a flood of badly signed messages is
one line."""

from __future__ import annotations

import logging

import pytest

from harness import BusClient, Chain
from protocol.ratelog import RateLog, routing_id
from protocol.wire import Session


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "test.ratelog"]


def test_one_line_per_key_per_interval_with_the_count(caplog: pytest.LogCaptureFixture) -> None:
    """Tests that a key's first line is logged at once, the next ones within the interval
    are counted, and the first after it says how many were left out."""
    clock = Clock()
    log = RateLog(logging.getLogger("test.ratelog"), interval=10, burst=5, clock=clock)
    with caplog.at_level(logging.INFO, "test.ratelog"):
        assert log.warning(("p", "signature"), "dropped %d", 1)
        for i in range(500):
            assert not log.warning(("p", "signature"), "dropped %d", i)
        assert log.warning(("p", "replay"), "replayed")  # another reason: its own key
        clock.now += 10
        assert log.warning(("p", "signature"), "dropped %d", 2)
    assert lines(caplog) == ["dropped 1", "replayed",
                             "dropped 2 (500 more like it since its last line)"]


def test_made_up_keys_get_a_burst_of_lines(caplog: pytest.LogCaptureFixture) -> None:
    """Tests that 10,000 keys in one interval get ``burst`` lines, that the next line
    counts the rest, and that the table of keys stays bounded."""
    clock = Clock()
    log = RateLog(logging.getLogger("test.ratelog"), interval=10, burst=5, max_keys=50,
                  clock=clock)
    with caplog.at_level(logging.INFO, "test.ratelog"):
        for i in range(10_000):
            log.info(i, "peer %d", i)
            if i % 1000 == 999:
                clock.now += 10
    got = lines(caplog)
    assert len(got) == 50, got  # 5 per interval, 10 intervals
    assert got[5] == "peer 1000 (995 other lines left out (at most 5 per 10 s))"
    assert len(log.keys) <= 50


def test_routing_id() -> None:
    assert routing_id([b"\x00ab", b"<IDS|MSG>", b"sig"]) == "006162"
    assert routing_id([b"dev-a", b"<IDS|MSG>", b"sig"]) == "'dev-a'"  # a device's --device-id
    assert routing_id([b"a b\n", b"<IDS|MSG>", b"sig"]) == "6120620a"  # nothing that splits a line
    assert routing_id([b"<IDS|MSG>", b"sig"]) == ""
    assert routing_id([b"garbage"]) == ""


def test_a_flood_of_bad_signatures_is_one_line(chain: Chain, key: bytes) -> None:
    """Tests that 300 messages signed with another key, from one peer of the broker's
    gateway port, are dropped with one log line (a count in the metrics for each), and that
    the broker goes on answering that peer's good messages."""
    chain.start_broker()
    client = BusClient(key, connect=chain.gateway_ep, keys=chain.client_keys("gw", "gateway"))
    forger = Session(b"another key")
    try:
        for i in range(300):
            client.sock.send_multipart(forger.serialize(forger.msg(
                "kernels_request", {}, metadata={"cellbus": {"n": i}})))
        asked = client.request("kernels_request", {}, None, user="", worksheet="",
                               cell_id="", auth="none")
        client.wait_for(lambda m: m["parent_header"].get("msg_id") == asked["msg_id"])
        dropped = [line for line in chain.broker.log.splitlines()
                   if "dropped a message" in line]
        assert len(dropped) == 1, dropped
        assert "signature" in dropped[0] and "from peer " in dropped[0]
    finally:
        client.close()
