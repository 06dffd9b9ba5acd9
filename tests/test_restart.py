"""``kill -9`` of the whole ``bin/cellbus up`` process group while cells stream output, then
``up`` again on the same store and key: nothing accepted is lost or left running forever."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from harness import Chain, NodeProcess, free_port
from test_failures import assert_gap_free

STREAM = "import time\nfor i in range(40):\n    print('{w}', i, flush=True)\n    time.sleep(0.1)"
WORKSHEETS = ("a", "b", "c")


def start_up(tmp_path: Path, port: int, nodes: list[NodeProcess]) -> NodeProcess:
    up = NodeProcess("up", "--port", str(port), "--devices", "2",
                     "--store", f"sqlite:///{tmp_path / 'up.db'}",
                     "--key-file", str(tmp_path / "bus.key"),
                     env={"XDG_RUNTIME_DIR": str(tmp_path), "TMPDIR": str(tmp_path)})
    nodes.append(up)
    up.wait_for_log(rf"cellbus is up: http://127.0.0.1:{port}/", timeout=60)
    return up


def settled(chain: Chain, cell: str, timeout: float = 60) -> dict[str, Any]:
    """The cell's document once it is done or error: it must not stay working."""
    return chain.wait_done(cell, timeout=timeout)


def test_up_killed_with_kill_9_and_restarted_on_the_same_store(
        tmp_path: Path, key_file: Path, nodes: list[NodeProcess]) -> None:
    """Tests that after kill -9 of up's process group mid-stream and a restart on the same
    store and key file: every accepted request completes or ends with a clear error, output
    seen before is still there, seqs go on without gaps or duplicates, new cells run."""
    port = free_port()
    chain = Chain(key_file, "unused", nodes)
    chain.port = port
    up = start_up(tmp_path, port, nodes)
    assert (tmp_path / "bus.key").stat().st_mode & 0o777 == 0o600
    accepted: dict[str, str] = {}
    for w in WORKSHEETS:
        for cell, code in ((f"u/{w}/1", STREAM.format(w=w)), (f"u/{w}/2", f"print('{w} after')")):
            status, reply = chain.evaluate(cell, code)
            assert status == 202, reply
            accepted[cell] = reply["msg_id"]
    seen: dict[str, str] = {}
    for w in WORKSHEETS:
        deadline = time.monotonic() + 30
        while f"{w} 3\n" not in seen.get(w, "") and time.monotonic() < deadline:
            doc = chain.update(f"u/{w}/1", wait=2)[1]
            seen[w] = doc["output"].get("stdout_0", {}).get("content", "")
        assert f"{w} 3\n" in seen[w]

    os.killpg(up.proc.pid, signal.SIGKILL)  # broker, devices, gateway and template at once
    up.proc.wait(10)
    up = start_up(tmp_path, port, nodes)

    for w in WORKSHEETS:
        first = settled(chain, f"u/{w}/1")
        assert first["request"] == accepted[f"u/{w}/1"]
        assert first["output"]["stdout_0"]["content"].startswith(seen[w])
        if first["status"] == "error":  # it was running on a device that died with `up`
            [error] = [b for b in first["output"].values() if b["type"] == "error"]
            assert error["ename"] == "DeviceLost" and "run it again" in error["evalue"]
        second = settled(chain, f"u/{w}/2")
        assert second["request"] == accepted[f"u/{w}/2"]
        assert second["status"] == "done", second
        assert second["output"]["stdout_0"]["content"] == f"{w} after\n"
    for w in WORKSHEETS:
        assert_gap_free(chain, "u", w)
    chain.evaluate("u/new/1", "print('new')")
    assert settled(chain, "u/new/1")["output"]["stdout_0"]["content"] == "new\n"
    assert up.stop(signal.SIGTERM, timeout=40) == 0
    up.wait_for_log(r"broker: store flushed and closed")


def test_restarted_broker_ends_a_cell_whose_reply_was_stored_as_its_reply_says(
        chain: Chain) -> None:
    """Tests that a cell left ``working`` by a broker killed between storing its reply (and
    the idle status after it) and marking it done ends done, with its output and no
    DeviceLost error, when its device never comes back."""
    import asyncio

    from broker.store import WORKING, SessionRecord, open_store
    from test_store_contract import execute, jmsg

    async def crashed_store() -> None:
        async with open_store(chain.store) as store:
            await store.put_session(SessionRecord("s1", "u", "ws", "gone", "open", 1.0, 1.0))
            req = await store.add_request(execute("1", session="s1", user="u"))
            await store.update_request(req.msg_id, WORKING, device="gone")
            for msg_type, content in (("status", {"execution_state": "busy"}),
                                      ("stream", {"name": "stdout", "text": "hi\n"}),
                                      ("execute_reply", {"status": "ok"}),
                                      ("status", {"execution_state": "idle"})):
                await store.append_messages([("s1", jmsg(msg_type, session="s1",
                                                         parent=req.msg_id, content=content))])

    asyncio.run(crashed_store())
    chain.start_broker()
    chain.start_gateway()
    doc = chain.wait_done("u/ws/1", timeout=30)
    assert doc["status"] == "done"
    assert [b["type"] for b in doc["output"].values()] == ["text"]
    assert doc["output"]["stdout_0"]["content"] == "hi\n"
    assert chain.broker is not None
    chain.broker.wait_for_log(r"request \w+ had ended \(done\) before the broker noted it")
