"""A user deletes a worksheet's runs (``DELETE /home/USER/WORKSHEET``, broker/deletion.py)
and their own permalinks (``DELETE /permalink/ID``), and what they counted against
``--user-output`` (broker/budget.py) is freed at once. Real chains: a broker on a real
SQLite file with a small quota, a real device, a gateway with ``--auth token`` on loopback;
the store's file read directly to see what it holds. What the store does (one transaction,
by owner) runs against every backend in tests/test_store_contract.py.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from typing import Any

from access_util import JSON, Answer, add_user, bearer, call, evaluate_body, store_path
from harness import Chain
from test_store_quota import CODE, QUOTA, kept_bytes

OPTIONS = ("--user-output", str(QUOTA), "--cell-output", "0")
#: A user of the chain: their name and token.
User = tuple[str, str]


def start(chain: Chain, *names: str, device: bool = True) -> list[User]:
    """The chain with a small ``--user-output`` and ``--auth token``; a user per name."""
    users = [(name, add_user(chain, name)) for name in names]
    chain.start_broker(*OPTIONS)
    if device:
        chain.start_device()
    chain.start_gateway("--auth", "token")
    return users


def ask(chain: Chain, user: User, method: str, path: str, body: str | None = None) -> Answer:
    headers = {**JSON, **bearer(user[1])} if body is not None else bearer(user[1])
    return call(chain.port, method, path, body, headers)


def evaluate(chain: Chain, user: User, cell: str, code: str = CODE) -> Answer:
    return ask(chain, user, "POST", f"/home/{user[0]}/{cell}/evaluate", evaluate_body(code))


def update(chain: Chain, user: User, cell: str, until: str = "") -> Answer:
    query = f"?wait=5&until={until}" if until else ""
    return ask(chain, user, "GET", f"/home/{user[0]}/{cell}/update{query}")


def wait_status(chain: Chain, user: User, cell: str, statuses: tuple[str, ...],
                timeout: float = 30) -> dict[str, Any]:
    """The cell's document once its status is one of ``statuses`` (long-polls, no sleeps)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = update(chain, user, cell, "done" if "done" in statuses else "change")
        if answer.status == 200 and answer.body["status"] in statuses:
            return dict(answer.body)
    raise AssertionError(f"cell {cell} never reached {statuses} within {timeout} s")


def delete(chain: Chain, user: User, path: str) -> Answer:
    return ask(chain, user, "DELETE", path)


def stored_messages(chain: Chain, user: str, worksheet: str) -> int:
    """Messages the store's file holds for the worksheet's sessions, read directly."""
    with closing(sqlite3.connect(f"file:{store_path(chain)}?mode=ro", uri=True)) as db:
        (n,) = db.execute("SELECT COUNT(*) FROM messages WHERE session IN (SELECT session "
                          "FROM sessions WHERE user = ? AND worksheet = ?)",
                          (user, worksheet)).fetchone()
    return int(n)


def test_deleting_a_worksheet_frees_the_quota_at_once_and_after_a_restart(
        chain: Chain) -> None:
    """--user-output 256 KiB: ann evaluates in worksheet ws until she is refused with 429.
    bob's DELETE of her worksheet answers 404 and deletes nothing; hers answers 200 with
    the requests and messages the store held (its idle session closed first, its worker
    told); at once her next evaluate is accepted (202), a deleted cell's /update answers
    404 as a never-run cell's does, and the worksheet runs again from scratch in a new
    session. After a broker restart (which counts from the store) she is still served."""
    ann, bob = start(chain, "ann", "bob")
    accepted = 0
    while (answer := evaluate(chain, ann, f"ws/{accepted + 1}")).status == 202:
        accepted += 1
        assert accepted < 30, "ann's requests never filled her quota"
    assert answer.status == 429, answer.body
    old = [wait_status(chain, ann, f"ws/{n}", ("done", "error")) for n in range(1, accepted + 1)]
    assert {doc["status"] for doc in old} == {"done"}
    assert ask(chain, ann, "POST", "/home/ann/ws/layout", json.dumps({"cells": [
        {"id": "1", "type": "markdown", "code": "# notes"}]})).status == 200
    messages = stored_messages(chain, "ann", "ws")
    assert messages >= 3 * accepted  # each run's echo, output status and reply at least

    refused = delete(chain, bob, "/home/ann/ws")
    assert refused.status == 404 and "nothing stored" in refused.body["error"], refused.body
    assert update(chain, ann, "ws/1").status == 200  # nothing was deleted
    never = update(chain, ann, "ws/999")  # what a cell that never ran answers
    assert never.status == 404

    deleted = delete(chain, ann, "/home/ann/ws")
    assert deleted.status == 200, deleted.body
    assert deleted.body == {"deleted": {"requests": accepted, "messages": messages},
                            "finished": []}
    assert chain.broker is not None
    chain.broker.wait_for_log(r"deleting the runs of ann/ws: closed session")
    assert evaluate(chain, ann, "other/1").status == 202  # what was refused: the quota freed
    gone = update(chain, ann, "ws/2")
    assert (gone.status, gone.body["error"]) == (never.status, "no cell 2 in worksheet ws")
    layout = ask(chain, ann, "GET", "/home/ann/ws/layout")
    assert layout.status == 200 and layout.body["cells"] is None
    assert evaluate(chain, ann, "ws/1", "print('fresh')").status == 202
    fresh = wait_status(chain, ann, "ws/1", ("done", "error"))
    assert fresh["status"] == "done" and fresh["input"] == "print('fresh')"
    assert fresh["session"] not in {doc["session"] for doc in old}
    print(f"{accepted} runs, {messages} messages deleted; ann keeps "
          f"{kept_bytes(chain, 'ann')} bytes")
    assert kept_bytes(chain, "ann") < QUOTA // 4

    chain.broker.stop()
    chain.start_broker(*OPTIONS).wait_for_log(r"device device0 registered")
    assert evaluate(chain, ann, "ws/2").status == 202  # counted from the store: room


def test_a_worksheet_with_a_running_cell_is_refused_with_409_until_it_ends(
        chain: Chain) -> None:
    """A cell of cleo's worksheet runs: DELETE answers 409 with words that say to interrupt
    or wait, and deletes nothing; interrupted, the worksheet is deleted (200)."""
    (cleo,) = start(chain, "cleo")
    # its first output ends the long-poll that waits for it to run
    running = "import time\nprint('started', flush=True)\ntime.sleep(30)"  # until interrupted
    assert evaluate(chain, cleo, "ws/1", "print(1)").status == 202
    assert wait_status(chain, cleo, "ws/1", ("done",))["status"] == "done"
    assert evaluate(chain, cleo, "ws/2", running).status == 202
    busy = delete(chain, cleo, "/home/cleo/ws")
    assert busy.status == 409, busy.body
    assert "interrupt" in busy.body["error"] and "nothing was deleted" in busy.body["error"]
    assert "(2)" in busy.body["error"]
    assert update(chain, cleo, "ws/1").status == 200
    wait_status(chain, cleo, "ws/2", ("working",))
    assert ask(chain, cleo, "POST", "/home/cleo/ws/2/interrupt", "{}").status == 202
    assert wait_status(chain, cleo, "ws/2", ("done", "error"))["status"] in ("done", "error")
    deleted = delete(chain, cleo, "/home/cleo/ws")
    assert deleted.status == 200 and deleted.body["deleted"]["requests"] == 2, deleted.body
    assert update(chain, cleo, "ws/1").status == 404
    again = delete(chain, cleo, "/home/cleo/ws")
    assert again.status == 404, again.body


def test_a_permalink_is_deleted_by_its_maker_only_which_frees_the_quota(
        chain: Chain) -> None:
    """--user-output 256 KiB: dan's permalink of 230 kB leaves no room for an evaluation
    (429). eve's DELETE of it answers 403 and it still opens; a request with no token is
    401; dan's answers 200, the link is gone (404, again 404), and his evaluation is
    accepted at once."""
    dan, eve = start(chain, "dan", "eve", device=False)
    made = ask(chain, dan, "POST", "/permalink", json.dumps({"code": "p" * 230_000}))
    assert made.status == 201, made.body
    pid = made.body["id"]
    assert evaluate(chain, dan, "ws/1").status == 429
    refused = delete(chain, eve, f"/permalink/{pid}")
    assert refused.status == 403 and "only the user who made" in refused.body["error"], refused
    assert call(chain.port, "DELETE", f"/permalink/{pid}").status == 401
    assert ask(chain, eve, "GET", f"/permalink/{pid}").body["code"] == "p" * 230_000
    deleted = delete(chain, dan, f"/permalink/{pid}")
    assert (deleted.status, deleted.body) == (200, {"deleted": pid})
    assert ask(chain, dan, "GET", f"/permalink/{pid}").status == 404
    assert delete(chain, dan, f"/permalink/{pid}").status == 404
    assert evaluate(chain, dan, "ws/1").status == 202
