"""One broker per SQLite store, and a store file that stays (broker/store_owner.py): a second
broker started on the file a running broker uses (README's two ``up``s with their own state
directories shared the default store) stops in one line and leaves the first one's cells
alone; a broker whose file is deleted under it stops rather than accept work into it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness import CELLBUS, ROOT, Chain, NodeProcess, free_port, node_env, until

CODE = "import time\nprint('start', flush=True)\ntime.sleep(2)\nprint('end')\n"


def second_broker(chain: Chain, nodes: list[NodeProcess], store: str | None = None
                  ) -> NodeProcess:
    """A broker on ``chain``'s store (or ``store``) with endpoints of its own."""
    node = NodeProcess("broker", "--store", store or chain.store, "--key-file", chain.key_file,
                       "--curve-dir", str(chain.keys_dir),
                       *(option for name in ("gateway", "device", "publish")
                         for option in (f"--{name}-bind", f"tcp://127.0.0.1:{free_port()}")))
    nodes.append(node)
    return node


def test_a_second_broker_on_a_running_brokers_sqlite_file_stops_in_one_line(
        chain: Chain, nodes: list[NodeProcess], tmp_path: Path) -> None:
    """Tests that a broker started on the SQLite file of a running broker exits with status 2
    and one line naming the file, the running broker's pid and --store, while the first
    broker's running cell ends done (two brokers on one file number output apart and end
    each other's running cells as orphans)."""
    first = chain.start_broker()
    chain.start_device("--idle-timeout", "300")
    chain.start_gateway()
    status, reply = chain.evaluate("u/ws/1", CODE)
    assert status == 202, reply
    until(lambda: "start" in str(chain.update("u/ws/1")[1]["output"]), "the cell to start")
    second = second_broker(chain, nodes)
    assert second.proc.wait(30) == 2, second.log
    lines = [line for line in second.log.splitlines() if "in use by another broker" in line]
    path = str(tmp_path / "cellbus.db")  # the chain fixture's store
    assert len(lines) == 1 and path in lines[0] and f"pid {first.proc.pid}" in lines[0] \
        and "--store" in lines[0], second.log
    assert "Traceback" not in second.log
    doc = chain.wait_done("u/ws/1")
    assert doc["status"] == "done", doc
    assert "".join(b["content"] for b in doc["output"].values()) == "start\nend\n"


def test_a_second_broker_on_the_file_by_another_path_stops_too(
        chain: Chain, nodes: list[NodeProcess], tmp_path: Path) -> None:
    """Tests that a broker given the running broker's SQLite file by another path (a
    symbolic link to the file, as /srv/cellbus.db -> /var/lib/cellbus/cellbus.db) stops as
    on the same path: the lock was taken beside the path as given, so both ran on one file
    (SQLite follows the link to the file, and keeps its -wal beside it)."""
    first = chain.start_broker()
    chain.start_device()
    chain.start_gateway()
    assert chain.evaluate("u/ws/1", "print(1)")[0] == 202
    assert chain.wait_done("u/ws/1")["status"] == "done"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "cellbus.db").symlink_to(tmp_path / "cellbus.db")
    second = second_broker(chain, nodes, f"sqlite:///{tmp_path / 'elsewhere' / 'cellbus.db'}")
    assert second.proc.wait(30) == 2, second.log
    second.wait_for_log(rf"in use by another broker \(pid {first.proc.pid}\)")


def test_a_second_broker_on_a_hard_link_to_the_file_stops_too(
        chain: Chain, nodes: list[NodeProcess], tmp_path: Path) -> None:
    """Tests that a broker given a hard link to the running broker's SQLite file (another
    name of the same file, in another folder) stops in one line naming the running broker's
    pid. The lock beside the path found no one there, so both brokers ran on one file, each
    with a -wal and -shm of its own beside its name (neither saw the other's log, and two
    logs corrupt the file), and each took the other's running cells for orphans."""
    first = chain.start_broker()
    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / "elsewhere" / "cellbus.db"
    link.hardlink_to(tmp_path / "cellbus.db")
    second = second_broker(chain, nodes, f"sqlite:///{link}")
    started = second.wait_for_log(r"in use by another broker|broker started")
    assert started.group(0) != "broker started", second.log
    assert second.proc.wait(15) == 2, second.log
    lines = [line for line in second.log.splitlines() if "in use by another broker" in line]
    assert len(lines) == 1 and str(link) in lines[0] and f"pid {first.proc.pid}" in lines[0] \
        and "--store" in lines[0], second.log
    assert first.proc.poll() is None, first.log


def test_a_user_added_through_a_hard_link_to_a_running_brokers_store_is_refused(
        chain: Chain, tmp_path: Path) -> None:
    """Tests that ``cellbus user add`` given a hard link to the file a broker runs on stops
    with status 2 and a line naming the broker's pid and what to give instead, and that the
    same command given the broker's path adds the user. It said "added user alice", into a
    -wal of its own beside the link, which the broker never read: once the broker had
    stopped, the store had no alice."""
    broker = chain.start_broker()
    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / "elsewhere" / "cellbus.db"
    link.hardlink_to(tmp_path / "cellbus.db")

    def user_add(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CELLBUS, "user", "add", "alice", "--store", f"sqlite:///{path}"],
                              cwd=ROOT, env=node_env(None), capture_output=True, text=True,
                              timeout=60)

    refused = user_add(link)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"in use by a broker (pid {broker.proc.pid}) under another name" in refused.stderr \
        and "hard link" in refused.stderr, refused.stderr
    added = user_add(tmp_path / "cellbus.db")
    assert added.returncode == 0, added.stdout + added.stderr


def test_a_broker_killed_leaves_no_lock_behind(chain: Chain) -> None:
    """Tests that a broker started on the file of a broker that was killed (kill -9) starts:
    the hold goes with the process."""
    chain.start_broker().kill_group()
    chain.start_broker()
    assert "in use by another broker" not in chain.broker.log  # type: ignore[union-attr]


def test_a_broker_whose_store_file_is_removed_stops_instead_of_accepting_work(
        chain: Chain, tmp_path: Path) -> None:
    """Tests that a broker whose SQLite file is deleted while it runs stops with status 1
    and a line naming the file, so the gateway answers 503 instead of accepting work into a
    file that is gone with the process (it went on answering 202, and a restart found an
    empty store)."""
    broker = chain.start_broker()
    chain.start_device()
    chain.start_gateway()
    status, reply = chain.evaluate("u/ws/1", "print(1)")
    assert status == 202, reply
    chain.wait_done("u/ws/1")
    for path in tmp_path.glob("cellbus.db*"):
        if not path.name.endswith(".broker-lock"):
            path.unlink()
    assert broker.proc.wait(15) == 1, broker.log
    broker.wait_for_log(rf"store file {tmp_path / 'cellbus.db'} was removed")
    status, reply = chain.evaluate("u/ws/2", "print(2)")
    assert status == 503, reply


def test_a_broker_whose_write_ahead_log_is_removed_stops_and_keeps_what_it_took(
        chain: Chain, tmp_path: Path) -> None:
    """Tests that a broker whose store's ``-wal`` file is deleted while it runs stops with
    status 1 and a line naming the log, and that a broker started again on the store has
    every cell the first one answered 202 for, with the output stored before. It went on
    answering 202 into the deleted log, and once it was killed the store had nothing, not
    even the cells committed before the deletion (they were in the log, not checkpointed)."""
    broker = chain.start_broker()
    chain.start_device()
    chain.start_gateway()
    assert chain.evaluate("u/ws/1", "print(1)")[0] == 202
    assert chain.wait_done("u/ws/1")["output"]["stdout_0"]["content"] == "1\n"
    wal = tmp_path / "cellbus.db-wal"
    wal.unlink()
    accepted = [cell for cell in ("u/ws/2", "u/ws/3")
                if chain.evaluate(cell, "print('later')")[0] == 202]
    assert broker.proc.wait(15) == 1, broker.log
    broker.wait_for_log(rf"write-ahead log of its store, {wal}, was removed")
    chain.start_broker()
    assert chain.wait_done("u/ws/1")["output"]["stdout_0"]["content"] == "1\n"
    for cell in accepted:
        assert chain.wait_done(cell)["output"]["stdout_0"]["content"] == "later\n", cell


def test_a_broker_whose_shared_memory_index_is_removed_stops(
        chain: Chain, tmp_path: Path) -> None:
    """Tests that a broker whose store's ``-shm`` file (SQLite's index of the write-ahead
    log, shared by every process that opens the file) is deleted while it runs stops with
    status 1 and a line naming it, and that a broker started again has what the first one
    stored. It went on with the deleted index in its memory, and a ``cellbus user add`` then
    built a new one that knew nothing of the broker's: the user it said it added was gone
    from the store once the broker had stopped."""
    broker = chain.start_broker()
    chain.start_device()
    chain.start_gateway()
    assert chain.evaluate("u/ws/1", "print(1)")[0] == 202
    assert chain.wait_done("u/ws/1")["output"]["stdout_0"]["content"] == "1\n"
    shm = tmp_path / "cellbus.db-shm"
    shm.unlink()
    assert broker.proc.wait(15) == 1, broker.log
    broker.wait_for_log(rf"shared-memory index of its store, {shm}, was removed")
    chain.start_broker()
    assert chain.wait_done("u/ws/1")["output"]["stdout_0"]["content"] == "1\n"
