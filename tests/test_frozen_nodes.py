"""Frozen nodes (SIGSTOP, then SIGCONT): a node that stops running for a while and then goes
on, as under a debugger, a paused VM or a swap storm, is not a dead one. A broker that was
frozen itself does not take its devices for lost for the silence it slept through, and a
cell the broker ended for a frozen device keeps that one reply when the device goes on, and
the worksheet told its session is gone gets a fresh one then (tests/test_chaos.py kills nodes
instead; bench/chaos.py freezes the device)."""

from __future__ import annotations

import os
import signal
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness import Chain, NodeProcess, until

LINES = 100
CODE = (f"import time\nfor i in range({LINES}):\n    print('L', i, flush=True)\n"
        "    time.sleep(0.05)\n")


def lines_of(doc: dict[str, Any]) -> list[str]:
    return "".join(b["content"] for b in sorted(doc["output"].values(), key=lambda b: b["order"])
                   if b.get("type") == "text").splitlines()


def printing(chain: Chain, cell: str) -> None:
    """Start ``cell`` printing numbered lines and wait until its first line is stored."""
    status, reply = chain.evaluate(cell, CODE)
    assert status == 202, reply
    until(lambda: lines_of(chain.update(cell)[1]), f"the first line of {cell}")


def stdout_of(doc: dict[str, Any]) -> list[str]:
    """The lines of a cell's standard output blocks (not the notes cellbus adds on stderr)."""
    return "".join(b["content"] for b in sorted(doc["output"].values(),
                                                key=lambda b: b["order"])
                   if b.get("type") == "text" and b.get("stream") == "stdout"
                   ).splitlines()


def started(chain: Chain) -> tuple[NodeProcess, NodeProcess]:
    """A broker, a device whose idle sessions outlive the test, and a gateway."""
    broker = chain.start_broker()
    device = chain.start_device("--idle-timeout", "300")
    chain.start_gateway()
    return broker, device


def defining(chain: Chain, sleep: int, then: str | None = "print('x' in globals())") -> None:
    """Cell u/ws/1 defines x, prints a line, then sleeps ``sleep`` s; once its line is in,
    cell u/ws/2 (``then``, if any) is queued behind it."""
    status, reply = chain.evaluate("u/ws/1", "import time\nx = 1\nprint('start', flush=True)"
                                             f"\ntime.sleep({sleep})")
    assert status == 202, reply
    until(lambda: lines_of(chain.update("u/ws/1")[1]), "the first line of u/ws/1")
    if then is not None:
        status, reply = chain.evaluate("u/ws/2", then)
        assert status == 202, reply


@contextmanager
def frozen(node: NodeProcess) -> Iterator[None]:
    """SIGSTOP ``node`` for the block, and SIGCONT it after, whatever happens."""
    os.kill(node.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(node.proc.pid, signal.SIGCONT)


def test_a_broker_frozen_past_the_heartbeat_expiry_takes_no_device_for_lost(
        chain: Chain) -> None:
    """Tests that a broker stopped longer than the devices' heartbeat expiry, then continued,
    lets the running cell finish done with all its lines (it ended it with DeviceLost: the
    device's silence was the broker's own)."""
    broker, device = started(chain)
    printing(chain, "u/ws/1")
    with frozen(broker):  # until the device, which runs on, misses the broker
        device.wait_for_log(r"no word from the broker for")
    doc = chain.wait_done("u/ws/1", timeout=60)
    assert doc["status"] == "done", doc
    assert lines_of(doc) == [f"L {i}" for i in range(LINES)]
    assert "is lost" not in broker.log



def test_a_cell_ended_by_the_broker_keeps_one_reply_when_its_device_comes_back(
        chain: Chain, tmp_path: Path) -> None:
    """Tests that a device frozen until the broker takes it for lost, then continued, does
    not give the cell the broker ended with DeviceLost a second execute_reply (status ok,
    after the error): its late output is stored after the error, once, as README says, but
    a request has one reply, as a Jupyter client expects."""
    broker, device = started(chain)
    printing(chain, "u/ws/1")
    with frozen(device):
        broker.wait_for_log(r"device device0 is lost")
        ended = chain.wait_done("u/ws/1")
    assert ended["status"] == "error"
    # The device ends the frozen cell's worker before the worksheet's next cell reaches it,
    # so by that cell's end everything the old worker sent has passed the broker.
    status, reply = chain.evaluate("u/ws/2", "print('next')")
    assert status == 202, reply
    assert stdout_of(chain.wait_done("u/ws/2", timeout=60)) == ["next"]
    doc = chain.update("u/ws/1")[1]
    lines = lines_of(doc)
    assert doc["status"] == "error" and lines == [f"L {i}" for i in range(len(lines))]
    with sqlite3.connect(tmp_path / "cellbus.db") as db:
        replies = db.execute("SELECT count(*) FROM messages WHERE parent = ? AND msg_type = "
                             "'execute_reply'", (doc["request"],)).fetchone()[0]
    assert replies == 1


def test_a_worksheet_told_its_device_is_lost_runs_its_next_cells_in_a_fresh_worker(
        chain: Chain) -> None:
    """Tests that a device frozen until the broker takes it for lost, then continued, ends
    the worker of the session the worksheet was told is gone ("device lost": its variables
    with it) before the worksheet's next cells run, the one queued behind the frozen cell
    and one evaluated after, each once: they ran on the old worker, with the variables the
    user was told are gone; and the queued one, which the old worker started as the device
    went on, ran again in the new worker (its output twice) or waited for good."""
    broker, device = started(chain)
    # The first cell ends while the device is frozen (its worker runs on): as the device
    # goes on, it starts the queued one on the old worker before the broker's word comes.
    defining(chain, sleep=1)
    with frozen(device):
        broker.wait_for_log(r"device device0 is lost")
        assert chain.wait_done("u/ws/1")["status"] == "error"
    status, reply = chain.evaluate("u/ws/3", "print('x' in globals())")
    assert status == 202, reply
    for cell in ("u/ws/2", "u/ws/3"):
        try:
            doc = chain.wait_done(cell, timeout=25)
        except AssertionError as e:  # what each node said, for a failure in a whole run
            raise AssertionError(f"{e}\nbroker:\n{broker.log}\ndevice:\n{device.log}") from e
        assert doc["status"] == "done" and stdout_of(doc) == ["False"], (cell, doc)
    device.wait_for_log(r"the broker took this device for lost .* its worker is ended too")


def replies_of(db_path: Path, request: str) -> int:
    """How many execute_replies of ``request`` the store holds."""
    with sqlite3.connect(db_path) as db:
        return int(db.execute("SELECT count(*) FROM messages WHERE parent = ? AND msg_type = "
                              "'execute_reply'", (request,)).fetchone()[0])


def closed_notes(db_path: Path) -> int:
    """How many session_closed notes the store holds."""
    with sqlite3.connect(db_path) as db:
        return int(db.execute("SELECT count(*) FROM messages WHERE msg_type = "
                              "'session_closed'").fetchone()[0])


def test_a_broker_restarted_while_a_device_is_taken_for_lost_ends_its_old_workers(
        chain: Chain, tmp_path: Path) -> None:
    """Tests that what the broker decided when it took a frozen device for lost holds after
    the broker is killed (-9) and started again on the same store while the device is still
    frozen: when the device goes on, the worksheet's queued cell and a new one each run once,
    in a fresh worker (the variables the user was told are gone are gone), and the frozen
    cell keeps its one DeviceLost reply. The restarted broker has none of the first one's
    memory: it learns it from the store, as the device reports the session."""
    broker, device = started(chain)
    defining(chain, sleep=1)
    with frozen(device):
        broker.wait_for_log(r"device device0 is lost")
        first = chain.wait_done("u/ws/1")
        assert first["status"] == "error"
        until(lambda: closed_notes(tmp_path / "cellbus.db"), "the worksheet told its "
              "session is gone")  # the broker's last step for the lost device
        broker.stop(signal.SIGKILL)
        broker = chain.start_broker()
    for cell in ("u/ws/2", "u/ws/3"):
        try:
            doc = chain.wait_done(cell, timeout=25)
            assert doc["status"] == "done" and stdout_of(doc) == ["False"], (cell, doc)
            assert replies_of(tmp_path / "cellbus.db", doc["request"]) == 1, (cell, doc)
        except AssertionError as e:  # what each node said, for a failure in a whole run
            raise AssertionError(f"{e}\nbroker:\n{broker.log}\ndevice:\n{device.log}") from e
        if cell == "u/ws/2":  # the store names the fresh worker's device, as a restart reads
            with sqlite3.connect(tmp_path / "cellbus.db") as db:
                assert db.execute("SELECT device FROM sessions").fetchall() == [("device0",)]
            status, reply = chain.evaluate("u/ws/3", "print('x' in globals())")
            assert status == 202, reply
    notes = "".join(b["content"] for b in chain.update("u/ws/2")[1]["output"].values()
                    if b.get("type") == "text" and b.get("stream") == "stderr")
    assert "started a fresh worker for this session" in notes, notes
    doc = chain.update("u/ws/1")[1]
    errors = [b for b in doc["output"].values() if b["type"] == "error"]
    assert doc["status"] == "error" and [e["ename"] for e in errors] == ["DeviceLost"], doc
    assert stdout_of(doc) == ["start"], doc
    assert replies_of(tmp_path / "cellbus.db", doc["request"]) == 1
    broker.wait_for_log(r"device device0 reports session \w+, which the store has on no "
                        r"device: its worker is ended")
    # Told at its report itself, before the broker reconciles what it holds (or the queued
    # cell is taken as held by the worker that is to end).
    told = broker.log.index("device device0, taken for lost, is heard again")
    assert told < broker.log.index("device device0 registered"), broker.log


def test_a_broker_restarted_while_its_device_runs_on_leaves_the_sessions_workers(
        chain: Chain) -> None:
    """Tests that the restarted broker's rule (a reported session the store places nowhere or
    elsewhere has its worker ended) does not hit a device it never took for lost: after a
    kill -9 and a start on the same store, the worksheet's running cell ends done and its
    next cell still sees the variables of the worker it ran in."""
    broker, _ = started(chain)
    defining(chain, sleep=1, then=None)
    broker.stop(signal.SIGKILL)
    broker = chain.start_broker()
    broker.wait_for_log(r"device device0 registered")
    status, reply = chain.evaluate("u/ws/2", "print('x' in globals())")
    assert status == 202, reply
    assert chain.wait_done("u/ws/1")["status"] == "done"
    doc = chain.wait_done("u/ws/2")
    assert doc["status"] == "done" and stdout_of(doc) == ["True"], doc
    assert "which the store has on" not in broker.log


def test_a_restarted_broker_ends_the_old_worker_of_a_session_moved_to_another_device(
        chain: Chain, tmp_path: Path) -> None:
    """Tests that a session moved to another device while its first one was taken for lost
    stays there when the broker restarts and the first device goes on: the first device's
    old worker is ended (not made the session's again, as its report once did) and the
    worksheet's cells run once each in the worker on the other device. The frozen cell
    sleeps long enough to run still when it is frozen, however slow the second device is
    to start."""
    broker, first = started(chain)
    defining(chain, sleep=30, then="print('x' in globals())\ny = 2")
    chain.start_device("--idle-timeout", "300")
    broker.wait_for_log(r"device device1 registered")
    with frozen(first):
        broker.wait_for_log(r"device device0 is lost")
        assert chain.wait_done("u/ws/1")["status"] == "error"
        moved = chain.wait_done("u/ws/2")  # on device1 meanwhile
        broker.stop(signal.SIGKILL)
        broker = chain.start_broker()
        broker.wait_for_log(r"device device1 registered")
    first.wait_for_log(r"the broker took this device for lost .* its worker is ended too")
    status, reply = chain.evaluate("u/ws/3", "print('x' in globals(), 'y' in globals())")
    assert status == 202, reply
    try:
        doc = chain.wait_done("u/ws/3")
        assert doc["status"] == "done" and stdout_of(doc) == ["False True"], doc
        doc = chain.update("u/ws/2")[1]
        assert doc["status"] == "done" and stdout_of(doc) == ["False"], doc
        assert doc == moved
        assert replies_of(tmp_path / "cellbus.db", doc["request"]) == 1
    except AssertionError as e:
        raise AssertionError(f"{e}\nbroker:\n{broker.log}\ndevice0:\n{first.log}") from e
    broker.wait_for_log(r"device device0 reports session \w+, which the store has on "
                        r"device1: its worker is ended")
    with sqlite3.connect(tmp_path / "cellbus.db") as db:
        assert db.execute("SELECT device FROM sessions").fetchall() == [("device1",)]
