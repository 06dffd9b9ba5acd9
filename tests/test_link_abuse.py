"""Session code that takes over its worker's link harms no other session of its device.

Session code holds its worker's link (tests/test_forged_worker.py finds it too): it can end
its own request by writing the records a finished request sends, then close the link or never
read it again. Real device and workers, a signed test client standing in for the broker
(tests/conftest.py).
"""

from __future__ import annotations

import glob

from harness import of_type, stdout_of, until

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


def thread_named(name: str) -> bool:
    """Whether a thread of this machine is called ``name`` now."""
    for comm in glob.glob("/proc/[0-9]*/task/*/comm"):
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
    until(lambda: thread_named("cb-link-closed"), "the device closed the attacker's link")
    late = client.execute("print('late')", "attacker")  # while the link is closed
    errors = of_type(client.replies_to(late, timeout=10), "error")
    assert errors and errors[0]["content"]["ename"] == "WorkerDied"
    assert stdout_of(client.run("print('served')", "victim", timeout=10)) == "served\n"
    assert device.proc.poll() is None and "crashed" not in device.log
