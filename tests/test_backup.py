"""A backup of the SQLite store taken while the system runs (README: SQLite's online backup,
``sqlite3 cellbus.db ".backup FILE"``) is a store a fresh broker carries on from: every cell
it holds answers as it did, and a cell the backup caught mid-run ends with DeviceLost, as
after a crash. A guard for the procedure the README gives; it passed as it was."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from tornado.websocket import websocket_connect

from harness import Chain, NodeProcess, until, wait_broker_answers
from test_chain_ws import read_until, send


def test_a_backup_taken_while_cells_run_restores_on_a_fresh_broker(
        running_chain: Chain, key_file: Path, tmp_path: Path,
        nodes: list[NodeProcess]) -> None:
    chain = running_chain
    for cell, code in (("1", "x = 6 * 7\nprint(x)"), ("2", "print(x + 1)\n1 / 0")):
        assert chain.evaluate(f"ann/ws/{cell}", code)[0] == 202
        chain.wait_done(f"ann/ws/{cell}")
    before = {cell: chain.update(f"ann/ws/{cell}")[1] for cell in ("1", "2")}
    streaming = "import time\nfor i in range(400):\n    print(i, flush=True); time.sleep(0.01)"
    assert chain.evaluate("bob/ws/1", streaming)[0] == 202
    for _ in range(10):  # until its first lines are stored: the backup catches it mid-run
        if chain.update("bob/ws/1", wait=5)[1]["output"]:
            break
    live = sqlite3.connect(chain.store.removeprefix("sqlite://"))
    copy = sqlite3.connect(tmp_path / "backup.db")
    with copy:
        live.backup(copy)  # what the sqlite3 shell's .backup does
    live.close()
    copy.close()

    restored = Chain(key_file, f"sqlite:///{tmp_path / 'backup.db'}", nodes)
    restored.start_broker()
    restored.start_device()
    restored.start_gateway()
    for cell in ("1", "2"):
        assert restored.update(f"ann/ws/{cell}")[1] == before[cell]
    ended = restored.wait_done("bob/ws/1")
    assert ended["status"] == "error", ended
    assert [b["ename"] for b in ended["output"].values() if b["type"] == "error"] == [
        "DeviceLost"], ended
    printed = [int(n) for n in ended["output"]["stdout_0"]["content"].split()]
    assert printed == list(range(len(printed))) and 0 < len(printed) < 400, printed
    # the restored store takes new work: the worksheet's next run starts a fresh session
    assert restored.evaluate("ann/ws/3", "print('again')")[0] == 202
    assert restored.wait_done("ann/ws/3")["output"]["stdout_0"]["content"] == "again\n"


def test_a_device_that_outlived_its_brokers_store_goes_on_with_a_restored_backup(
        chain: Chain, tmp_path: Path) -> None:
    """Tests that a device still running (another machine) when its broker is restarted on a
    backup of its store (README: Backups) goes on sending output to it, says once what the
    restored store lacks, and ends a cell that waited when the backup was taken and ran after
    it with an error, not a second run. The device had dropped the records the first broker
    confirmed after the backup, and the restored store's receipt is the backup's: before, the
    broker took every record of the device for one after a gap and asked for the lost ones
    again, the device sent what it held again at once, and so on without end (hundreds of
    'sending ... again' lines a second, nothing in the broker's log), and no cell placed on the
    device ever finished; and the waiting cell, handed to the device again, was 'answered
    here already', ignored, and stayed needs_work for good."""
    store = Path(chain.store.removeprefix("sqlite://"))
    broker = chain.start_broker()
    device = chain.start_device(name="dev")
    chain.start_gateway()
    assert chain.evaluate("ann/ws/1", "x = 6 * 7\nimport time; time.sleep(1)")[0] == 202
    assert chain.evaluate("ann/ws/2", "runs = globals().get('runs', 0) + 1")[0] == 202
    until(lambda: chain.update("ann/ws/1")[1]["status"] == "working", "cell 1 running")
    live, copy = sqlite3.connect(store), sqlite3.connect(tmp_path / "backup.db")
    with copy:
        live.backup(copy)
    live.close()
    copy.close()
    assert chain.wait_done("ann/ws/2")["status"] == "done"  # stored after the backup
    assert chain.evaluate("ann/ws/3", "print(x + 1)")[0] == 202
    assert chain.wait_done("ann/ws/3")["status"] == "done"
    broker.stop()
    (tmp_path / "backup.db").replace(store)
    broker = chain.start_broker()
    broker.wait_for_log(r"device dev registered")
    ended = chain.wait_done("ann/ws/2", timeout=10)
    assert [b["ename"] for b in ended["output"].values()] == ["OutputLost"], ended
    # running at the backup, it finished after: the store lost its end, the device lives on
    ended = chain.wait_done("ann/ws/1", timeout=10)
    errors = [b for b in ended["output"].values() if b["type"] == "error"]
    assert [b["ename"] for b in errors] == ["OutputLost"], ended
    assert "restarted" not in errors[0]["evalue"] and "lacks" in errors[0]["evalue"], errors
    assert chain.evaluate("ann/ws/4", "print(x + 2, runs)")[0] == 202  # the session lives on
    assert chain.evaluate("bob/ws/1", "print('new')")[0] == 202
    assert chain.wait_done("ann/ws/4", timeout=10)["output"]["stdout_0"]["content"] == "44 1\n"
    assert chain.wait_done("bob/ws/1", timeout=10)["output"]["stdout_0"]["content"] == "new\n"
    lines = [line for line in device.log.splitlines() if "lacks" in line]
    assert len(lines) == 1 and "WARNING" in lines[0], device.log
    assert device.log.count("unacknowledged records again") <= 2, device.log


def backup(store: Path, to: Path) -> None:
    """SQLite's online backup of ``store`` into ``to`` (what the sqlite3 shell's .backup does)."""
    live, copy = sqlite3.connect(store), sqlite3.connect(to)
    with copy:
        live.backup(copy)
    live.close()
    copy.close()


async def subscribed(chain: Chain, since: int, session: str | None) -> tuple[Any, dict]:
    """A /ws subscription to ann/ws from ``since`` (of ``session``): the socket and its
    subscribe_reply's content."""
    ws = await websocket_connect(f"ws://127.0.0.1:{chain.port}/ws")
    await send(ws, "subscribe_request", {"user": "ann", "worksheet": "ws", "since": since,
                                         **({"session": session} if session else {})})
    got = await read_until(ws, lambda m: m["msg_type"] == "subscribe_reply")
    return ws, got[-1]["content"]


async def test_clients_ahead_of_a_restored_store_get_its_new_output(
        chain: Chain, tmp_path: Path) -> None:
    """Tests that a client holding a position from after the backup point (a WebSocket's
    ``since`` and session, a socket open across the restore, a /update's ``since``) gets the
    output the restored store takes afterwards, and is told what it had seen that the store
    lacks. Before, the restored store numbered the session's new output again from the
    backup's seq: a /ws subscription from the client's since got only its subscribe_reply,
    and an open socket nothing, of a cell that printed after the restore; /update?since= of
    a cell run again after it lacked the blocks numbered up to since (its stderr line); and
    no client was told that the store lacks output it had seen (/update and /session were
    not told until page6: their answers had no ``lost``)."""
    store = Path(chain.store.removeprefix("sqlite://"))
    broker = chain.start_broker()
    chain.start_device(name="dev")
    chain.start_gateway()
    assert chain.evaluate("ann/ws/1", "print('before')")[0] == 202
    chain.wait_done("ann/ws/1")
    backup(store, tmp_path / "backup.db")
    for cell in ("2", "3", "4"):  # stored after the backup: the client saw them
        assert chain.evaluate(f"ann/ws/{cell}", f"print({cell})")[0] == 202
        chain.wait_done(f"ann/ws/{cell}")
    ws, seen = await subscribed(chain, 0, None)
    ws.close()
    ahead = chain.update("ann/ws/4")[1]["seq"]
    assert seen["seq"] >= ahead > 0, (seen, ahead)
    kept, _ = await subscribed(chain, 0, None)  # a page's socket, open across the restore
    broker.stop()
    (tmp_path / "backup.db").replace(store)
    chain.start_broker()
    wait_broker_answers(chain)
    ws, reply = await subscribed(chain, seen["seq"], seen["session"])
    assert reply["ok"] and "lost" not in seen, (seen, reply)
    # what it had seen past the backup is not in the store: said so, not skipped in silence
    assert reply["lost"]["session"] == seen["session"], reply
    assert reply["lost"]["through"] == seen["seq"] and "restored" in reply["lost"]["why"], reply
    # and so to a page that long-polls: a cell's /update past what the store has of its
    # session (its output reset) and the worksheet's /session
    status, doc = chain.update("ann/ws/1", since=ahead)
    assert status == 200 and doc["reset"], doc
    assert doc["lost"] == {**reply["lost"], "through": ahead}, doc
    assert "lost" not in chain.update("ann/ws/1")[1]  # from 0: nothing it had is missing
    notes = chain.http("GET", f"/home/ann/ws/session?since={seen['seq']}"
                              f"&session={seen['session']}")[1]
    assert notes["lost"] == reply["lost"], notes
    await send(ws, "execute_request", {"code": "print('after')"}, user="ann", worksheet="ws",
               cell_id="5")
    got = await read_until(ws, lambda m: m["msg_type"] == "execute_reply", timeout=10)
    ws.close()
    assert [m["content"]["text"] for m in got if m["msg_type"] == "stream"] == ["after\n"], got
    got = await read_until(kept, lambda m: m["msg_type"] == "execute_reply", timeout=10)
    kept.close()
    assert [m["content"]["text"] for m in got if m["msg_type"] == "stream"] == ["after\n"], got
    told = [m["content"] for m in got if m["msg_type"] == "output_lost"]
    assert told == [reply["lost"]], got  # before the new output, as soon as it is found
    assert got[0]["msg_type"] == "output_lost", got
    assert chain.update("ann/ws/5", since=ahead)[1]["output"]["stdout_0"]["content"] == \
        "after\n"
    # a /update client of cell 4 at its seq before the restore, which is run again after it
    code = ("import sys, time\nprint('e', file=sys.stderr, flush=True)\n"
            "for i in range(40): print(i, flush=True); time.sleep(0.005)")
    assert chain.evaluate("ann/ws/4", code)[0] == 202
    assert chain.wait_done("ann/ws/4")["status"] == "done"
    output = chain.update("ann/ws/4", since=ahead)[1]["output"]
    assert [b["content"] for b in output.values() if b["type"] == "text"] == [
        "e\n", "".join(f"{i}\n" for i in range(40))], output
