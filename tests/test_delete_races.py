"""``DELETE /home/USER/WORKSHEET`` (broker/deletion.py) against what can happen while it runs:
requests of the same worksheet arriving (an evaluate over HTTP and over the WebSocket, a
slider's interact, a second DELETE), and the broker killed between its first write and the
last part of the messages. Real chains (a broker on a real SQLite file with a small
``--user-output``, a real device, a gateway with ``--auth token``); the interleaving is
made, not hoped for: the broker is frozen (SIGSTOP) the moment the store's file shows the
deletion's first write, the other requests reach it while it is frozen, then it goes on
(SIGCONT) or is killed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing
from functools import partial
from typing import Any

from tornado.websocket import websocket_connect

from access_util import store_path
from harness import Chain, NodeProcess
from test_chain_interact import SEED, interact_block
from test_delete_runs import (OPTIONS, User, ask, delete, evaluate, start, stored_messages,
                              update, wait_status)
from test_store_quota import QUOTA, kept_bytes

#: Messages put into the worksheet's session before it is deleted: six parts of 5,000,
#: so the deletion is still going when the test sees its first write.
LEFTOVER = 30_000


def _fill(chain: Chain, session: str, parent: str) -> None:
    """Append :data:`LEFTOVER` output messages of the run ``parent`` to ``session``, as a
    broker would have stored them (the broker is stopped meanwhile)."""
    from broker.store import open_store
    from test_store_contract import jmsg

    async def fill() -> None:
        async with open_store(chain.store) as store:
            for _ in range(LEFTOVER // 5000):
                await store.append_messages([(session, jmsg(
                    "stream", session=session, parent=parent,
                    content={"name": "stdout", "text": "line\n"})) for _ in range(5000)])

    asyncio.run(fill())


def _requests_of(chain: Chain, user: str, worksheet: str) -> int:
    with closing(sqlite3.connect(f"file:{store_path(chain)}?mode=ro", uri=True)) as db:
        (n,) = db.execute("SELECT COUNT(*) FROM requests WHERE user = ? AND worksheet = ?",
                          (user, worksheet)).fetchone()
    return int(n)


class InThread:
    """``call()`` run in a thread of its own: what it returned, or the error it raised (the
    gateway goes away when a test ends first)."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.result: list[Any] = []

        def run() -> None:
            try:
                self.result.append(call())
            except OSError as e:
                self.result.append(e)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def get(self, timeout: float = 20) -> Any:
        self.thread.join(timeout)
        assert self.result, "no answer in time"
        return self.result[0]


def _with_output(chain: Chain, user: User, worksheet: str, cell_code: str) -> dict[str, Any]:
    """Run ``cell_code`` as cell 1, stop the broker, give the run :data:`LEFTOVER` messages
    more and start the broker again: its deletion will take six parts. Cell 1's document."""
    assert evaluate(chain, user, f"{worksheet}/1", cell_code).status == 202
    first = wait_status(chain, user, f"{worksheet}/1", ("done", "error"))
    assert first["status"] == "done", first
    assert chain.broker is not None
    chain.broker.stop()
    _fill(chain, first["session"], first["request"])
    chain.start_broker(*OPTIONS).wait_for_log(r"device device0 registered")
    return first


def _frozen_mid_deletion(chain: Chain, user: User, worksheet: str) -> tuple[NodeProcess,
                                                                              InThread]:
    """Send the DELETE of the worksheet and freeze the broker (SIGSTOP) once the store's file
    shows its first write: the broker, and the DELETE, are between that and the last part."""
    broker = chain.broker
    assert broker is not None
    deleting = InThread(lambda: delete(chain, user, f"/home/{user[0]}/{worksheet}"))
    deadline = time.monotonic() + 30
    while _requests_of(chain, user[0], worksheet):  # the first write is not in the file yet
        assert time.monotonic() < deadline, "the deletion's first write never came"
    os.kill(broker.proc.pid, signal.SIGSTOP)
    assert stored_messages(chain, user[0], worksheet) > 0, \
        "the deletion ended before the broker was frozen: nothing to test"
    return broker, deleting


async def _ws_execute(chain: Chain, user: User, worksheet: str, cell_id: str,
                      code: str) -> dict[str, Any]:
    """Send an execute_request over a WebSocket; the gateway's answer to it."""
    ws = await websocket_connect(f"ws://127.0.0.1:{chain.port}/ws?token={user[1]}")
    try:
        await ws.write_message(json.dumps({
            "header": {"msg_type": "execute_request"}, "content": {"code": code},
            "metadata": {"cellbus": {"user": user[0], "worksheet": worksheet,
                                     "cell_id": cell_id}}}))
        while True:
            raw = await asyncio.wait_for(ws.read_message(), 20)
            assert isinstance(raw, str), "the socket closed"
            msg: dict[str, Any] = json.loads(raw)
            if msg.get("content", {}).get("ok") is not None:
                return msg
    finally:
        ws.close()


def _queued(endpoint: str) -> int:
    """Bytes waiting in the kernel to be read by whoever listens on ``endpoint``
    (``tcp://127.0.0.1:PORT``), on its established connections."""
    port = int(endpoint.rsplit(":", 1)[1])
    total = 0
    with open("/proc/net/tcp") as table:
        for line in list(table)[1:]:
            fields = line.split()
            local, state, queues = fields[1], fields[3], fields[4]
            if int(local.split(":")[1], 16) == port and state == "01":
                total += int(queues.split(":")[1], 16)
    return total


def _reaching(chain: Chain, call: Callable[[], Any]) -> InThread:
    """``call()`` in a thread, once its request is at the frozen broker's door: the bytes
    waiting on the broker's gateway socket grew (nothing else is sent to it meanwhile with
    ``--auth none``), so the next request arrives after it."""
    before = _queued(chain.gateway_ep)
    sent = InThread(call)
    deadline = time.monotonic() + 10
    while _queued(chain.gateway_ep) <= before:
        assert time.monotonic() < deadline, "the request never reached the broker's socket"
    return sent


def test_requests_that_reach_a_broker_mid_deletion_run_after_it_or_are_refused(
        chain: Chain) -> None:
    """ann's worksheet ws ran an @interact (cell 1). Her DELETE of it is between its first
    write and its last part, the broker frozen there; meanwhile, in this order, an evaluate
    of cell 2 over HTTP, one of cell 3 over the WebSocket (which runs until interrupted), a
    move of cell 1's slider and a second DELETE reach it. Resumed, in that order: the
    DELETE answers 200 with cell 1's run; both evaluates are accepted and run, to their
    output, in one fresh session (not in the one deleted, and not lost to the deletion);
    the slider's move is 404 (its cell is gone), not accepted for nothing; the second
    DELETE is 409 (cell 3 runs, cell 2 may still) and deletes nothing."""
    chain.start_broker(*OPTIONS)  # --auth none: no token check waits for the frozen broker
    chain.start_device()
    chain.start_gateway()
    ann = ("ann", "")
    first = _with_output(chain, ann, "ws", SEED)
    slider = interact_block(first)["interact_id"]
    broker, deleting = _frozen_mid_deletion(chain, ann, "ws")
    running = "import time\nprint('three', flush=True)\ntime.sleep(30)"
    by_http = _reaching(chain, lambda: evaluate(chain, ann, "ws/2", "print('two')"))
    by_ws = _reaching(chain, lambda: asyncio.run(_ws_execute(chain, ann, "ws", "3", running)))
    moved = _reaching(chain, lambda: ask(chain, ann, "POST", "/home/ann/ws/1/interact",
                                         json.dumps({"interact_id": slider,
                                                     "values": {"n": 5}, "state": 1})))
    again = _reaching(chain, lambda: delete(chain, ann, "/home/ann/ws"))
    os.kill(broker.proc.pid, signal.SIGCONT)

    deleted = deleting.get()
    assert deleted.status == 200 and deleted.body["deleted"]["requests"] == 1, deleted.body
    assert by_http.get().status == 202, by_http.get().body
    assert by_ws.get()["content"]["ok"] is True, by_ws.get()
    assert moved.get().status == 404, moved.get().body
    assert again.get().status == 409 and "3)" in again.get().body["error"], again.get().body
    two = wait_status(chain, ann, "ws/2", ("done", "error"))
    three = wait_status(chain, ann, "ws/3", ("working",))
    while "three" not in str(three["output"]):
        three = wait_status(chain, ann, "ws/3", ("working",))
    assert "two" in str(two["output"]), two
    assert two["session"] == three["session"] != first["session"]
    assert update(chain, ann, "ws/1").status == 404
    assert ask(chain, ann, "POST", "/home/ann/ws/3/interrupt", "{}").status == 202
    assert wait_status(chain, ann, "ws/3", ("done", "error"))["status"] in ("done", "error")


def _start_anonymous(chain: Chain) -> User:
    """The chain with ``--auth none`` (no token check waits for a frozen broker) and
    ``--user-output``; ann, a name in the URL."""
    chain.start_broker(*OPTIONS)
    chain.start_device()
    chain.start_gateway()
    return ("ann", "")


def test_two_deletes_at_once_delete_once_and_free_the_bytes(chain: Chain) -> None:
    """A second DELETE of ann's worksheet reaches the broker while the first is frozen
    between its first write and its last part: the first answers 200, the second 404 (there
    is nothing left); what ann keeps is counted without the deleted runs, so an evaluate
    past her quota before is accepted."""
    ann = _start_anonymous(chain)
    _with_output(chain, ann, "ws", "print(1)")
    assert evaluate(chain, ann, "other/1").status == 429
    broker, deleting = _frozen_mid_deletion(chain, ann, "ws")
    again = _reaching(chain, lambda: delete(chain, ann, "/home/ann/ws"))
    os.kill(broker.proc.pid, signal.SIGCONT)
    assert deleting.get().status == 200, deleting.get().body
    assert again.get().status == 404, again.get().body
    assert kept_bytes(chain, "ann") < QUOTA // 4
    assert evaluate(chain, ann, "other/1").status == 202


def test_an_answer_to_a_prompt_and_a_delete_in_either_order(chain: Chain) -> None:
    """Cell 1 waits on input(). The broker is frozen; a DELETE of the worksheet then the
    answer reach it: the DELETE is 409 (the cell runs) and deletes nothing, the answer is
    taken and the cell ends with it. Cell 2 does the same, the answer first this time, and
    then runs on: the answer is taken, the DELETE is 409, the cell shows the answer."""
    ann = _start_anonymous(chain)
    broker = chain.broker
    assert broker is not None
    for cell, code in (("1", "print('hi', input('who? '))"),
                       ("2", "import time\nprint('hi', input('who? '), flush=True)\n"
                             "time.sleep(30)")):
        assert evaluate(chain, ann, f"ws/{cell}", code).status == 202
        prompted = wait_status(chain, ann, f"ws/{cell}", ("working",))
        while not any(b["type"] == "input" for b in prompted["output"].values()):
            prompted = wait_status(chain, ann, f"ws/{cell}", ("working",))
        answering = partial(ask, chain, ann, "POST", f"/home/ann/ws/{cell}/input",
                            json.dumps({"value": f"ann{cell}"}))
        deleting = partial(delete, chain, ann, "/home/ann/ws")
        os.kill(broker.proc.pid, signal.SIGSTOP)
        first, second = (deleting, answering) if cell == "1" else (answering, deleting)
        sent = [_reaching(chain, first), _reaching(chain, second)]
        os.kill(broker.proc.pid, signal.SIGCONT)
        refused, answered = sent if cell == "1" else sent[::-1]
        assert refused.get().status == 409, refused.get().body
        assert answered.get().status == 202, answered.get().body
        doc = wait_status(chain, ann, f"ws/{cell}", ("done", "error", "working"))
        while f"hi ann{cell}" not in str(doc["output"]):
            assert doc["status"] == "working" or cell == "1", doc
            doc = wait_status(chain, ann, f"ws/{cell}", ("done", "error", "working"))
    assert update(chain, ann, "ws/1").body["status"] == "done"
    assert ask(chain, ann, "POST", "/home/ann/ws/2/interrupt", "{}").status == 202


def test_a_broker_killed_mid_deletion_finishes_it_at_its_next_start(chain: Chain) -> None:
    """ann's worksheet ws ran ``x = 41`` and holds 30,000 messages (about 10 MiB, over her
    256 KiB quota). Her DELETE is under way: its first write (requests, layout, positions)
    is in the store's file, the messages' parts are not all done, and the broker is frozen
    there, then killed with SIGKILL. After a restart the worksheet is one never run, whole:
    none of its messages is left, its session is not open (her next cell runs in a fresh
    session, where ``x`` is undefined), its old worker is ended once the device reports it
    (not left holding a place until the device's --idle-timeout), and what she keeps is
    counted without them (that evaluate is accepted, not refused with 429)."""
    (ann,) = start(chain, "ann")
    first = _with_output(chain, ann, "ws", "x = 41")
    assert kept_bytes(chain, "ann") > QUOTA
    broker, deleting = _frozen_mid_deletion(chain, ann, "ws")
    left = stored_messages(chain, "ann", "ws")
    broker.stop(signal.SIGKILL)

    broker = chain.start_broker(*OPTIONS)
    broker.wait_for_log(r"device device0 registered")
    broker.wait_for_log(r"deletion of the runs of ann/ws was stopped mid-way; finished now")
    broker.wait_for_log(rf"device device0 reports session {first['session']}, which the store "
                        r"has on no device: its worker is ended")
    assert stored_messages(chain, "ann", "ws") == 0
    assert kept_bytes(chain, "ann") < QUOTA // 4
    again = evaluate(chain, ann, "ws/1", "print(globals().get('x'))")
    assert again.status == 202, again.body
    fresh = wait_status(chain, ann, "ws/1", ("done", "error"))
    assert fresh["status"] == "done", fresh
    assert fresh["session"] != first["session"]
    assert "None" in str(fresh["output"]), fresh["output"]
    assert not any(getattr(a, "status", None) == 200 for a in deleting.result)
    print(f"{left} of {LEFTOVER} messages were left when the broker was killed")
