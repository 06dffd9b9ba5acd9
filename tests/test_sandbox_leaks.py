"""What a session must not hold or see of the host: descriptors, environment, namespaces.

Real devices and workers, as in tests/test_sandbox.py; the checks run from inside cells.
They need root (CI runs as root); elsewhere they are skipped and say why.
"""

from __future__ import annotations

import json
import os
import uuid

import pytest

from harness import ipc_endpoint, of_type, stdout_of

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
pytestmark = pytest.mark.skipif(os.geteuid() != 0 and not IN_CI, reason="the sandbox needs "
                                "root (CI runs as root); these tests did not run")


def out(client, code: str, session: str) -> str:
    msgs = client.run(code, session)
    errors = of_type(msgs, "error")
    assert not errors, errors[0]["content"]
    return stdout_of(msgs)


#: Run in a cell: every open descriptor with what it points at, and which of them the worker
#: itself owns. The worker's own objects are found through the garbage collector: the
#: ``WorkerLink`` holds the link (one end of an unnamed AF_UNIX stream socketpair whose other
#: end the device holds), and the ``Capture`` holds the read ends of the pipes that
#: descriptors 1 and 2 write into. A pipe of the session's own shows up with both its ends
#: in the process; a host pipe (the device's stderr, say) would show only one.
LIST_DESCRIPTORS = """
import gc, json, os, socket
fds = {}
for name in os.listdir("/proc/self/fd"):
    try:
        fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
    except OSError:
        pass  # the descriptor listdir itself used, closed by now
link = [o for o in gc.get_objects() if type(o).__name__ == "WorkerLink"]
capture = [o for o in gc.get_objects() if type(o).__name__ == "Capture"]
sock = link[0].sock
print(json.dumps({"fds": fds, "link": sock.fileno(),
                  "link_kind": [sock.family == socket.AF_UNIX, sock.type == socket.SOCK_STREAM,
                                sock.getsockname() in ("", b""), sock.getpeername() in ("", b"")],
                  "capture_reads": sorted(capture[0]._pipes)}))
"""


def test_session_code_holds_only_its_own_descriptors(device_with_client) -> None:
    """Issue 19, item 1: no file, tty or socket of the host (the device's stderr was fd 3,
    and another copy came from the template)."""
    client, _ = device_with_client()
    seen = json.loads(out(client, LIST_DESCRIPTORS, "s"))
    fds = {int(fd): target for fd, target in seen["fds"].items()}
    link, reads = seen["link"], seen["capture_reads"]
    assert seen["link_kind"] == [True, True, True, True]  # unnamed AF_UNIX stream pair
    assert fds[0] == "/dev/null"  # stdin: there is none
    assert fds[1].startswith("pipe:") and fds[2].startswith("pipe:") and fds[1] != fds[2]
    assert sorted(fds[fd] for fd in reads) == sorted([fds[1], fds[2]])  # both ends ours
    assert fds[link].startswith("socket:")
    assert sorted(fds) == sorted({0, 1, 2, link, *reads}), json.dumps(fds)


def test_a_cell_cannot_write_to_the_device_log(device_with_client) -> None:
    """Whatever descriptor a cell writes to, nothing reaches the device's log; what the
    worker itself has to say goes over its link and the device labels it."""
    client, device = device_with_client()
    marker = f"forged-{uuid.uuid4().hex}"
    code = f"""
import gc, os
link = [o for o in gc.get_objects() if type(o).__name__ == "WorkerLink"][0].sock.fileno()
wrote = []
for fd in set(range(3, 1024)) - {{link}}:  # the link: that would only break the session
    try:
        os.write(fd, b"\\n{marker} device log line\\n")
        wrote.append(fd)
    except OSError:
        pass
print("wrote to", wrote)
"""
    said = out(client, code, "s")
    # A later line of the device's log: anything the cell wrote would be in the log before.
    out(client, "print(1)", "after")
    device.wait_for_log(r"started worker \d+ for session after ")
    assert marker not in device.log, said
    # What the worker has to say reaches the log labelled and quoted, as one line: the most
    # a cell can do is say something in the worker's name.
    out(client, "import gc\n[o for o in gc.get_objects() if type(o).__name__ == 'LinkOutput']"
                f"[0].diag('{marker}\\n\\x1b[2Jforged')", "s")
    line = device.wait_for_log(rf"worker \d+ \(session s\) says: .*{marker}.*").group(0)
    assert line.endswith(f"says: '{marker}\\n\\x1b[2Jforged'"), line


#: A system call of the x32 ABI (``__X32_SYSCALL_BIT`` + 272, ``unshare``).
X32_UNSHARE = "ctypes.CDLL(None).syscall(0x40000000 + 272, 0x10000000)"
#: A 32-bit ``int 0x80`` system call (getpid), as machine code run through ctypes.
INT80_GETPID = """import mmap
code = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
code.write(bytes([0xb8, 20, 0, 0, 0, 0xcd, 0x80, 0xc3]))  # mov eax, 20; int 0x80; ret
ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(code)))()"""
CALLS = {"x32": X32_UNSHARE,
         "x32 in a thread": (f"t = threading.Thread(target=lambda: {X32_UNSHARE})\n"
                             "t.start()\nt.join()"),
         "int 0x80": INT80_GETPID}


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86-64 system call ABIs")
@pytest.mark.parametrize("call", list(CALLS))
def test_a_foreign_abi_call_ends_the_session_with_a_clear_error(chain, call: str) -> None:
    """Issue 19, item 6: libseccomp's default for a foreign ABI killed only the calling
    thread, and the cell stayed ``working`` for ever. Now the whole worker is killed, from
    whichever thread, and the cell ends with an error that says why; the session's next
    cell runs fresh."""
    chain.start_broker()
    chain.start_gateway()
    chain.start_device()
    code = f"import ctypes, threading\nprint('before', flush=True)\n{CALLS[call]}\n" \
           "print('after')"
    assert chain.evaluate("u/ws/1", code)[0] == 202
    doc = chain.wait_done("u/ws/1", timeout=20)
    error = next(b for b in doc["output"].values() if b["type"] == "error")
    assert doc["status"] == "error", doc
    assert error["ename"] == "ForbiddenSystemCall", error
    assert "system call the sandbox forbids" in error["evalue"], error
    assert "after" not in json.dumps(doc["output"])
    assert chain.evaluate("u/ws/2", "print('fresh')")[0] == 202
    fresh = chain.wait_done("u/ws/2")["output"]
    assert [b["content"] for b in fresh.values() if b["type"] == "text"] == [
        "cellbus: started a fresh worker for this session because the previous one was "
        "killed by signal 31 (SIGSYS); variables defined before are gone.\n", "fresh\n"]


def test_a_denied_call_in_a_thread_fails_only_that_call(device_with_client) -> None:
    """The filter's other rules answer EPERM, from any thread: nothing is killed."""
    client, _ = device_with_client()
    code = """
import ctypes, errno, threading
libc = ctypes.CDLL(None, use_errno=True)
seen = []
def denied():
    seen.append((libc.unshare(0x10000000), errno.errorcode[ctypes.get_errno()]))
t = threading.Thread(target=denied); t.start(); t.join()
print(seen)
"""
    assert out(client, code, "s") == "[(-1, 'EPERM')]\n"
    assert out(client, "print('alive')", "s") == "alive\n"


#: Run in a cell: what the session's PID 1 shows of the machine, next to what the session
#: itself shows, and whether its name can be changed.
LOOK_THROUGH_INIT = """
import json
def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        return type(e).__name__
seen = {name: [read(f"/proc/1/{name}"), read(f"/proc/self/{name}")]
        for name in ("net/tcp", "net/tcp6", "net/unix", "mountinfo")}
writes = {}
for path in ("/proc/1/comm", "/proc/1/task/1/comm"):
    try:
        with open(path, "w") as f:
            f.write("pwned")
        writes[path] = "written"
    except OSError as e:
        writes[path] = type(e).__name__
print(json.dumps({"seen": seen, "writes": writes, "comm": read("/proc/1/comm")}))
"""


@pytest.mark.parametrize("init", ["compiled", "python"])
def test_the_namespace_init_shows_nothing_of_the_host(device_with_client, init: str) -> None:
    """Issue 19, item 7: /proc/1/net/* and /proc/1/mountinfo showed the host's ports, socket
    paths and mounts, because PID 1 stayed in the host's network and mount namespaces. Now it
    is in the session's: it shows what the session itself sees (no socket at all), and its
    name cannot be changed from the session."""
    client, _ = device_with_client(env={"CELLBUS_INIT_PROGRAM": ""} if init == "python"
                                   else None)
    result = json.loads(out(client, LOOK_THROUGH_INIT, "s"))
    for name, (init_view, own_view) in result["seen"].items():
        assert init_view == own_view, (name, init_view[:2000])
    for name in ("net/tcp", "net/tcp6", "net/unix"):
        assert len(result["seen"][name][0].splitlines()) == 1, name  # the header alone
    assert " /home/session " in result["seen"]["mountinfo"][0]  # the session's own root
    assert result["writes"] == {"/proc/1/comm": "PermissionError",
                                "/proc/1/task/1/comm": "PermissionError"}
    assert result["comm"] == ("cellbus-init\n" if init == "compiled" else "python\n")


def test_sessions_get_a_short_documented_environment(device_with_client) -> None:
    """Issue 19, item 7: the device's whole environment (host paths, cloud and CA variables)
    was in os.environ. A session gets the variables README.rst lists, and no others, in
    Python and in what it starts."""
    client, _ = device_with_client(env={"AUDIT_CANARY": "host-secret"})
    code = ("import json, os, subprocess\nprint(json.dumps([dict(os.environ), "
            "subprocess.run(['env'], capture_output=True, text=True).stdout]))")
    python, started = json.loads(out(client, code, "s"))
    assert sorted(python) == ["HOME", "LANG", "MPLBACKEND", "PATH", "TMPDIR"], python
    assert sorted(started.splitlines()) == sorted(f"{k}={v}" for k, v in python.items())
    assert python["HOME"] == "/home/session" and python["TMPDIR"] == "/tmp"
    assert python["LANG"] == "C.UTF-8" and python["MPLBACKEND"] == "module://session.mplbackend"
    assert python["PATH"].split(":")[-3:] == ["/usr/local/bin", "/usr/bin", "/bin"]


def uids_of(device) -> range:
    found = device.wait_for_log(r"session uids (\d+)-(\d+) \(--sandbox-uids ")
    return range(int(found.group(1)), int(found.group(2)) + 1)


def test_two_devices_of_one_machine_never_share_session_uids(device_with_client,
                                                            key_file) -> None:
    """Issue 19, item 7: devices not started by `up` all took 300000-300999, so two
    deployments on one host shared uids (and process limits). By default each now takes a
    block no other device holds; a range given by hand that overlaps one is refused."""
    from harness import NodeProcess
    first_client, first = device_with_client()
    second_client, second = device_with_client()
    a, b = uids_of(first), uids_of(second)
    assert not set(a) & set(b), (a, b)
    for client, uids in ((first_client, a), (second_client, b)):
        assert int(out(client, "import os; print(os.getuid())", "s")) in uids
    overlap = f"{a.start + 10}-{a.start + 500}"  # within the first block only
    refused = NodeProcess("device", "--connect", ipc_endpoint(), "--key-file",
                          str(key_file), "--sandbox-uids", overlap)
    try:
        assert refused.proc.wait(60) == 2, refused.log
        refused.wait_for_log(rf"--sandbox-uids {overlap}: another device of this machine "
                             rf"\(process {first.proc.pid}, uids {a.start}-{a.stop - 1}\) "
                             r"holds session uids in that range")
    finally:
        refused.kill_group()


def test_a_device_on_a_terminal_gives_sessions_none_of_it(key: bytes, key_file) -> None:
    """As under ``bin/cellbus up`` in a terminal: the device's standard descriptors are the
    operator's terminal (its controlling one, too). A cell holds no descriptor of it, so it
    can neither read what the operator types nor write to the screen."""
    import pty
    import subprocess
    import threading
    from harness import ROOT, BusClient
    master, slave = pty.openpty()
    endpoint = ipc_endpoint()
    client = BusClient(key, bind=endpoint)
    proc = subprocess.Popen(["setsid", "--ctty", str(ROOT / "bin" / "cellbus"), "device",
                             "--connect", endpoint, "--key-file", str(key_file)],
                            stdin=slave, stdout=slave, stderr=slave, cwd=ROOT)
    os.close(slave)
    screen: list[bytes] = []
    changed = threading.Condition()

    def read_screen() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every process with the terminal open has ended
                data = b""
            with changed:
                screen.append(data)
                changed.notify_all()
            if not data:
                return

    reader = threading.Thread(target=read_screen, daemon=True)
    reader.start()
    marker = f"typed-{uuid.uuid4().hex}"
    try:
        client.wait_for(lambda m: m["msg_type"] == "device_register", timeout=60)
        code = f"""
import gc, os
link = [o for o in gc.get_objects() if type(o).__name__ == "WorkerLink"][0].sock.fileno()
fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
ttys = [fd for fd in fds if fd != link and os.path.exists(f"/proc/self/fd/{{fd}}")
        and os.isatty(fd)]
for fd in set(range(3, 1024)) - {{link}}:
    try:
        os.write(fd, b"{marker}")
    except OSError:
        pass
try:
    open("/dev/tty", "r+b")
    tty = "opened"
except OSError as e:
    tty = type(e).__name__
print(ttys, tty)
"""
        assert out(client, code, "s") == "[] FileNotFoundError\n"
        out(client, "print(1)", "after")  # its start is logged after anything the cell wrote
        with changed:
            assert changed.wait_for(lambda: b"for session after" in b"".join(screen), 15), \
                b"".join(screen)[-2000:]
            assert marker.encode() not in b"".join(screen)
    finally:
        proc.terminate()
        proc.wait(30)
        client.close()
        reader.join(5)
        os.close(master)
