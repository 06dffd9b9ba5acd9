"""The syscall filter a session worker runs under (seccomp, through libseccomp).

Default allow, and ``EPERM`` for what session code never needs and what sandbox escapes are
made of: the kernel keyring, eBPF, io_uring; what takes from a pool the whole machine
shares, which a single call could empty for every other process: kernel AIO contexts
(``io_setup``, ``fs.aio-max-nr``) and huge pages (``MAP_HUGETLB``, ``SHM_HUGETLB``,
``MFD_HUGETLB``: the host's reserved ``vm.nr_hugepages``, which a cgroup v1 memory limit
does not count); ptrace and cross-process memory access, mount
and namespace calls (``unshare``, ``setns``, and ``clone`` with any ``CLONE_NEW*`` flag, so no
user namespace can hand the code capabilities back), module and kexec loading,
``memfd_secret`` (it takes pages out of the kernel's direct map), and the terminal ioctls
that inject input (``TIOCSTI``), drive the console (``TIOCLINUX``) or set a terminal's line
discipline (``TIOCSETD``: with ``dev.tty.ldisc_autoload`` on, the default, it loads and
reaches modules such as n_hdlc and n_gsm, whose bugs were local root exploits; no program
a session runs needs another line discipline than the terminal's own).
File watches (inotify, and fanotify, which Linux 5.13 opened to unprivileged callers) are
denied too: a watch is on an inode, not on a mount, so one on a folder the session sees
read-only (the Python's ``__pycache__``, ``/usr/bin``, ``/opt``) names every file any
process of the machine opens there, another user's session among them: a watch on the
standard library's ``__pycache__`` saw ``wave.cpython-311.pyc`` the moment another user's
cell ran ``import wave``. A session has nothing of its own worth watching (its files are
its code's); ``tail -f`` falls back to polling, as watchdog's PollingObserver does.

Sockets are allowed only of the families session code has a use for (:data:`FAMILIES`:
Unix, IPv4 and IPv6, and netlink for ``NETLINK_ROUTE`` alone, which ``getaddrinfo`` and
``getifaddrs`` read): every other family (vsock, which reaches the hypervisor of a virtual
machine; ``AF_ALG``, the kernel's crypto API; packet, XDP, TIPC, RDS, Bluetooth...) and every
other netlink protocol (uevents of the host's devices, audit, socket diagnostics) is the
kernel code a sandbox has no use for, and where its escapes were found. An ``int`` argument is
compared on its low 32 bits only, as the kernel reads it: ``socket(AF_VSOCK | 1 << 32, ...)``
passed a rule that compared all 64 bits, and the kernel made it a vsock socket.
``clone3`` answers ``ENOSYS``, so the C library falls back to ``clone``, whose flags a filter
can read. A call from another ABI than the native one (32-bit ``int 0x80``, or x32: the
native entry with ``__X32_SYSCALL_BIT`` set) kills the whole process, which the device
reports as a forbidden system call. libseccomp's own default for a foreign ABI kills only
the calling thread: a worker whose main thread died that way stayed alive, and its cell
``working``, for ever. For the same reason no rule here kills (each denial answers an
errno, from any thread); a rule that must kill uses ``KILL_PROCESS``, never ``KILL``, which
is libseccomp's name for killing the thread.

The binding is libseccomp's own Python module when the interpreter has it (Debian's
``python3-seccomp``), else ``pyseccomp`` from PyPI, a ctypes binding with the same API.
"""

from __future__ import annotations

import errno
import importlib
from types import ModuleType
from typing import Any

DENIED = (
    "keyctl", "add_key", "request_key",
    "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "io_setup",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen",
    "fsconfig", "fsmount", "fspick", "mount_setattr",
    "unshare", "setns",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "open_by_handle_at", "name_to_handle_at",
    "swapon", "swapoff", "reboot", "acct", "quotactl",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "memfd_secret",
    "inotify_init", "inotify_init1", "inotify_add_watch", "fanotify_init", "fanotify_mark",
)
CLONE_NEW_FLAGS = (0x00000080, 0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000,
                   0x20000000, 0x40000000)  # TIME, NS, CGROUP, UTS, IPC, USER, PID, NET
#: Socket families allowed (AF_UNIX, AF_INET, AF_INET6, AF_NETLINK); the kernel refuses any
#: family from AF_MAX (46 in Linux 6.x) up, so denying the rest below 64 denies them all.
FAMILIES = (1, 2, 10, 16)
AF_NETLINK = 16
NETLINK_ROUTE = 0
#: The bits of a system call argument the kernel reads as ``int``.
INT = 0xFFFFFFFF
TIOCSTI = 0x5412
TIOCLINUX = 0x541C
TIOCSETD = 0x5423
#: (call, argument, flag): the flag that asks for huge pages, in the argument that holds it.
HUGE_PAGES = (("mmap", 3, 0x40000), ("shmget", 2, 0o4000), ("memfd_create", 1, 0x4))


def binding() -> ModuleType:
    """libseccomp's Python module; ImportError (or OSError: no libseccomp.so) if neither."""
    try:
        return importlib.import_module("seccomp")
    except ImportError:
        return importlib.import_module("pyseccomp")


def build() -> Any:
    """The filter, built once in the template and loaded by each worker after it forks."""
    sc = binding()
    f = sc.SyscallFilter(sc.ALLOW)
    f.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
    deny = sc.ERRNO(errno.EPERM)
    for name in DENIED:
        try:
            f.add_rule(deny, name)
        except (OSError, ValueError, RuntimeError):
            pass  # a call this kernel or architecture does not have
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    for flag in CLONE_NEW_FLAGS:
        f.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    for call in ("socket", "socketpair"):
        for family in range(64):
            if family not in FAMILIES:
                f.add_rule(deny, call, sc.Arg(0, sc.MASKED_EQ, INT, family))
        # The protocol on all its 64 bits: a value whose low 32 are 0 with any bit above
        # them set is refused too, which denies more, never less.
        f.add_rule(deny, call, sc.Arg(0, sc.MASKED_EQ, INT, AF_NETLINK),
                   sc.Arg(2, sc.NE, NETLINK_ROUTE))
    for name, arg, flag in HUGE_PAGES:
        f.add_rule(deny, name, sc.Arg(arg, sc.MASKED_EQ, flag, flag))
    for request in (TIOCSTI, TIOCLINUX, TIOCSETD):
        f.add_rule(deny, "ioctl", sc.Arg(1, sc.MASKED_EQ, INT, request))
    return f


def load(syscall_filter: Any) -> None:
    """Apply the filter to the calling process, for good (needs ``no_new_privs`` or root)."""
    syscall_filter.load()
