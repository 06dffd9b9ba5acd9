"""A record a device cannot accept from a session's link ends that worker, whatever is wrong.

Oversized and amplifying records already ended the worker (test_link_amplification.py);
a malformed one (not msgpack, not a record, fields of the wrong type, a type a session may
not send, two records in one frame, fields claiming an identity) was dropped and counted
while the worker went on, free to keep probing the device's parser. Now each ends the worker
the same way: ``LinkViolation`` in the running cell, counted (``rejected`` in the device's
heartbeat), logged once; what the worker sent before it is kept, the next cell runs in a
fresh worker, and another session's cell running meanwhile is untouched. Real device, real
workers running plain user code that writes onto its own link, a signed client for the
broker.
"""

from __future__ import annotations

import re

from device.admission import refusal
from harness import BusClient, NodeProcess, stdout_of, worker_pid
from test_link_amplification import FIND_LINK, errors

#: Python expressions for the body of one bad frame, by what is wrong with it.
BAD_BODIES = {
    "not msgpack": "b'\\xc1\\xc1\\xc1'",
    "not a record": "msgpack.packb([1, 2, 3])",
    "no msg_type": "msgpack.packb({'content': {}})",
    "msg_type not a string": "msgpack.packb({'msg_type': 7, 'content': {}})",
    "no content": "msgpack.packb({'msg_type': 'stream'})",
    "content not a map": "msgpack.packb({'msg_type': 'stream', 'content': 'text'})",
    "buffers not bytes": "msgpack.packb({'msg_type': 'display_data', 'content': {'data': {}},"
                         " 'buffers': ['text']})",
    "worker_log without text": "msgpack.packb({'msg_type': 'worker_log', 'content': {}})",
    "a bus control message": "msgpack.packb({'msg_type': 'device_register', "
                             "'content': {'device': 'forged', 'capacity': 9}})",
    "a request type": "msgpack.packb({'msg_type': 'execute_request', 'content': {}})",
    "two records in one frame": "msgpack.packb(OK) + msgpack.packb(OK)",
    "a field a worker may not set": "msgpack.packb({**OK, 'session': 'someone-else'})",
    "routing facts": "msgpack.packb({**OK, 'metadata': {'cellbus': {'session': 'x'}}})",
    "another request's parent": "msgpack.packb({**OK, 'parent': 'not-my-request'})",
}

#: A record the device accepts: sent first, it must reach the client.
GOOD = ("OK = {'msg_type': 'stream', 'content': {'name': 'stdout', 'text': 'accepted\\n'}}\n"
        "def frame(body):\n"
        "    return struct.pack('!I', len(body)) + body\n")


def bad_cell(body: str) -> str:
    """A cell that sends one good record, then one frame of ``body``, on its own link, and
    then waits to be ended."""
    return FIND_LINK + GOOD + (
        f"link().sendall(frame(msgpack.packb(OK)) + frame({body}))\n"
        "import time\n"
        "time.sleep(30)\n"
        "print('still running')\n")


def after_the_cell(statement: str) -> str:
    """Code whose thread runs ``statement`` once the cell is over (1 s after it started)."""
    return ("import threading, time\n"
            "def later():\n"
            "    time.sleep(1)\n"
            f"    {statement}\n"
            "threading.Thread(target=later).start()\n")


def unique(msgs: list) -> list:
    """``msgs`` without the copies a device sends again when no receipt comes (the test
    client, standing in for the broker, gives none)."""
    first: dict[str, dict] = {}
    for msg in msgs:
        first.setdefault(msg["header"]["msg_id"], msg)
    return list(first.values())


def fresh_worker(device: NodeProcess, session: str, old: int) -> None:
    """Wait until the device logs a worker other than ``old`` for ``session`` (its log is
    read by a thread of its own, so it may lag the replies)."""
    device.wait_for_log(rf"started worker (?!{old} )\d+ for session {session} ")


def wait_rejected(client: BusClient, at_least: int) -> None:
    client.wait_for(lambda m: m["msg_type"] == "device_heartbeat"
                    and m["content"].get("rejected", 0) >= at_least)


def test_each_kind_of_malformed_record_ends_its_worker(device_with_client) -> None:
    client, device = device_with_client()
    device: NodeProcess
    client: BusClient
    assert client.run("print('warm')", "victim")[-1]["msg_type"] == "status"
    victim = client.execute("import time\nfor i in range(60):\n print(i, flush=True)\n"
                            " time.sleep(0.05)", "victim")
    for n, (why, body) in enumerate(BAD_BODIES.items(), 1):
        session = f"attacker-{n}"
        msgs = unique(client.run(bad_cell(body), session, timeout=30))
        assert any(e.startswith("LinkViolation: ") for e in errors(msgs)), (why, msgs)
        assert msgs[-1]["msg_type"] == "status", why  # the cell ended: error, reply, idle
        assert stdout_of(msgs) == "accepted\n", (why, stdout_of(msgs))  # nothing lost, no more
        pid = worker_pid(device, session)
        device.wait_for_log(rf"device rejected .* from worker {pid} ")
        lines = re.findall(rf"device rejected .* from worker {pid} .*", device.log)
        assert len(lines) == 1, (why, lines)
        after = unique(client.run("print('after')", session, timeout=30))
        assert stdout_of(after) == "after\n" and not errors(after), why
        fresh_worker(device, session, pid)
    wait_rejected(client, len(BAD_BODIES))  # each one counted (the heartbeat's "rejected")
    done = unique(client.replies_to(victim, timeout=60))
    assert stdout_of(done).split()[-1] == "59" and not errors(done)
    assert device.proc.poll() is None


def test_a_malformed_record_between_cells_ends_the_worker_too(device_with_client) -> None:
    """No cell runs to show the error: the session is closed, with a reason that says what
    the worker did (before: "was killed by signal 9 (SIGKILL)"; and mid-cell "was stopped
    by a limit (LinkViolation)", no limit of the operator's being involved), and its next
    cell gets a fresh worker."""
    client, device = device_with_client()
    code = FIND_LINK + GOOD + after_the_cell("link().sendall(frame(b'\\xc1'))")
    assert not errors(client.run(code, "s", timeout=30))
    pid = worker_pid(device, "s")
    closed = client.wait_for(lambda m: m["msg_type"] == "session_closed"
                             and m["content"].get("session") == "s")
    assert closed["content"]["reason"] == ("was stopped for a LinkViolation: it sent the "
                                           "device malformed data (decode)"), closed["content"]
    device.wait_for_log(rf"device rejected a record from worker {pid} .*")
    after = unique(client.run("print('after')", "s", timeout=30))
    assert stdout_of(after) == "after\n"
    fresh_worker(device, "s", pid)


def test_late_output_of_a_thread_is_dropped_not_fatal(device_with_client) -> None:
    """A thread a cell left running may print after its cell ended: that is no violation,
    the worker goes on serving the session."""
    client, device = device_with_client()
    code = after_the_cell("print('late', flush=True)")
    assert not errors(client.run(code, "s", timeout=30))
    pid = worker_pid(device, "s")
    device.wait_for_log(rf"device rejected a record from worker {pid} .*stream of an earlier")
    after = unique(client.run("print('after')", "s", timeout=30))
    assert stdout_of(after) == "after\n" and worker_pid(device, "s") == pid


def test_what_is_fatal_and_what_is_only_dropped() -> None:
    """device.admission.refusal on its own: late output of the worker's own earlier request
    is dropped; a claim on a request it never had, or a wrong type, ends it."""
    stream = {"msg_type": "stream", "content": {"name": "stdout", "text": "x"}}
    assert refusal({**stream, "parent": "r1"}, running="r1", earlier={"r0", "r1"}) is None
    assert refusal(stream, running="r1", earlier=()) is None
    late = refusal({**stream, "parent": "r0"}, running="r1", earlier={"r0", "r1"})
    assert late is not None and not late.fatal
    idle = refusal({**stream, "parent": "r0"}, running=None, earlier={"r0"})
    assert idle is not None and not idle.fatal
    log = {"msg_type": "worker_log", "content": {"text": "hi"}, "parent": "r0"}
    assert refusal(log, running=None, earlier={"r0"}) is None
    for bad in ({**stream, "parent": "r9"}, {**stream, "parent": 3}, {"msg_type": "stream"},
                {**stream, "content": {"name": "stdout", "text": "x"}, "metadata": []},
                {**log, "content": {"text": 5}}, {**log, "header": {}},
                {"msg_type": "comm_open", "content": {}, "buffers": [1]}):
        refused = refusal(bad, running="r1", earlier={"r0"})
        assert refused is not None and refused.fatal, bad
