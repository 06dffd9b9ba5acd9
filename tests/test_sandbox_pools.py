"""What one session may take of the machine's shared kernel pools, which no cgroup, uid or
namespace of its own bounds: terminals, kernel AIO contexts, huge pages, core dumps.

Each pool is global (one count for the whole machine, or a handler on the host), so a
session that took all of it would fail every other session's use of it, and the host's.
Real devices and real sandboxed workers (root only, as tests/test_sandbox.py).
"""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

from test_sandbox import out, pytestmark  # noqa: F401 (the same skip as there)

#: Run in a cell: open terminals (``/dev/ptmx``) until the kernel refuses or 300 are open,
#: and keep them open (``held``) for the cells after.
HOLD_PTYS = """
import errno, os
held = []
refused = None
try:
    while len(held) < 300:
        held.append(os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY))
except OSError as e:
    refused = errno.errorcode[e.errno]
print(len(held), refused)
"""


def test_a_session_holds_a_bounded_share_of_the_machines_terminals(device_with_client) -> None:
    """The machine has one pool of terminals for every devpts but the host's own (pty.max
    minus pty.reserve, 3,072 by default): each session's devpts allowed all of it, so one
    session (300 here, up to 1,024 a process) could leave bash_kernel's next session, and
    every container of the host, without a terminal. Now each holds at most SESSION_PTYS,
    and another session opens one while that one holds all of its own."""
    from device.rootfs import SESSION_PTYS
    client, _ = device_with_client()
    held, refused = out(client, HOLD_PTYS, "hog").split()
    assert (int(held), refused) == (SESSION_PTYS, "ENOSPC")
    assert out(client, "import os\nm, s = os.openpty()\nprint(os.ttyname(s))",
               "other") == "/dev/pts/0\n"
    assert out(client, "print(len(held))", "hog") == f"{SESSION_PTYS}\n"  # still held


#: io_setup on x86-64, as libaio calls it: a kernel AIO context of N events, which takes N
#: from one pool for the whole machine (fs.aio-max-nr, 65,536 by default).
IO_SETUP = 206
#: Run in a cell: ask for the whole pool, and keep what was given (``ctx``).
AIO_SETUP = f"""
import ctypes, errno, json
libc = ctypes.CDLL(None, use_errno=True)
ctx = ctypes.c_ulong(0)
result = libc.syscall({IO_SETUP}, 65536, ctypes.byref(ctx))
print(json.dumps("ALLOWED" if result == 0 else errno.errorcode[ctypes.get_errno()]))
"""


def host_io_setup() -> int:
    """io_setup(1) in this (host, root) process: 0, or the errno it failed with."""
    libc = ctypes.CDLL(None, use_errno=True)
    ctx = ctypes.c_ulong(0)
    if libc.syscall(IO_SETUP, 1, ctypes.byref(ctx)) != 0:
        return ctypes.get_errno()
    libc.syscall(207, ctx)  # io_destroy
    return 0


def test_a_session_cannot_take_the_machines_aio_contexts(device_with_client) -> None:
    """io_setup(65536) in a cell took the machine's whole fs.aio-max-nr pool for as long as
    its session lived: every other process's io_setup failed with EAGAIN, other sessions'
    and the host's, root's and databases on libaio among them. Session code has no need of
    kernel AIO (glibc's POSIX AIO uses threads), so the filter denies io_setup as it denies
    io_uring."""
    client, _ = device_with_client()
    assert json.loads(out(client, AIO_SETUP, "hog")) == "EPERM"
    assert host_io_setup() == 0  # while the session that asked lives


#: Run in a cell: raise the core size limit as far as the hard limit lets it, crash a fresh
#: program (a program just executed is dumpable again) in the working directory, and say
#: what the limit was and whether a core was written.
CRASH = """
import json, os, resource, subprocess, sys
soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
child = subprocess.run([sys.executable, "-c",
    "import os, resource\\n"
    "h = resource.getrlimit(resource.RLIMIT_CORE)[1]\\n"
    "resource.setrlimit(resource.RLIMIT_CORE, (h, h))\\n"
    "os.abort()"], cwd="/home/session")
cores = [n for n in os.listdir("/home/session") if n.startswith("core")]
print(json.dumps([soft, hard, child.returncode, cores]))
"""


def test_a_session_cannot_dump_core(device_with_client) -> None:
    """RLIMIT_CORE was 0 soft but unlimited hard, so any program a cell ran could raise it
    and crash: the kernel wrote its whole memory image as the host's core_pattern says,
    into the session's folder, or (a pipe such as systemd-coredump or apport) to a root
    helper on the host that keeps it outside every session's limit. Now the hard limit is
    0 too, and no core is written."""
    client, _ = device_with_client()
    soft, hard, returncode, cores = json.loads(out(client, CRASH, "s"))
    assert (soft, hard, cores) == (0, 0, [])
    assert returncode == -6  # SIGABRT: it did crash


#: Run in a cell: ask for huge pages (the machine's reserved pool, vm.nr_hugepages) each way
#: a process can without a hugetlbfs mount: an anonymous MAP_HUGETLB mapping, a SysV
#: segment with SHM_HUGETLB and a memfd with MFD_HUGETLB; what each answered.
HUGE_PAGES = """
import ctypes, errno, json
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
def answer(failed):
    return errno.errorcode[ctypes.get_errno()] if failed else "ALLOWED"
size = 1 << 21
mapped = libc.mmap(None, size, 3, 0x22 | 0x40000, -1, 0)  # MAP_PRIVATE|ANONYMOUS|HUGETLB
shm = libc.shmget(0, size, 0o1000 | 0o4000 | 0o600)  # IPC_CREAT | SHM_HUGETLB
memfd = libc.memfd_create(b"huge", 4)  # MFD_HUGETLB
print(json.dumps({"mmap": answer(mapped == ctypes.c_void_p(-1).value), "shmget": answer(shm < 0),
                  "memfd_create": answer(memfd < 0)}))
"""


def test_a_session_cannot_take_the_machines_huge_pages(device_with_client) -> None:
    """Huge pages come from one pool the host reserves (vm.nr_hugepages, for a database,
    say), and a cgroup v1 memory limit does not count them: with 4 reserved, one cell's
    mmap(MAP_HUGETLB) of 8 MiB reserved all 4 (HugePages_Rsvd 4) and the host's own, as
    root, failed with ENOMEM for as long as the session lived. Session code has no need of
    them (allocators that ask fall back to plain pages), so the filter denies every way to
    ask. (Here the pool may be empty, where the calls failed with ENOMEM, not EPERM.)"""
    client, _ = device_with_client()
    assert json.loads(out(client, HUGE_PAGES, "s")) == {
        "mmap": "EPERM", "shmget": "EPERM", "memfd_create": "EPERM"}
    assert out(client, "import mmap\nm = mmap.mmap(-1, 1 << 21)\nm[0] = 1\nprint(m[0])",
               "s") == "1\n"  # plain mappings, of any size, still work


#: Run in a cell: open a file and map it, then close it, 3,000 times (more than the
#: process's RLIMIT_NOFILE), and say how many are held, and that limit.
MAP_FILES = """
import ctypes, os, resource
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
with open("/tmp/f", "wb") as f:
    f.write(b"x" * 4096)
held = 0
for _ in range(3000):
    fd = os.open("/tmp/f", os.O_RDONLY)
    if libc.mmap(None, 4096, 1, 1, fd, 0) not in (None, 2**64 - 1):
        held += 1
    os.close(fd)
print(held, *resource.getrlimit(resource.RLIMIT_NOFILE))
"""


def test_the_machines_file_count_binds_no_session(device_with_client) -> None:
    """fs.file-max is one count for the machine (an unprivileged process past it gets
    ENFILE), which no cgroup or uid bounds, and RLIMIT_NOFILE does not bound what a session
    holds of it: a process maps a file and closes it, and holds it with no descriptor (here
    3,000 past a limit of 1,024; 50,000 at once were seen). A file's memory is charged to
    the session's cgroup, so the device raises fs.file-max to its maximum, as systemd does
    at boot, and the session's memory limit bounds its files. (fs.file-max is put back as
    it was after the test.)"""
    from device.fit import FILE_MAX_LIMIT
    path = Path("/proc/sys/fs/file-max")
    was = int(path.read_text())
    in_use = int(Path("/proc/sys/fs/file-nr").read_text().split()[0])
    if was >= FILE_MAX_LIMIT:  # a systemd host: a finite count, as on a host without it
        path.write_text(str(4 * in_use + 1_000_000))
    finite = int(path.read_text())
    try:
        client, _ = device_with_client()
        # not its log line: a device of a test running beside this one (xdist) may have
        # raised the count first, and this device then had nothing to raise
        assert int(path.read_text()) == FILE_MAX_LIMIT, finite
        assert out(client, MAP_FILES, "s") == "3000 1024 1024\n"  # its own limit, unlowered
    finally:
        path.write_text(str(was))


def test_where_the_count_cannot_be_raised_descriptors_are_bounded_and_it_says_why(
        monkeypatch) -> None:
    """A read-only /proc/sys (a container): each process's open files are bounded to fit
    all the device's workers in half of fs.file-max, and the start warns of mapped files."""
    import device.fit as fit_module

    def read_only(value: int) -> None:
        raise OSError(30, "Read-only file system")
    monkeypatch.setattr(fit_module, "file_max", lambda: 2_466_320)
    monkeypatch.setattr(fit_module, "_write_file_max", read_only)
    files, said = fit_module.unbind_file_max(True)
    assert files == 2_466_320 and said[0].startswith(
        "WARNING: cannot raise fs.file-max (2466320) to its maximum (Read-only file system)")
    assert "by mapping each and closing it" in said[0]
    assert fit_module.unbind_file_max(False) == (2_466_320, [])  # files not charged: no raise
    monkeypatch.setattr(fit_module, "file_max", lambda: fit_module.FILE_MAX_LIMIT)
    assert fit_module.unbind_file_max(True) == (0, [])  # already unbound


def test_the_open_files_bound_says_when_it_cannot_hold() -> None:
    from device.fit import fit
    from device.limits import Limits
    limits, said = fit(Limits(), 22, 0, 2_466_320)  # 16 sessions and 6 ready, 256 processes
    assert limits.open_files == 218 and said == [
        "open files of each session process: 218 (so that up to 22 workers of 256 processes "
        "(--max-processes) hold at most half of this machine's 2466320 (fs.file-max) together)"]
    limits, said = fit(Limits(), 22, 0, 100_000)
    assert limits.open_files == 64 and "not below 64, so they may hold more" in said[0]
    assert fit(Limits(), 2, 0, 10**7) == (Limits(), [])
