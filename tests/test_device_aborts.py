"""device/aborts.py: which requests stop the ones queued behind them (stop_on_error), and the
``behind`` fact (protocol/requests.py) that stays with the request, not its output."""

from __future__ import annotations

from typing import Any

from device import aborts as aborts_module
from device.aborts import Aborts
from protocol.requests import BEHIND, behind, stamp
from protocol.wire import Session


def request(msg_id: str, after: str | None = None, msg_type: str = "execute_request",
            **content: Any) -> dict[str, Any]:
    facts = {"session": "s"} if after is None else {"session": "s", BEHIND: [after]}
    return {"msg_id": msg_id, "msg_type": msg_type, "content": {"code": "x", **content},
            "metadata": {"cellbus": facts}, "header": {"msg_id": msg_id}}


def test_an_error_aborts_the_queue_behind_it_and_nothing_else() -> None:
    aborts = Aborts()
    aborts.ended("s", request("a"), failed=True)
    assert aborts.aborts("s", request("b", after="a"))
    assert aborts.aborts("s", request("c", after="b"))  # behind an aborted one: aborted too
    assert not aborts.aborts("s", request("d"))  # queued behind nothing: after the error
    assert not aborts.aborts("s", request("e", after="d"))
    assert not aborts.aborts("other", request("f", after="a"))  # another session's
    assert not aborts.aborts("s", request("g", after="a", msg_type="interact_request"))
    two = request("h")
    two["metadata"]["cellbus"][BEHIND] = ["d", "c"]  # behind either: aborted
    assert aborts.aborts("s", two)


def test_ok_silent_and_stop_on_error_false_stop_nothing() -> None:
    aborts = Aborts()
    aborts.ended("s", request("ok"), failed=False)
    aborts.ended("s", request("quiet", silent=True), failed=True)
    aborts.ended("s", request("goes-on", stop_on_error=False), failed=True)
    aborts.ended("s", request("comm", msg_type="comm_msg"), failed=True)
    for before in ("ok", "quiet", "goes-on", "comm"):
        assert not aborts.aborts("s", request(f"after-{before}", after=before)), before


def test_memory_is_bounded(monkeypatch) -> None:
    monkeypatch.setattr(aborts_module, "MAX_PER_SESSION", 2)
    monkeypatch.setattr(aborts_module, "MAX_SESSIONS", 2)
    aborts = Aborts()
    for name in ("a", "b", "c"):
        aborts.ended("s", request(name), failed=True)
    assert not aborts.aborts("s", request("x", after="a"))  # the oldest went
    assert aborts.aborts("s", request("y", after="c"))
    aborts.ended("t", request("t1"), failed=True)
    aborts.ended("u", request("u1"), failed=True)
    assert not aborts.aborts("s", request("z", after="c"))  # the least recent session went


def test_output_does_not_carry_the_requests_behind_fact() -> None:
    bus = Session(b"k" * 32)
    msg = stamp(bus, request("b", after="a"), "stream", {"name": "stdout", "text": ""},
                session="s", device="d")
    assert behind(request("b", after="a")) == ["a"]
    assert behind({"metadata": {"cellbus": {BEHIND: "a"}}}) == []  # not a list: nothing
    assert BEHIND not in msg["metadata"]["cellbus"]
