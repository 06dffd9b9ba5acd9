"""Everything a user makes the broker store counts against their ``--user-output`` bytes
(broker/budget.py): the code of each request and its ``execute_input`` echo, interact
requests, layouts. Real chains: a broker on a real SQLite file with a small quota, a real
device and a gateway on loopback; the store's file read directly to see what it holds. What
the store counts runs against every backend in tests/test_store_contract.py.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from access_util import JSON, Answer, add_user, bearer, call, evaluate_body, store_path
from harness import Chain

#: A small quota (--user-output), and code of about a twelfth of it: the store keeps it twice
#: (the request, the session's execute_input), so a few runs fill it.
QUOTA = 256 * 1024
CODE = "x = 1  # " + "c" * 20_000
OPTIONS = ("--user-output", str(QUOTA), "--cell-output", "0")
#: The cell a Jupyter client's delivery positions name.
ADDRESS = ("gus", "ws", "")


def evaluate(chain: Chain, cell: str, code: str = CODE) -> Answer:
    return call(chain.port, "POST", f"/home/{cell}/evaluate", evaluate_body(code), JSON)


def kept_bytes(chain: Chain, user: str) -> int:
    """What the store holds for ``user``'s requests and their sessions' messages, read from
    its file (independently of the broker's own count)."""
    with closing(sqlite3.connect(f"file:{store_path(chain)}?mode=ro", uri=True)) as db:
        (requests,) = db.execute("SELECT COALESCE(SUM(LENGTH(message) + LENGTH(input)), 0) "
                                 "FROM requests WHERE user = ?", (user,)).fetchone()
        (messages,) = db.execute(
            "SELECT COALESCE(SUM(LENGTH(data)), 0) FROM messages WHERE session IN "
            "(SELECT session FROM sessions WHERE user = ?)", (user,)).fetchone()
    return int(requests) + int(messages)


def assert_quota_refusal(answer: Answer, what: str) -> None:
    """A 429 that names the quota, says nothing was accepted and how to free space."""
    assert answer.status == 429, (answer.status, answer.body)
    error = answer.body["error"]
    assert f"this {what}" in error and "--user-output 0.25 MiB" in error, error
    assert "nothing was accepted" in error and "Reading your worksheets still works" in error
    assert "/layout" in error and "--retention" in error, error
    assert int(answer.headers["Retry-After"]) > 0


def test_a_user_sending_requests_is_refused_at_the_quota_even_after_a_restart(
        chain: Chain) -> None:
    """--user-output 256 KiB, runs that print nothing: ann's requests are accepted until their
    code (kept twice) fills her quota, then refused with a 429 that names it; what
    the store holds for her stays within the quota (plus the echo of the last run); every
    run accepted before is kept and done; bob is served; after a broker restart (which
    reads her bytes from the store) she is still refused and bob still served."""
    chain.start_broker(*OPTIONS)
    chain.start_device()
    chain.start_gateway()
    accepted = 0
    while (answer := evaluate(chain, f"ann/ws/{accepted + 1}")).status == 202:
        accepted += 1
        assert accepted < 30, "the code of ann's requests never counted against her quota"
    assert_quota_refusal(answer, "evaluation")
    assert accepted >= 2
    assert evaluate(chain, "bob/ws/1").status == 202
    for n in range(1, accepted + 1):  # nothing accepted before was lost
        doc = chain.wait_done(f"ann/ws/{n}")
        assert doc["status"] == "done" and doc["input"] == CODE, doc
    assert chain.wait_done("bob/ws/1")["status"] == "done"
    kept = kept_bytes(chain, "ann")
    print(f"{accepted} runs accepted; ann keeps {kept} bytes of her quota of {QUOTA}")
    # each run's envelopes (headers, status, reply) are counted as the store has them only
    # at the broker's next read of the store: about 2 kB a run
    assert QUOTA - 2 * len(CODE) < kept <= QUOTA + 2048 * accepted, kept
    assert chain.broker is not None
    chain.broker.stop()
    chain.start_broker(*OPTIONS).wait_for_log(r"device device0 registered")
    assert_quota_refusal(evaluate(chain, "ann/ws/1"), "evaluation")  # a cell she ran, too
    assert chain.update("ann/ws/1")[1]["input"] == CODE  # reading still works
    assert evaluate(chain, "bob/ws/2").status == 202
    assert chain.wait_done("bob/ws/2")["status"] == "done"
    assert kept_bytes(chain, "ann") == kept


def save_layout(chain: Chain, worksheet: str, code: str) -> Answer:
    cells = [{"id": "1", "type": "code", "code": code}] if code else []
    return call(chain.port, "POST", f"/home/cleo/{worksheet}/layout",
                json.dumps({"cells": cells}), JSON)


def test_layouts_count_against_the_same_bytes_and_deleting_one_frees_them(
        chain: Chain) -> None:
    """--user-output 256 KiB: cleo's layouts of 120 kB each fill it (the third is refused
    with the quota's 429, and so is her next evaluation); her saved layouts still read back,
    a smaller layout is saved, and deleting one frees room for the third."""
    chain.start_broker(*OPTIONS)
    chain.start_gateway()
    big = "l" * 120_000
    assert save_layout(chain, "ws1", big).status == 200
    assert save_layout(chain, "ws2", big).status == 200
    assert_quota_refusal(save_layout(chain, "ws3", big), "layout")
    assert_quota_refusal(evaluate(chain, "cleo/ws1/1"), "evaluation")
    read = call(chain.port, "GET", "/home/cleo/ws1/layout")
    assert read.status == 200 and read.body["cells"][0]["code"] == big
    assert save_layout(chain, "ws1", "small").status == 200  # shrinking always works
    assert save_layout(chain, "ws2", "").status == 200  # deletes it
    assert save_layout(chain, "ws3", big).status == 200


def test_interact_requests_count_against_the_same_bytes(chain: Chain) -> None:
    """--user-output 256 KiB: dora's interact requests with 40 kB values are accepted until
    they fill her quota, then refused with the quota's 429; eva's interact runs."""
    chain.start_broker(*OPTIONS)
    chain.start_device()
    chain.start_gateway()
    seed = "@interact\ndef f(n=input_box('a')):\n    print(len(n))"
    ids = {}
    for user in ("dora", "eva"):
        assert evaluate(chain, f"{user}/ws/1", seed).status == 202
        doc = chain.wait_done(f"{user}/ws/1")
        ids[user] = next(b["interact_id"] for b in doc["output"].values()
                         if b["type"] == "interact")

    def interact(user: str, state: int) -> Answer:
        return call(chain.port, "POST", f"/home/{user}/ws/1/interact", json.dumps(
            {"interact_id": ids[user], "values": {"n": "v" * 40_000}, "state": state}), JSON)

    state = 1
    while (answer := interact("dora", state)).status == 202:
        state += 1
        assert state < 30, "dora's interact requests never counted against her quota"
    assert_quota_refusal(answer, "interact request")
    assert state > 2
    assert interact("eva", 1).status == 202


async def test_delivery_positions_count_and_a_new_one_is_refused_past_the_quota(
        tmp_path: Path) -> None:
    """--user-output 2,000 bytes, a real SQLite store: a Jupyter client's delivery positions
    of new client ids count until a new one is refused with the quota's 429, while moving a
    stored one on still works; a broker started again (counting from the store) refuses
    the next new one too."""
    from broker.budget import StoreBudget
    from broker.jupyter import JupyterKernels
    from broker.outputcap import UserBytes
    from broker.refusal import Refused
    from broker.store import open_store, sqlite_url

    def position(client: str, seq: int) -> dict[str, Any]:
        return {"content": {"client": client, "seq": seq, "session": "s" * 32}}

    async with open_store(sqlite_url(tmp_path / "cellbus.db")) as store:
        def broker() -> JupyterKernels:  # what a (re)started broker makes of the store
            return JupyterKernels(store, None, StoreBudget(2000, UserBytes(store)))  # type: ignore[arg-type]

        kernels = broker()
        stored = 0
        with pytest.raises(Refused) as refused:
            while stored < 100:
                await kernels.delivery(position(f"{stored:03d}" + "c" * 100, 1), ADDRESS)
                stored += 1
        assert refused.value.http_status == 429 and "this delivery position" in str(
            refused.value) and "--user-output" in str(refused.value)
        assert 2000 // 150 <= stored <= 2000 // 140
        await kernels.delivery(position("000" + "c" * 100, 2), ADDRESS)  # moved on
        with pytest.raises(Refused):
            await broker().delivery(position("new" + "c" * 100, 1), ADDRESS)
        assert await store.delivery("gus", "ws", "000" + "c" * 100) == ("s" * 32, 2)


def test_messages_stored_whatever_the_limits_count_and_the_echo_counts_once() -> None:
    """Tests that a reply or status counts against its user's bytes (it is stored and never
    cut), an execute_input does not (the broker counted it when it accepted the request),
    and a batch the store failed to write counts for nothing."""
    from broker.outputcap import OutputCap, UserBytes, message_size
    from protocol.wire import Session

    bus = Session(b"k" * 32)
    run = {"msg_id": "run1", "msg_type": "execute_request"}

    def out(msg_type: str, content: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return "s1", bus.msg(msg_type, content, parent=run,
                             metadata={"cellbus": {"user": "hal"}})

    echo = out("execute_input", {"code": "e" * 5000, "execution_count": 1})
    status = out("status", {"execution_state": "idle"})
    reply = out("execute_reply", {"status": "ok", "execution_count": 1})
    cap = OutputCap(cell_output=0, user_output=10**6,
                    users=UserBytes(store=None))  # type: ignore[arg-type]
    batch = [echo, status, reply]
    assert cap.screen(batch) == batch
    assert cap.users.used("hal") == message_size(status[1]) + message_size(reply[1])
    cap.forget_screened()
    assert cap.users.used("hal") == 0


def test_permalinks_count_against_the_same_bytes_of_their_owner(chain: Chain) -> None:
    """--user-output 256 KiB, --auth token: ivy's permalinks of 100 kB each count against
    her bytes, the third is refused with the quota's 429 (and GET of her links still
    works); the same code shared again stores nothing and is answered; jon is served."""
    users = {name: {**JSON, **bearer(add_user(chain, name))} for name in ("ivy", "jon")}
    chain.start_broker(*OPTIONS)
    chain.start_gateway("--auth", "token")

    def share(user: str, code: str) -> Answer:
        return call(chain.port, "POST", "/permalink", json.dumps({"code": code}), users[user])

    first = share("ivy", "a" * 100_000)
    assert first.status == 201 and share("ivy", "b" * 100_000).status == 201
    assert_quota_refusal(share("ivy", "c" * 100_000), "permalink")
    assert share("ivy", "a" * 100_000).body == first.body  # stored already: nothing added
    got = call(chain.port, "GET", f"/permalink/{first.body['id']}", headers=users["ivy"])
    assert got.status == 200 and got.body["code"] == "a" * 100_000
    assert share("jon", "c" * 100_000).status == 201
