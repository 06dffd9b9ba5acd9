"""protocol/asked.py: the limits a request asks for, read and checked against maxima."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.asked import BadLimits, from_content, over, parse


@pytest.mark.parametrize("given,wanted", [
    ({"wall": 5, "memory": "256M", "cpu": 2}, {"wall": 5.0, "memory": 256 * 2**20, "cpu": 2.0}),
    ({"memory": "1G"}, {"memory": float(2**30)}),
    ({"memory": "512KiB"}, {"memory": 512 * 1024.0}),
    ({"memory": "1.5m"}, {"memory": float(int(1.5 * 2**20))}),
    ({"memory": 1000}, {"memory": 1000.0}),
    ({"wall": 0.5}, {"wall": 0.5}),
    ({}, {}),
])
def test_parse_reads_seconds_and_sizes(given: dict[str, Any], wanted: dict[str, float]) -> None:
    assert parse(given) == wanted


@pytest.mark.parametrize("given,words", [
    ([5], "must be an object"), ({"disk": 1}, "unknown limits disk"),
    ({"wall": 0}, "positive"), ({"cpu": -2}, "positive"), ({"wall": True}, "a number"),
    ({"wall": "5"}, "a number"), ({"memory": "lots"}, "K, M or G"),
    ({"wall": float("inf")}, "positive"), ({"memory": "-1M"}, "positive"),
])
def test_parse_says_what_is_wrong(given: Any, words: str) -> None:
    with pytest.raises(BadLimits, match=words):
        parse(given)


def test_over_names_the_maximum_and_zero_is_none() -> None:
    maxima = {"wall": 60.0, "memory": float(2**30), "cpu": 0.0}
    assert over({"wall": 60, "memory": 2**30, "cpu": 10**6}, maxima) is None
    assert "maximum of 60 s (--exec-timeout)" in (over({"wall": 61}, maxima) or "")
    assert "limits.memory 2 GiB is above this service's maximum of 1 GiB (--max-memory)" in (
        over({"memory": 2.0 * 2**30}, maxima) or "")


def test_from_content_ignores_what_the_gateway_did_not_check() -> None:
    assert from_content({"code": "1"}) == {}
    assert from_content({"limits": {"wall": "x"}}) == {}
    assert from_content({"limits": {"cpu": 3}}) == {"cpu": 3.0}
