"""Session code that takes over its worker's link harms no other session of its device.

Session code holds its worker's link (tests/test_forged_worker.py finds it too): it can end
its own request by writing the records a finished request sends, then close the link or never
read it again. Real device and workers, a signed test client standing in for the broker
(tests/conftest.py).
"""

from __future__ import annotations

import glob
import time

from device.usage import children
from harness import of_type, stdout_of, until, worker_pid

#: Run in a cell: end this request as the worker would (its reply and idle), then do AFTER.
FINISH_THEN = """
import gc, socket, time
out = [o for o in gc.get_objects() if type(o).__name__ == "LinkOutput"][0]
def finish():
    out.send("execute_reply", {"status": "ok", "execution_count": 1,
                               "user_expressions": {}, "payload": []})
    out.send("status", {"execution_state": "idle"})
finish()
AFTER
time.sleep(600)
"""

#: AFTER for FINISH_THEN: shut the worker's end of its link, and once the device has closed
#: its own end, name a thread of the worker cb-link-closed (which the test sees in /proc).
CLOSE_LINK = """
import ctypes, threading
def watch():
    out.link.sock.recv(1)  # b"": the device closed its end
    ctypes.CDLL(None).prctl(15, b"cb-link-closed", 0, 0, 0)  # PR_SET_NAME
    time.sleep(600)  # named while the worker lives
threading.Thread(target=watch, daemon=True).start()
out.link.sock.shutdown(socket.SHUT_WR)
"""


def thread_named(pid: int, name: str) -> bool:
    """Whether a thread of process ``pid`` or of one of its children is called ``name``."""
    for p in [pid, *children(pid)]:
        for comm in glob.glob(f"/proc/{p}/task/*/comm"):
            try:
                with open(comm) as f:
                    if f.read().strip() == name:
                        return True
            except OSError:
                pass  # it ended meanwhile
    return False


def test_a_request_for_a_worker_that_closed_its_link_ends_it_not_the_device(
        device_with_client) -> None:
    """The worker's link is closed (its end shut, the device closes its own) and the worker
    is given up to 2 s to exit before it is killed; a request of its session that came then
    was written to the closed link, which uvloop's transport answers with RuntimeError, and
    that ended the device (``loop device.serve crashed``) with every session on it."""
    client, device = device_with_client("--drain-timeout", "1")
    client.run(FINISH_THEN.replace("AFTER", CLOSE_LINK), "attacker")
    pid = worker_pid(device, "attacker")  # the sandbox's init, or the worker itself
    until(lambda: thread_named(pid, "cb-link-closed"), "the device closed the attacker's link")
    late = client.execute("print('late')", "attacker")  # while the link is closed
    errors = of_type(client.replies_to(late, timeout=10), "error")
    assert errors and errors[0]["content"]["ename"] == "WorkerDied"
    assert stdout_of(client.run("print('served')", "victim", timeout=10)) == "served\n"
    assert device.proc.poll() is None and "crashed" not in device.log


#: AFTER for FINISH_THEN: read just enough of the next request to learn its id, end it too,
#: and leave the rest of it unread.
PEEK_AND_FINISH = """
head = out.link.sock.recv(200, socket.MSG_WAITALL)  # the length and the first fields
at = head.index(b"msg_id") + 6  # then a msgpack str: fixstr, or str8 with its length
start, n = (at + 1, head[at] & 0x1F) if head[at] < 0xC0 else (at + 2, head[at + 1])
out.parent = head[start:start + n].decode()
finish()
"""

#: Bigger than a Unix socket's buffer and the event loop's high-water mark together.
BIG_CODE = "#" + "x" * (1 << 20)


def test_a_worker_that_reads_nothing_stalls_no_other_session(device_with_client) -> None:
    """Given the session's next request, the worker leaves it unread; the device waited for
    that write to be taken in the one loop that takes every session's requests, so a request
    bigger than the socket's buffer stopped the whole device (the other sessions' cells
    waited up to --exec-timeout, 300 s by default), again at will."""
    client, device = device_with_client("--drain-timeout", "1")
    assert stdout_of(client.run("print('first')", "victim")) == "first\n"
    client.run(FINISH_THEN.replace("AFTER", ""), "attacker")
    client.execute(BIG_CODE, "attacker")  # written to a worker that reads no more
    started = time.monotonic()
    assert stdout_of(client.run("print('second')", "victim", timeout=10)) == "second\n"
    assert time.monotonic() - started < 5


def test_a_worker_that_leaves_a_request_unread_gets_no_more(device_with_client) -> None:
    """Ending each request after reading only its first bytes, a worker would have the
    device hold its unread requests without bound (and, before, stall on them); the next
    request written while one lies unread ends the worker, with a clear error."""
    client, device = device_with_client("--drain-timeout", "1")
    client.run(FINISH_THEN.replace("AFTER", PEEK_AND_FINISH), "attacker")
    client.execute(BIG_CODE, "attacker")  # 200 bytes of it read, and ended
    unread = client.execute(BIG_CODE, "attacker")  # given while the one before lies unread
    errors = of_type(client.replies_to(unread, timeout=10), "error")
    assert errors and errors[0]["content"]["ename"] == "LinkViolation"
    assert "unread" in errors[0]["content"]["evalue"]
    assert stdout_of(client.run("print('served')", "victim", timeout=10)) == "served\n"


def test_a_shutdown_waits_for_its_worker_but_not_the_other_sessions(device_with_client) -> None:
    """A worker that does not exit when its link closes (a cell runs, or its code ended its
    request and reads no more) is given 2 s before it is killed; a shutdown waited for that
    in the device's one request loop, so each restart stalled every other session of the
    device for 2 s, again at will. The victim's cell, sent just after, is answered first."""
    client, device = device_with_client("--drain-timeout", "1")
    client.run("print('ready')", "victim")
    client.run(FINISH_THEN.replace("AFTER", ""), "attacker")  # it reads no more
    shutdown = client.request("shutdown_request", {"restart": False}, "attacker")
    victim = client.execute("print('served')", "victim")
    client.wait_for(lambda m: m["parent_header"].get("msg_id") == shutdown["msg_id"]
                    and m["msg_type"] == "shutdown_reply", timeout=10)
    answered = [m["msg_type"] for m in client.about.get(victim["msg_id"], [])]
    assert "execute_reply" in answered  # before the shutdown's reply
    assert stdout_of(client.replies_to(victim)) == "served\n"


def test_idle_workers_that_do_not_exit_hold_up_no_exec_timeout(device_with_client) -> None:
    """The sweep that closes idle workers also stops cells past --exec-timeout; it closed
    each idle worker in turn, waiting up to 2 s for each that did not exit, and meanwhile
    stopped no other session's runaway cell. The victim's cell, over its limit while the
    attacker's worker is being closed, is stopped before that close ends."""
    # The sweep runs every 0.25 s; the attacker's worker is closed at its first after 1 s
    # idle, and the victim's cell, sent just after, is over its limit 1.5 s later.
    client, device = device_with_client("--drain-timeout", "1", "--idle-timeout", "1",
                                        "--exec-timeout", "1.5")
    client.run(FINISH_THEN.replace("AFTER", ""), "attacker")  # idle from now on, and deaf
    victim = client.execute("import time\ntime.sleep(60)", "victim")
    closed = client.wait_for(lambda m: m["msg_type"] == "session_closed"
                             and m["content"].get("session") == "attacker", timeout=10)
    assert "idle" in closed["content"]["reason"]
    answered = of_type(client.about.get(victim["msg_id"], []), "error")
    assert answered and answered[0]["content"]["ename"] == "TimeLimitExceeded"
