"""Placement, capacity, crowds, restart and ``bin/cellbus status`` over the whole chain.

Real processes on loopback: a crowd of 100 new sessions against one small device gets each
its session or a clear 503 with Retry-After, and every node survives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tornado.websocket import websocket_connect

from harness import (Chain, FakeDevice, NodeProcess, cellbus_status, chain_status, free_port,
                     http_with_headers, wait_gateway_linked)

QUICK = "print(6 * 7)"
#: Open files each node may have in the crowd test (the soft limit; workers set their own).
NODE_FD_LIMIT = 256


@contextlib.contextmanager
def fd_limit(n: int) -> Iterator[None]:
    """Processes started inside inherit a soft RLIMIT_NOFILE of ``n``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, soft), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def status_json(chain: Chain) -> dict[str, Any]:
    done = chain_status(chain, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def settled_sessions(chain: Chain, total: int, timeout: float = 20) -> dict[str, int]:
    """Sessions per device once the devices' own reports list ``total`` of them."""
    deadline = time.monotonic() + timeout
    while True:
        devices = status_json(chain)["devices"]
        counts = {d["device"]: len([s for s in d["sessions"] if not s["starting"]])
                  for d in devices}
        if sum(counts.values()) == total or time.monotonic() > deadline:
            return counts
        time.sleep(0.3)


def wait_load(chain: Chain, device: str, load: int, timeout: float = 10) -> None:
    """Until the broker has taken ``device``'s report of ``load``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(d["device"] == device and d["load"] == load
               for d in status_json(chain)["devices"]):
            return
        time.sleep(0.1)
    raise AssertionError(f"the broker never saw {device} report load {load}")


def fds_and_rss(node: NodeProcess) -> str:
    """Open files and resident memory of a node process, for the log of a test."""
    fds = len(list(Path(f"/proc/{node.proc.pid}/fd").iterdir()))
    rss = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{node.proc.pid}/status").read_text())
    return f"{fds} fds, {int(rss.group(1)) // 1024 if rss else '?'} MiB"


def evaluate(chain: Chain, cell: str, code: str) -> tuple[int, dict[str, str], Any]:
    return http_with_headers(chain, "POST", f"/home/{cell}/evaluate",
                             json.dumps({"input": code}).encode())


def assert_clear_503(status: int, headers: dict[str, str], body: Any) -> int:
    """A capacity refusal: 503, Retry-After N, and the error says to retry in N s."""
    assert status == 503, (status, body)
    seconds = int(headers["Retry-After"])
    assert 1 <= seconds <= 30
    assert body == {"error": f"at capacity, retry in {seconds} s"}
    return seconds


def test_new_sessions_spread_over_two_devices(chain: Chain) -> None:
    """20 worksheets arriving together: 10 sessions each way, give or take 2."""
    chain.start_broker()
    chain.start_device(name="east")
    chain.start_device(name="west")
    chain.start_gateway()
    cells = [f"u{i}/ws/1" for i in range(20)]
    with ThreadPoolExecutor(10) as pool:
        accepted = list(pool.map(lambda c: chain.evaluate(c, QUICK)[0], cells))
    assert accepted == [202] * 20
    for cell in cells:
        doc = chain.wait_done(cell)
        assert doc["status"] == "done" and doc["output"]["stdout_0"]["content"] == "42\n"
    counts = settled_sessions(chain, 20)
    assert sorted(counts) == ["east", "west"]
    assert sum(counts.values()) == 20 and all(8 <= n <= 12 for n in counts.values()), counts


def test_a_crowd_gets_its_sessions_in_turn_or_a_clear_503(chain: Chain) -> None:
    """100 new sessions at once against one device with room for 4: every request finishes or
    is told to retry (503, Retry-After); no node runs out of files or dies; and refused
    clients that come back after Retry-After get their session."""
    with fd_limit(NODE_FD_LIMIT):
        chain.start_broker()
        chain.start_device("--max-sessions", "4", "--idle-timeout", "1", name="small")
        chain.start_gateway()
    for node in chain.nodes:  # the gateway raises its own to the hard limit at start
        limits = Path(f"/proc/{node.proc.pid}/limits").read_text()
        if node is chain.gateway:
            soft, hard = re.search(r"Max open files\s+(\d+)\s+(\d+)", limits).groups()
            assert soft == hard, limits
        else:
            assert re.search(rf"Max open files\s+{NODE_FD_LIMIT}\s", limits), limits
    crowd = 100
    gate = threading.Barrier(crowd)

    def student(i: int) -> tuple[str, Any]:
        cell = f"student{i}/ws/1"
        gate.wait()
        status, headers, body = evaluate(chain, cell, f"print({i})")
        if status == 202:
            doc = chain.wait_done(cell, timeout=60)
            ok = doc["status"] == "done" and doc["output"]["stdout_0"]["content"] == f"{i}\n"
            return ("done" if ok else "failed", doc)
        return ("refused", assert_clear_503(status, headers, body))

    started = time.monotonic()
    with ThreadPoolExecutor(crowd) as pool:
        outcomes = list(pool.map(student, range(crowd)))
    took = time.monotonic() - started
    done = [i for i, (kind, _) in enumerate(outcomes) if kind == "done"]
    refused = [i for i, (kind, _) in enumerate(outcomes) if kind == "refused"]
    print(f"\ncrowd of {crowd}: {len(done)} done, {len(refused)} refused with 503, "
          f"{took:.1f} s; " + ", ".join(f"{n.argv[1]} {fds_and_rss(n)}" for n in chain.nodes))
    assert len(done) + len(refused) == crowd, [o for o in outcomes if o[0] == "failed"]
    assert 4 <= len(done) and refused

    # Some of the refused come back as told, again and again if need be: each gets its turn.
    comeback = refused[:6]

    def again(i: int) -> float:
        wait = outcomes[i][1]
        first = time.monotonic()
        while True:
            time.sleep(wait)
            status, headers, body = evaluate(chain, f"student{i}/ws/1", f"print({i})")
            if status == 202:
                assert chain.wait_done(f"student{i}/ws/1")["status"] == "done"
                return time.monotonic() - first
            wait = assert_clear_503(status, headers, body)

    with ThreadPoolExecutor(len(comeback)) as pool:
        waited = list(pool.map(again, comeback))
    print(f"{len(comeback)} refused students came back after Retry-After; all done within "
          f"{max(waited):.1f} s")
    for node in chain.nodes:
        assert node.proc.poll() is None, node.log
        assert "Too many open files" not in node.log
        assert "Traceback" not in node.log
    assert "AtCapacity" not in chain.devices[0].log  # the broker never overfilled the device


def test_queued_sessions_wait_for_room_in_turn(chain: Chain) -> None:
    """Accepted while no device ran, 5 new sessions meet a device with room for 2: they run
    two at a time as places free up, none refused by the device."""
    chain.start_broker()
    chain.start_gateway()
    wait_gateway_linked(chain)
    cells = [f"q{i}/ws/1" for i in range(5)]
    for i, cell in enumerate(cells):
        status, body = chain.evaluate(cell, f"print({i})")
        assert status == 202, body
    chain.start_device("--max-sessions", "2", "--idle-timeout", "0.5", name="tiny")
    for i, cell in enumerate(cells):
        doc = chain.wait_done(cell, timeout=40)
        assert doc["status"] == "done" and doc["output"]["stdout_0"]["content"] == f"{i}\n"
    assert "AtCapacity" not in chain.devices[0].log
    chain.broker.wait_for_log(r"sessions wait for a free place")


def test_full_devices_refuse_new_sessions_but_never_existing_ones(
        chain: Chain, key: bytes) -> None:
    """A scripted device: full, it gets no new session (503) but every request of the
    sessions it runs; its own AtCapacity refusal ends the cell with an error that says to
    retry."""
    chain.start_broker()
    chain.start_gateway()
    fake = FakeDevice(key, chain, "fake")
    try:
        fake.report("device_register", capacity=2, load=0)
        chain.broker.wait_for_log(r"device fake registered")
        assert chain.evaluate("a/ws/1", "x = 1")[0] == 202
        first = fake.next_request()
        session = first["metadata"]["cellbus"]["session"]
        fake.answer(first, ("status", {"execution_state": "busy"}),
                    ("execute_reply", {"status": "ok", "execution_count": 1}),
                    ("status", {"execution_state": "idle"}))
        fake.report(capacity=2, load=2, sessions=[session, "someone-else"])
        assert chain.wait_done("a/ws/1")["status"] == "done"
        wait_load(chain, "fake", 2)

        assert_clear_503(*evaluate(chain, "b/ws/1", QUICK))
        assert chain.update("b/ws/1")[0] == 404  # nothing was stored for it
        assert chain.evaluate("a/ws/2", "print(x)")[0] == 202  # its session runs there
        assert fake.next_request()["metadata"]["cellbus"]["session"] == session

        fake.report(capacity=2, load=1, sessions=[session])  # a place frees up ...
        wait_load(chain, "fake", 1)
        assert chain.evaluate("c/ws/1", QUICK)[0] == 202
        raced = fake.next_request()
        error = {"ename": "AtCapacity", "evalue": "device fake runs 2 sessions, its limit",
                 "traceback": ["AtCapacity: device fake runs 2 sessions, its limit"]}
        fake.answer(raced, ("error", error),  # ... but the device filled it meanwhile
                    ("execute_reply", {"status": "error", "execution_count": None, **error}),
                    ("status", {"execution_state": "idle"}))
        doc = chain.wait_done("c/ws/1")
        assert doc["status"] == "error"
        block = doc["output"]["error_0"]
        assert block["ename"] == "AtCapacity"
        assert re.search(r"run the cell again in \d+ s", block["evalue"])
    finally:
        fake.close()


def test_restart_gives_the_worksheet_a_fresh_session(shared_chain: Chain) -> None:
    chain = shared_chain
    chain.evaluate("u/ws/1", "x = 1")
    before = chain.wait_done("u/ws/1")
    status, body = chain.http("POST", "/home/u/ws/1/restart", b"")
    assert status == 202 and body == {"cell_id": "1", "status": "restarted",
                                      "closed": before["session"]}
    chain.evaluate("u/ws/2", "print(x)")
    after = chain.wait_done("u/ws/2")
    assert after["output"]["error_0"]["ename"] == "NameError"
    assert after["session"] != before["session"]
    chain.devices[0].wait_for_log(rf"session {before['session']} closed")
    assert chain.http("POST", "/home/nobody/ws/1/restart", b"") == (
        202, {"cell_id": "1", "status": "restarted", "closed": None})

    async def over_websocket() -> dict[str, Any]:
        ws = await websocket_connect(f"ws://127.0.0.1:{chain.port}/ws")
        try:
            await ws.write_message(json.dumps({
                "header": {"msg_type": "restart_request"}, "content": {},
                "metadata": {"cellbus": {"user": "u", "worksheet": "ws", "cell_id": "2"}}}))
            async with asyncio.timeout(10):
                while True:
                    msg = json.loads(await ws.read_message())
                    if msg["msg_type"] == "request_accepted":
                        return msg["content"]
        finally:
            ws.close()
            async with asyncio.timeout(5):
                while await ws.read_message() is not None:  # the closing handshake
                    pass

    reply = asyncio.run(over_websocket())
    assert reply["ok"] and reply["closed"] == after["session"]
    chain.evaluate("u/ws/3", "print(globals().get('x', 'fresh'))")
    again = chain.wait_done("u/ws/3")
    assert again["output"]["stdout_0"]["content"] == "fresh\n"
    assert again["session"] not in (before["session"], after["session"])


def test_status_shows_devices_sessions_and_waiting_requests(chain: Chain) -> None:
    chain.start_broker()
    chain.start_gateway()
    wait_gateway_linked(chain)
    assert chain.evaluate("w/ws/1", QUICK)[0] == 202  # no device yet: it waits
    out = chain_status(chain)
    assert out.returncode == 3, out.stderr  # the broker answered; not ready: no device
    assert "(no device has registered)" in out.stdout
    assert "requests waiting (needs_work): 1" in out.stdout
    chain.start_device("--max-sessions", "3", name="solo")
    chain.wait_done("w/ws/1")
    settled_sessions(chain, 1)
    out = chain_status(chain, "--sessions")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[1].split() == ["DEVICE", "ALIVE", "CAPACITY", "LOAD", "FREE", "SESSIONS",
                                "REJECTED"]
    assert lines[2].split() == ["solo", "yes", "3", "1", "2", "1", "0"]
    sandbox = "sandbox on: " if os.geteuid() == 0 else "sandbox PARTLY OFF: "
    assert lines[3].strip().startswith(sandbox), lines[3]  # which protections hold
    assert re.fullmatch(r"\s+[0-9a-f]{32}\s+w/ws", lines[4])
    assert "requests waiting (needs_work): 0" in out.stdout
    bad = cellbus_status("--broker", f"tcp://127.0.0.1:{free_port()}", "--key-file",
                         chain.key_file, *chain.cert_options("status", "gateway"),
                         "--timeout", "1")
    assert bad.returncode == 1 and "did not answer" in bad.stderr


def test_status_finds_a_running_up_by_itself(tmp_path: Path, nodes: list[NodeProcess]) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = {"XDG_RUNTIME_DIR": str(runtime)}
    port = free_port()
    up = NodeProcess("up", "--port", str(port), "--store", f"sqlite:///{tmp_path / 'up.db'}",
                     env=env)
    nodes.append(up)
    up.wait_for_log(r"cellbus is up", timeout=60)
    state = runtime / "cellbus" / "up.json"
    assert oct(state.stat().st_mode & 0o777) == "0o600"
    deadline = time.monotonic() + 15
    while "yes" not in (out := cellbus_status(env=env)).stdout and time.monotonic() < deadline:
        time.sleep(0.3)
    assert out.returncode == 0 and "DEVICE" in out.stdout and " yes " in out.stdout, out
    assert up.stop() == 0
    assert not state.exists()
    gone = cellbus_status(env=env)
    assert gone.returncode == 2 and "no `bin/cellbus up` is running" in gone.stderr


def test_no_broker_503_carries_retry_after(chain: Chain) -> None:
    chain.start_gateway()
    status, headers, body = http_with_headers(chain, "POST", "/home/u/ws/1/restart", b"")
    assert status == 503 and headers["Retry-After"] == "5" and "retry in 5 s" in body["error"]


def test_restart_ends_cells_queued_behind_the_old_session(shared_chain) -> None:
    """Cells waiting on the device when the worksheet restarts end with SessionClosed;
    they do not run in a new worker of the closed session."""
    chain = shared_chain
    chain.evaluate("q/ws/1", "import time\nprint('busy', flush=True)\ntime.sleep(30)")
    deadline = time.monotonic() + 20
    while "busy" not in json.dumps(chain.update("q/ws/1", wait=2)[1]):
        assert time.monotonic() < deadline
    chain.evaluate("q/ws/2", "print('queued')")
    assert chain.http("POST", "/home/q/ws/1/restart", b"{}")[0] == 202
    doc = chain.wait_done("q/ws/2")
    assert doc["status"] == "error" and "queued" not in json.dumps(doc["output"])
