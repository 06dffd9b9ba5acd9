"""protocol.requests: the rules every node applies to a request (stamping, when it is
finished, how it fails), checked on real signed messages."""

from __future__ import annotations

from typing import Any

import pytest

from protocol import Session
from protocol import msgtypes as mt
from protocol.requests import (ABORTED_ERROR, RUN_REQUESTS, Ending, Endings, Outcome, failed,
                               is_idle, outcome, reply_type, stamp)

IDLE = {"execution_state": "idle"}
BUSY = {"execution_state": "busy"}
OK = {"status": "ok", "execution_count": 1}
RAISED = {"status": "error", "ename": "ZeroDivisionError", "evalue": "division by zero"}


@pytest.fixture(params=["msgpack", "json"])
def bus(request: pytest.FixtureRequest) -> Session:
    return Session(b"test-key", packer=request.param)


def request_of(bus: Session, msg_type: str = mt.EXECUTE_REQUEST,
               facts: Any = None) -> dict[str, Any]:
    facts = {"user": "ann", "worksheet": "ws", "cell_id": "5", "session": "forged",
             "device": "elsewhere"} if facts is None else facts
    return bus.msg(msg_type, {"code": "1/0"}, metadata={"cellbus": facts})


# -- finished ---------------------------------------------------------------------------


def test_outcome_reads_the_reply_status() -> None:
    """An ok reply is ok; any other names its error as "ename: evalue", with defaults."""
    assert outcome(OK) == Outcome(True, None)
    assert outcome(RAISED) == Outcome(False, "ZeroDivisionError: division by zero")
    assert outcome({"status": "aborted"}) == Outcome(False, ABORTED_ERROR)


def test_is_idle_only_for_the_idle_status() -> None:
    assert is_idle(mt.STATUS, IDLE)
    assert not is_idle(mt.STATUS, BUSY)
    assert not is_idle(mt.STREAM, IDLE)


@pytest.mark.parametrize("request_type", sorted(RUN_REQUESTS))
def test_a_run_is_finished_by_its_reply_then_idle(request_type: str) -> None:
    """Output may come between the reply and idle: the run ends at the idle, not before,
    and an idle before the reply (there is none in Jupyter's order) does not end it."""
    reply = reply_type(request_type)
    ending = Ending(request_type)
    assert ending.see(mt.STATUS, BUSY) is None
    assert ending.see(mt.STATUS, IDLE) is None and not ending.replied
    assert ending.see(reply, RAISED) is None and ending.replied
    assert ending.see(mt.STREAM, {"name": "stdout", "text": "late\n"}) is None
    assert ending.see(mt.STATUS, IDLE) == Outcome(False, "ZeroDivisionError: division by zero")


def test_a_run_takes_the_latest_reply_and_either_run_reply() -> None:
    """An interact run answered by an execute_reply (as the broker once wrote) still ends."""
    ending = Ending(mt.INTERACT_REQUEST)
    ending.see(mt.INTERACT_REPLY, RAISED)
    ending.see(mt.EXECUTE_REPLY, OK)
    assert ending.see(mt.STATUS, IDLE) == Outcome(True, None)


def test_a_run_is_not_finished_by_another_requests_reply() -> None:
    """A kernel_info_reply (or interrupt_reply) during a run is no reply to the run: the
    device would otherwise start the next cell while the broker still shows this one."""
    ending = Ending(mt.EXECUTE_REQUEST)
    for other in (mt.KERNEL_INFO_REPLY, mt.INTERRUPT_REPLY, mt.SHUTDOWN_REPLY):
        assert ending.see(other, OK) is None
    assert not ending.replied
    assert ending.see(mt.STATUS, IDLE) is None


@pytest.mark.parametrize("request_type", [mt.SHUTDOWN_REQUEST, mt.INTERRUPT_REQUEST])
def test_other_requests_are_finished_by_their_reply(request_type: str) -> None:
    ending = Ending(request_type)
    assert ending.see(mt.STATUS, IDLE) is None
    assert ending.see(reply_type(request_type), OK) == Outcome(True, None)


@pytest.mark.parametrize("request_type", sorted(mt.KERNEL_REQUEST_TYPES))
def test_a_comm_message_is_finished_by_idle_reply_or_not(request_type: str) -> None:
    """Jupyter gives comm_open/comm_msg/comm_close no reply: the kernel's idle ends them
    (and a query's reply, comm_info_request's or kernel_info_request's, which a session's
    kernel answers between busy and idle, does not end it before the idle)."""
    ending = Ending(request_type)
    assert ending.see(mt.STATUS, {"execution_state": "busy"}) is None
    assert ending.see(mt.COMM_MSG, {"comm_id": "c", "data": {}}) is None
    assert ending.see(mt.COMM_INFO_REPLY, {"status": "ok", "comms": {}}) is None
    assert ending.see(mt.STATUS, {"execution_state": "idle"}) == Outcome(True, None)


def test_endings_follow_many_runs_and_forget_each_once_finished() -> None:
    """The broker's view: interleaved runs end independently; nothing is kept for a request
    that never replied, nor after a run ended (the table cannot grow without bound)."""
    endings = Endings()
    assert endings.see("a", mt.STATUS, BUSY) is None
    assert endings.see("a", mt.STATUS, IDLE) is None
    assert endings.see("x", mt.SHUTDOWN_REPLY, OK) is None  # no run: not followed
    assert len(endings) == 0
    assert endings.see("a", mt.EXECUTE_REPLY, OK) is None
    assert endings.see("b", mt.INTERACT_REPLY, RAISED) is None
    assert len(endings) == 2
    assert endings.see("b", mt.STATUS, IDLE) == Outcome(False, "ZeroDivisionError: "
                                                               "division by zero")
    assert endings.see("a", mt.STATUS, IDLE) == Outcome(True, None)
    assert len(endings) == 0
    assert endings.see("a", mt.STATUS, IDLE) is None  # a second idle ends nothing


# -- stamping and failing ---------------------------------------------------------------


def test_stamp_speaks_for_the_session_about_the_request(bus: Session) -> None:
    """header.session and the routing facts say who speaks (whatever the request claimed);
    the request's other facts are copied, the request itself is left untouched; the result
    is a message every node verifies."""
    request = request_of(bus)
    before = dict(request["metadata"]["cellbus"])
    msg = stamp(bus, request, mt.STREAM, {"name": "stdout", "text": "x"}, session="s1",
                device="dev-1", buffers=[b"\x00"])
    assert msg["header"]["session"] == "s1" and msg["header"]["msg_type"] == mt.STREAM
    assert msg["parent_header"]["msg_id"] == request["msg_id"]
    assert msg["metadata"]["cellbus"] == {"user": "ann", "worksheet": "ws", "cell_id": "5",
                                          "session": "s1", "device": "dev-1"}
    assert request["metadata"]["cellbus"] == before
    _, back = bus.deserialize(bus.serialize(msg))
    assert back["buffers"] == [b"\x00"] and back["metadata"] == msg["metadata"]


@pytest.mark.parametrize("facts", [{}, "not a dict", None])
def test_stamp_survives_a_request_without_routing_facts(bus: Session, facts: Any) -> None:
    request = bus.msg(mt.EXECUTE_REQUEST, {}, metadata={} if facts is None else {"cellbus": facts})
    msg = stamp(bus, request, mt.STATUS, IDLE, session="", device=None)
    assert msg["metadata"]["cellbus"] == {"session": "", "device": None}


@pytest.mark.parametrize(("request_type", "expected"), [
    (mt.EXECUTE_REQUEST, mt.EXECUTE_REPLY), (mt.INTERACT_REQUEST, mt.INTERACT_REPLY),
    (mt.KERNEL_INFO_REQUEST, mt.KERNEL_INFO_REPLY), (mt.SHUTDOWN_REQUEST, mt.SHUTDOWN_REPLY),
    (mt.INTERRUPT_REQUEST, mt.INTERRUPT_REPLY), ("bogus_request", mt.EXECUTE_REPLY),
    ("", mt.EXECUTE_REPLY)])
def test_reply_type(request_type: str, expected: str) -> None:
    assert reply_type(request_type) == expected


@pytest.mark.parametrize("request_type", [mt.EXECUTE_REQUEST, mt.INTERACT_REQUEST,
                                          mt.SHUTDOWN_REQUEST])
def test_failed_is_error_failed_reply_idle_and_finishes_the_request(
        bus: Session, request_type: str) -> None:
    """Every node ends a request it cannot run with these three messages; the request's own
    ending rule takes them as its end, with the error as its outcome."""
    request = request_of(bus, request_type)
    msgs = failed(bus, request, "DeviceLost", "gone; run it again", session="s1",
                  device="dev-1")
    error = {"ename": "DeviceLost", "evalue": "gone; run it again",
             "traceback": ["DeviceLost: gone; run it again"]}
    assert [(m["msg_type"], m["content"]) for m in msgs] == [
        (mt.ERROR, error),
        (reply_type(request_type), {"status": "error", "execution_count": None, **error}),
        (mt.STATUS, IDLE)]
    assert len({m["msg_id"] for m in msgs}) == 3
    for m in msgs:
        assert m["header"]["session"] == "s1"
        assert m["parent_header"]["msg_id"] == request["msg_id"]
        assert m["metadata"]["cellbus"]["device"] == "dev-1"
        assert m["metadata"]["cellbus"]["cell_id"] == "5"
        bus.deserialize(bus.serialize(m))
    assert msgs[0]["metadata"]["cellbus"] is not msgs[1]["metadata"]["cellbus"]
    ending = Ending(request_type)
    ends = [ending.see(m["msg_type"], m["content"]) for m in msgs]
    assert Outcome(False, "DeviceLost: gone; run it again") in ends
