"""A device process, started as an operator would, driven by a signed test client."""

from __future__ import annotations

import base64
import os
import signal
import time
import warnings
from pathlib import Path

import pytest

from harness import of_type, stdout_of, until, worker_pid
from protocol import Session

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from jupyter_client.session import Session as JupyterSession


def test_register_announces_capacity(device_with_client) -> None:
    client, _ = device_with_client("--max-sessions", "7")
    register = [m for _, m in client.inbox if m["msg_type"] == "device_register"][0]
    assert register["content"]["capacity"] == 7
    assert register["content"]["load"] == 0


def test_output_streams_while_the_code_runs(device_with_client) -> None:
    """"2\\n" arrives about two seconds before "3\\n", in Jupyter's message order."""
    client, _ = device_with_client()
    msgs = client.run("import time\nprint(2)\ntime.sleep(2)\nprint(3)\n'done'", "s1")
    kinds = [m["msg_type"] for m in msgs]
    assert kinds[:2] == ["status", "execute_input"]
    assert kinds[-3:] == ["execute_result", "execute_reply", "status"]
    streams = [(t, m) for t, m in client.inbox
               if m["msg_type"] == "stream" and m["parent_header"] == msgs[0]["parent_header"]]
    assert [m["content"]["text"] for _, m in streams] == ["2\n", "3\n"]
    gap = streams[1][0] - streams[0][0]
    assert 1.5 < gap < 4, gap
    reply = of_type(msgs, "execute_reply")[0]
    assert reply["content"]["status"] == "ok" and reply["content"]["execution_count"] == 1
    for m in msgs:
        assert m["header"]["session"] == "s1"
        assert m["metadata"]["cellbus"]["session"] == "s1"
        assert m["metadata"]["cellbus"]["device"].startswith("dev-")


def test_each_session_has_its_own_namespace(device_with_client) -> None:
    client, _ = device_with_client()
    client.run("x = 5", "alice")
    assert stdout_of(client.run("print(x)", "alice")) == "5\n"
    other = client.run("print(x)", "bob")
    error = of_type(other, "error")[0]["content"]
    assert error["ename"] == "NameError"
    assert any("print(x)" in line for line in error["traceback"])
    assert not any("session/" in line or "device/" in line for line in error["traceback"])
    assert of_type(other, "execute_reply")[0]["content"]["status"] == "error"


def test_routing_facts_come_back_and_the_request_is_parent(device_with_client) -> None:
    client, _ = device_with_client()
    request = client.execute("1", "s", user="wstein", worksheet="myws", cell_id="5")
    for m in client.replies_to(request):
        assert m["parent_header"]["msg_id"] == request["msg_id"]
        assert m["metadata"]["cellbus"]["cell_id"] == "5"


def test_bad_signatures_and_malformed_frames_are_dropped_and_logged(device_with_client) -> None:
    client, device = device_with_client()
    forger = Session(b"wrong key")
    garbage = [
        [b"no delimiter at all"],
        [b"<IDS|MSG>", b"sig", b"too few"],
        forger.serialize(forger.msg("execute_request", {"code": "print('pwned')"},
                                    metadata={"cellbus": {"session": "s"}})),
        [b"<IDS|MSG>", b"", b"h", b"p", b"m", b"c"],
    ]
    for frames in garbage:
        client.sock.send_multipart(frames)
    # a replayed genuine request is dropped too
    genuine = client.session.msg("execute_request", {"code": "print('once')"},
                                 metadata={"cellbus": {"session": "s"}})
    frames = client.session.serialize(genuine)
    client.sock.send_multipart(frames)
    client.sock.send_multipart(frames)
    assert stdout_of(client.replies_to(genuine)) == "once\n"
    assert stdout_of(client.run("print('still serving')", "s")) == "still serving\n"
    device.wait_for_log(r"dropped a message: frames")
    device.wait_for_log(r"dropped a message: signature")
    device.wait_for_log(r"dropped a message: replay")
    assert "pwned" not in device.log
    assert not [m for _, m in client.inbox if "pwned" in str(m["content"])]


def test_request_without_a_session_gets_a_clear_error(device_with_client) -> None:
    client, _ = device_with_client()
    msgs = client.replies_to(client.execute("1", None))
    error = of_type(msgs, "error")[0]["content"]
    assert error["ename"] == "BadRequest" and "session" in error["evalue"]
    assert of_type(msgs, "execute_reply")[0]["content"]["status"] == "error"


@pytest.mark.parametrize("code,how", [
    ("import os; os._exit(1)", "exited with code 1"),
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "killed by signal 9 (SIGKILL)"),
    ("import ctypes; ctypes.string_at(0)", "killed by signal 11 (SIGSEGV)"),
])
def test_worker_death_fails_the_request_and_the_next_one_gets_a_fresh_worker(
        device_with_client, code: str, how: str) -> None:
    client, _ = device_with_client()
    client.run("x = 1", "s")
    msgs = client.run(f"print('before', flush=True)\n{code}", "s")
    assert stdout_of(msgs) == "before\n"
    error = of_type(msgs, "error")[0]["content"]
    assert error["ename"] == "WorkerDied" and how in error["evalue"]
    assert of_type(msgs, "execute_reply")[0]["content"]["status"] == "error"
    after = client.run("print(x)", "s")
    assert "fresh worker" in stdout_of(after, "stderr") and how in stdout_of(after, "stderr")
    assert of_type(after, "error")[0]["content"]["ename"] == "NameError"
    assert stdout_of(client.run("print('alive')", "s")) == "alive\n"


def test_a_killed_template_is_started_again_and_sessions_start_after_it(
        device_with_client) -> None:
    """Tests that SIGKILL of the device's template process (which forks its workers) ends
    the cell its worker ran with WorkerDied saying the template took it (before: "was
    killed by signal 9 (SIGKILL)", as an out-of-memory kill reads), and that the device
    starts a new template by itself, so that session and a new one run again (it refused
    every new session with AtCapacity until the device was restarted)."""
    client, device = device_with_client()
    client.run("x = 1", "s")
    template = int(device.wait_for_log(r"template process (\d+) started").group(1))
    request = client.execute("import time\nprint('before', flush=True)\ntime.sleep(60)", "s")
    client.wait_for(lambda m: m["msg_type"] == "stream")
    os.kill(template, signal.SIGKILL)
    error = of_type(client.replies_to(request), "error")[0]["content"]
    assert error["ename"] == "WorkerDied"
    assert "with the device's template process" in error["evalue"], error  # not a bare SIGKILL
    device.wait_for_log(rf"template process (?!{template}\b)\d+ started")
    assert stdout_of(client.run("print('again')", "s")) == "again\n"
    assert stdout_of(client.run("print('new')", "t")) == "new\n"


def test_idle_worker_ends_and_the_session_is_reported_closed(device_with_client) -> None:
    client, device = device_with_client("--idle-timeout", "1")
    client.run("x = 1", "s")
    pid = worker_pid(device, "s")
    closed = client.wait_for(lambda m: m["msg_type"] == "session_closed", timeout=10)
    assert closed["content"] == {"session": "s", "reason": "idle timeout"}
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_files_written_in_the_block_are_announced(device_with_client) -> None:
    client, _ = device_with_client()
    msgs = client.run("open('out.txt', 'w').write('hello')\nprint('wrote')", "s")
    files = [m for m in of_type(msgs, "display_data")
             if "application/x-cellbus-file+json" in m["content"]["data"]]
    assert len(files) == 1
    ref = files[0]["content"]["data"]["application/x-cellbus-file+json"]
    assert (ref["name"], ref["size"], ref["mime"]) == ("out.txt", 5, "text/plain")
    assert files[0]["buffers"] == [b"hello"]


def test_image_from_repr_png(device_with_client) -> None:
    client, _ = device_with_client()
    png = b"\x89PNG\r\n\x1a\nfake"
    msgs = client.run(f"class P:\n    def _repr_png_(self):\n        return {png!r}\n"
                      "display(P())", "s")
    data = of_type(msgs, "display_data")[0]["content"]["data"]
    assert base64.b64decode(data["image/png"]) == png


def test_matplotlib_figure_is_sent_as_png(device_with_client) -> None:
    client, _ = device_with_client()
    msgs = client.run("import matplotlib.pyplot as plt\nprint('plotting')\n"
                      "plt.plot([1, 2, 3])", "s", timeout=60)
    images = [m for m in of_type(msgs, "display_data") if "image/png" in m["content"]["data"]]
    assert len(images) == 1
    assert base64.b64decode(images[0]["content"]["data"]["image/png"]).startswith(b"\x89PNG")
    kinds = [m["msg_type"] for m in msgs]
    assert kinds.index("stream") < kinds.index("display_data")  # stdout closes before the plot


def test_jupyter_client_drives_a_device_over_json(device_with_client, key: bytes) -> None:
    """jupyter_client's Session, with the deployment key, can run code on a device."""
    client, _ = device_with_client(packer="json")
    jupyter = JupyterSession(key=key, signature_scheme="hmac-sha256", packer="json")
    request = jupyter.msg("execute_request", {"code": "print(6 * 7)", "silent": False},
                          metadata={"cellbus": {"session": "j"}})
    jupyter.send(client.sock, request)
    texts: list[str] = []

    def received() -> list[dict]:
        """The next messages; a ``records`` bundle carries standard signed messages, each
        one's frames in the bundle's buffers (protocol/records.py), which jupyter_client
        reads as they are."""
        assert client.sock.poll(20_000)
        _, frames = jupyter.feed_identities(client.sock.recv_multipart(), copy=True)
        msg = jupyter.deserialize(frames)
        if msg["msg_type"] != "records":
            return [msg]
        buffers = [bytes(b) for b in msg["buffers"]]
        out, at = [], 0
        for count in msg["content"]["frames"]:
            out.append(jupyter.deserialize(buffers[at:at + count]))  # signature, header, ...
            at += count
        return out

    done = False
    while not done:
        for msg in received():
            if msg["parent_header"].get("msg_id") != request["header"]["msg_id"]:
                continue
            if msg["msg_type"] == "stream":
                texts.append(msg["content"]["text"])
            done = done or msg["msg_type"] == "execute_reply"
    assert texts == ["42\n"]


def test_interrupt_stops_running_code(device_with_client) -> None:
    client, _ = device_with_client()
    running = client.execute("import time\nprint('start', flush=True)\ntime.sleep(100)", "s")
    client.wait_for(lambda m: m["msg_type"] == "stream")
    client.request("interrupt_request", {}, "s")
    msgs = client.replies_to(running, timeout=10)
    assert of_type(msgs, "error")[0]["content"]["ename"] == "KeyboardInterrupt"
    assert stdout_of(client.run("print('next')", "s")) == "next\n"


def stopped_below(pid: int) -> bool:
    """Whether a process under ``pid`` (or ``pid`` itself) is stopped (state T)."""
    parents: dict[int, int] = {}
    states: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        child = int(stat.parent.name)
        states[child], parents[child] = fields[0], int(fields[1])
    below, todo = set(), [pid]
    while todo:
        below.add(todo.pop())
        todo += [c for c, parent in parents.items() if parent in below and c not in below]
    return any(states.get(p) == "T" for p in below)


def test_interrupt_stops_code_that_stopped_its_own_worker(device_with_client) -> None:
    """Tests that an interrupt ends a cell whose code stopped its worker with SIGSTOP (as a
    debugger or a tester may): the device's SIGINT comes with SIGCONT; it stayed pending on
    the stopped worker, and the cell hung until a restart killed the worker."""
    client, device = device_with_client()
    running = client.execute("import os, signal, time\nprint('start', flush=True)\n"
                             "os.kill(os.getpid(), signal.SIGSTOP)\ntime.sleep(100)", "s")
    client.wait_for(lambda m: m["msg_type"] == "stream")
    pid = worker_pid(device, "s")
    until(lambda: stopped_below(pid), "the worker to stop")
    client.request("interrupt_request", {}, "s")
    try:
        msgs = client.replies_to(running, timeout=20)
    except AssertionError as e:  # say what the worker was doing and what the device saw
        state = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}").exists() else ""
        raise AssertionError(f"{e}\nworker {pid}: {state}\ndevice log:\n"
                             + "\n".join(device.lines[-40:])) from None
    assert of_type(msgs, "error")[0]["content"]["ename"] == "KeyboardInterrupt"
    assert stdout_of(client.run("print('next')", "s")) == "next\n"


#: A cell that lists the worker's threads other than the main one, each as whether it
#: blocks SIGINT (bit 2 of /proc's SigBlk mask).
THREAD_MASKS = """import os, signal
for tid in sorted(os.listdir('/proc/self/task')):
    if int(tid) != os.getpid():
        status = open(f'/proc/self/task/{tid}/status').read()
        mask = int(status.split('SigBlk:')[1].split()[0], 16)
        print(bool(mask & 1 << (signal.SIGINT - 1)))
"""


def test_no_thread_of_a_worker_but_the_main_one_takes_an_interrupt(device_with_client
                                                                    ) -> None:
    """Tests that the worker's own threads (its output flusher, its descriptor readers)
    block SIGINT, so the kernel hands an interrupt's SIGINT to the main thread, the one
    running the cell: one taken by another thread sets Python's flag but does not end the
    blocking call the main thread is in (a ``time.sleep``), and a worker whose threads
    were all stopped by SIGSTOP gives the SIGINT to whichever the SIGCONT lets run first."""
    client, _ = device_with_client()
    masks = stdout_of(client.run(THREAD_MASKS, "s")).split()
    assert masks and set(masks) == {"True"}, masks


def test_an_interrupt_right_after_the_request_stops_it(device_with_client) -> None:
    """Tests that an interrupt sent right behind its execute_request (a Stop right after
    Run) stops the cell, five times in a row: it reached the worker before the worker took
    up the request, which drops such an interrupt (meant for no cell), and the loop ran on."""
    client, _ = device_with_client()
    client.run("x = 1", "s")  # the session's worker is there
    for _ in range(5):
        running = client.execute("while True:\n    pass", "s")
        client.request("interrupt_request", {}, "s")
        msgs = client.replies_to(running, timeout=15)
        assert of_type(msgs, "error")[0]["content"]["ename"] == "KeyboardInterrupt"
    assert stdout_of(client.run("print(x)", "s")) == "1\n"


def test_a_worker_that_stops_itself_is_continued_and_its_cell_ends(device_with_client
                                                                    ) -> None:
    """Tests that a cell whose code stops its own worker (SIGSTOP), with nobody to continue
    it, goes on and ends by itself with all its output and a note saying why: it hung until
    --exec-timeout (here 60 s) or a Stop."""
    client, _ = device_with_client("--exec-timeout", "60")
    running = client.execute("import os, signal\nprint('before', flush=True)\n"
                             "os.kill(os.getpid(), signal.SIGSTOP)\nprint('after')", "s")
    msgs = client.replies_to(running, timeout=20)
    assert of_type(msgs, "execute_reply")[0]["content"]["status"] == "ok"
    assert stdout_of(msgs) == "before\nafter\n"
    assert "was stopped" in stdout_of(msgs, "stderr")
    assert stdout_of(client.run("print('next')", "s")) == "next\n"


def test_sigterm_stops_the_device_and_its_workers_cleanly(device_with_client) -> None:
    client, device = device_with_client()
    client.run("x = 1", "s")
    pid = worker_pid(device, "s")
    assert device.stop(signal.SIGTERM) == 0
    assert "Traceback" not in device.log
    device.wait_for_log(r"device stopped")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("worker outlived its device")


def test_a_device_with_no_key_refuses_to_start(nodes) -> None:
    from harness import NodeProcess
    device = NodeProcess("device", "--connect", "tcp://127.0.0.1:1")
    nodes.append(device)
    assert device.proc.wait(30) == 2
    device.wait_for_log(r"never runs unsigned")  # (its log is read by a thread)


def test_exec_timeout_stops_a_runaway_cell_and_the_device_serves_on(device_with_client) -> None:
    client, _ = device_with_client("--exec-timeout", "1.5")
    started = time.monotonic()
    msgs = client.run("print('spinning', flush=True)\nwhile True: pass", "s")
    assert 1.4 < time.monotonic() - started < 12  # no limit at all: client.run's 20 s
    error = of_type(msgs, "error")[0]["content"]
    assert error["ename"] == "TimeLimitExceeded" and "1.5 s limit" in error["evalue"]
    assert stdout_of(client.run("print('next')", "s")) == "next\n"
    assert stdout_of(client.run("print('other')", "t")) == "other\n"


def test_a_session_with_an_interact_outlives_the_idle_timeout(device_with_client) -> None:
    """Past the idle timeout but within the interact timeout, the interact still runs."""
    client, _ = device_with_client("--idle-timeout", "1", "--interact-timeout", "30")
    msgs = client.run("@interact\ndef f(n=(1, 20)):\n    print('n is', n)", "s")
    interact_id = of_type(msgs, "interact_start")[0]["content"]["interact_id"]
    client.run("import os; print(os.getpid())", "plain")
    closed = client.wait_for(lambda m: m["msg_type"] == "session_closed", timeout=10)
    assert closed["content"]["session"] == "plain"  # the plain session went, "s" stayed
    request = client.request("interact_request", {"interact_id": interact_id,
                                                  "values": {"n": 7}, "state": 1}, "s")
    again = client.replies_to(request)
    assert stdout_of(again) == "n is 7\n"
    assert of_type(again, "interact_reply")[0]["content"]["status"] == "ok"


def test_a_copy_of_a_held_request_is_ignored_running_or_queued(device_with_client) -> None:
    """The broker hands a request out again (signed afresh) when it cannot tell whether the
    device got it; a copy of one running or queued in its session must not run twice."""
    client, device = device_with_client()
    running = client.execute("import time\ntime.sleep(1.5)\nprint('ran')", "s1")
    queued = client.execute("print('queued ran')", "s1")
    for original in (running, queued):
        copy = {**original, "metadata": {"cellbus": {**original["metadata"]["cellbus"],
                                                     "sent": "again"}}}
        client.sock.send_multipart(client.session.serialize(copy))
    client.replies_to(running)
    client.replies_to(queued)
    device.wait_for_log(r"request %s is here already" % queued["msg_id"])
    client.run("pass", "s1")  # anything a copy ran would have come before this
    # Records the outbox sends again (no broker acknowledges them here) keep their number.
    once = {tuple(m["metadata"]["cellbus"]["out"]): m for _, m in client.inbox
            if "out" in m["metadata"].get("cellbus", {})}.values()
    texts = [m["content"]["text"] for m in once if m["msg_type"] == "stream"]
    assert sorted(texts) == ["queued ran\n", "ran\n"], texts
    assert len(of_type(list(once), "execute_reply")) == 3
    assert device.log.count("is here already") == 2
