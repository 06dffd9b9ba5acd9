"""The syscall filter against the kernel code a session has no use for: socket families and
netlink protocols, argument tricks that slip past a rule, secret memory.

Each check runs in a cell of a real sandboxed worker and asks for the errno of the call
itself, so it does not depend on what this kernel was built with: a family the kernel does
not have answers EAFNOSUPPORT without the filter, EPERM with it.
Real devices (root only, as tests/test_sandbox.py).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from test_sandbox import out, pytestmark  # noqa: F401 (the same skip as there)

#: Run in a cell: ``calls`` is a list of [name, number, args]; prints {name: "OK" or errno}.
CALLS = """
import ctypes, errno, json, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
said = {}
for name, number, args in calls:
    fds = (ctypes.c_int * 2)()
    argv = [ctypes.c_long(a) if a != "FDS" else fds for a in args]
    result = libc.syscall(ctypes.c_long(number), *argv)
    if result >= 0:
        said[name] = "OK"
        for fd in ([result] if "FDS" not in args else list(fds)):
            os.close(fd)
    else:
        said[name] = errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
print(json.dumps(said))
"""
SOCKET, SOCKETPAIR, MEMFD_SECRET = 41, 53, 447
STREAM, DGRAM, RAW, SEQPACKET = 1, 2, 3, 5
HIGH = 1 << 32  # a bit the kernel drops from an int argument


def run_calls(client, calls: list, session: str) -> dict[str, str]:
    return json.loads(out(client, f"calls = {calls!r}\n{CALLS}", session))


def test_sockets_only_of_the_families_a_session_uses(device_with_client) -> None:
    """Unix, IPv4, IPv6 and netlink route sockets open; every other family is denied by the
    filter (EPERM), whatever the kernel has: AF_ALG (the kernel's crypto API, allowed
    before), TIPC, RDS, Bluetooth, CAN, XDP, packet, and the rest up to AF_MAX."""
    client, _ = device_with_client()
    allowed = {"unix": 1, "inet": 2, "inet6": 10}
    calls = [[name, SOCKET, [family, STREAM, 0]] for name, family in allowed.items()]
    calls.append(["netlink_route", SOCKET, [16, RAW, 0]])
    calls += [[f"family{f}", SOCKET, [f, SEQPACKET if f == 38 else DGRAM, 0]]
              for f in range(64) if f not in (1, 2, 10, 16)]
    said = run_calls(client, calls, "s")
    assert {name: said[name] for name in (*allowed, "netlink_route")} == dict.fromkeys(
        (*allowed, "netlink_route"), "OK")
    others = {name: e for name, e in said.items() if name.startswith("family")}
    assert others == dict.fromkeys(others, "EPERM"), others
    assert said["family38"] == "EPERM"  # AF_ALG


def test_netlink_only_for_routes(device_with_client) -> None:
    """Netlink for NETLINK_ROUTE only: uevents (the host's devices, broadcast to every
    network namespace of the host's user namespace), audit and socket diagnostics were
    allowed before."""
    client, _ = device_with_client()
    said = run_calls(client, [["uevent", SOCKET, [16, DGRAM, 15]],
                              ["sock_diag", SOCKET, [16, RAW, 4]],
                              ["audit", SOCKET, [16, RAW, 9]],
                              ["route_high", SOCKET, [16, RAW, HIGH]],
                              ["route", SOCKET, [16, RAW, 0]]], "s")
    assert said == {"uevent": "EPERM", "sock_diag": "EPERM", "audit": "EPERM",
                    "route_high": "EPERM", "route": "OK"}


def test_a_family_with_bits_above_an_int_is_still_denied(device_with_client) -> None:
    """The kernel reads socket()'s family as an int: AF_VSOCK | 1 << 32 made a vsock
    socket (on a virtual machine, a line to its host) past a rule that compared all 64 bits.
    Every family rule compares the low 32 bits, for socket() and socketpair() alike."""
    client, _ = device_with_client()
    said = run_calls(client, [["vsock_high", SOCKET, [40 | HIGH, STREAM, 0]],
                              ["alg_high", SOCKET, [38 | HIGH, SEQPACKET, 0]],
                              ["tipc_pair", SOCKETPAIR, [30, DGRAM, 0, "FDS"]],
                              ["tipc_pair_high", SOCKETPAIR, [30 | HIGH, DGRAM, 0, "FDS"]],
                              ["unix_pair", SOCKETPAIR, [1, STREAM, 0, "FDS"]]], "s")
    assert said == {"vsock_high": "EPERM", "alg_high": "EPERM", "tipc_pair": "EPERM",
                    "tipc_pair_high": "EPERM", "unix_pair": "OK"}


def test_no_secret_memory(device_with_client) -> None:
    """memfd_secret takes its pages out of the kernel's direct map, for the whole machine;
    a session has no use for it."""
    client, _ = device_with_client()
    assert run_calls(client, [["memfd_secret", MEMFD_SECRET, [0]]], "s") == {
        "memfd_secret": "EPERM"}


def test_no_line_discipline_of_a_sessions_choosing(device_with_client) -> None:
    """TIOCSETD on a session's own terminal set any line discipline, and with
    dev.tty.ldisc_autoload on (the default) loaded its module (n_hdlc, n_gsm: the code of
    local root exploits). Denied now, even N_NULL, which this kernel has built in; the
    terminal itself still works."""
    client, _ = device_with_client()
    code = """
import errno, fcntl, os, struct
m, s = os.openpty()
try:
    fcntl.ioctl(s, 0x5423, struct.pack("i", 27))  # TIOCSETD, N_NULL
    print("OK")
except OSError as e:
    print(errno.errorcode[e.errno])
os.write(m, b"hi\\n")
print(os.read(s, 10))
"""
    assert out(client, code, "s") == "EPERM\nb'hi\\n'\n"


def test_a_cell_reaches_no_socket_of_the_host(device_with_client) -> None:
    """Abstract Unix sockets belong to a network namespace, so the host's are out of reach;
    the device's own ipc:// socket (the bus) is a file in a folder the session's root does
    not hold. A regression guard: both answered so before this test."""
    import socket
    import uuid
    name = f"\0cellbus-test-{uuid.uuid4().hex}"
    host = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    host.bind(name)
    host.listen()
    try:
        client, device = device_with_client()
        endpoint = next(a for a in device.argv if a.startswith("ipc://"))[len("ipc://"):]
        code = f"""
import socket
for address in ({name!r}, {endpoint!r}):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(address)
        print("CONNECTED")
    except OSError as e:
        print(type(e).__name__)
"""
        assert out(client, code, "s") == "ConnectionRefusedError\nFileNotFoundError\n"
    finally:
        host.close()


def test_no_file_watches_on_what_other_sessions_open(device_with_client) -> None:
    """A watch is on an inode, not a mount: inotify (and fanotify, unprivileged since Linux
    5.13) on a folder the session sees read-only named every file any process of the machine
    opened there. Here the host opens a file of cellbus's ``protocol/`` package, which the
    session sees, while the cell watches that folder: before, the cell printed the file's
    name (a watch on the standard library's ``__pycache__`` named each module another
    user's cell imported). Now the watches cannot be made at all."""
    client, _ = device_with_client()
    import protocol
    folder = os.path.dirname(os.path.abspath(protocol.__file__))
    code = f"""
import ctypes, errno, os, select, struct, time
libc = ctypes.CDLL(None, use_errno=True)
print("fanotify", "OK" if libc.syscall(300, 0x200, 0) >= 0 else  # FAN_REPORT_FID
      errno.errorcode[ctypes.get_errno()])
fd = libc.inotify_init1(os.O_NONBLOCK)
if fd < 0:
    print("inotify", errno.errorcode[ctypes.get_errno()])
else:
    libc.inotify_add_watch(fd, {folder!r}.encode(), 0x20)  # IN_OPEN
    print("watching", flush=True)
    names, deadline = set(), time.monotonic() + 10
    while not names and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            data = os.read(fd, 65536)
            names.add(data[16:16 + struct.unpack_from("iIII", data)[3]].rstrip(b"\\0").decode())
    print("saw", sorted(names))
"""
    stop = threading.Event()

    def host_opens() -> None:  # a process outside the session opens a file there, again
        while not stop.wait(0.05):
            Path(folder, "__init__.py").read_bytes()

    opener = threading.Thread(target=host_opens, daemon=True)
    opener.start()
    try:
        said = out(client, code, "s")
    finally:
        stop.set()
        opener.join()
    assert said == "fanotify EPERM\ninotify EPERM\n", said
