"""The few Linux system calls the sandbox needs that Python 3.11's ``os`` lacks, via ctypes.

Each raises ``OSError`` with the errno and the call's name, like the ``os`` functions do.
Only :mod:`device.sandbox` and its helpers use these; they are x86-64 and arm64 Linux only.
"""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Iterable

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 0x2

MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
AT_FDCWD = -100
AT_RECURSIVE = 0x8000

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38

_SYSCALLS = {  # (x86_64, aarch64)
    "pivot_root": (155, 41),
    "mount_setattr": (442, 442),
}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _check(result: int, call: str, detail: str = "") -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{call}{f' {detail}' if detail else ''}: {os.strerror(errno)}")


def _syscall_number(name: str) -> int:
    arch = platform.machine()
    x86, arm = _SYSCALLS[name]
    if arch == "x86_64":
        return x86
    if arch in ("aarch64", "arm64"):
        return arm
    raise OSError(38, f"{name}: not supported on {arch}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def mount(source: str | None, target: str, fstype: str | None, flags: int,
          data: str | None = None) -> None:
    _check(_libc.mount(source.encode() if source else None, target.encode(),
                       fstype.encode() if fstype else None, flags,
                       data.encode() if data else None), "mount", target)


def umount2(target: str, flags: int) -> None:
    _check(_libc.umount2(target.encode(), flags), "umount2", target)


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_libc.syscall(_syscall_number("pivot_root"), new_root.encode(), put_old.encode()),
           "pivot_root", new_root)


def make_read_only(path: str, *, recursive: bool = True) -> None:
    """Make the mount at ``path`` (and, if ``recursive``, every mount below it) read-only,
    nosuid and nodev with ``mount_setattr`` (Linux 5.12+)."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0, 0, 0)
    _check(_libc.syscall(_syscall_number("mount_setattr"), AT_FDCWD, path.encode(),
                         AT_RECURSIVE if recursive else 0, ctypes.byref(attr),
                         ctypes.sizeof(attr)), "mount_setattr", path)


def close_descriptors_except(keep: Iterable[int]) -> None:
    """Close every descriptor from 3 up but those in ``keep`` (``os.closerange``, which is
    one ``close_range`` call per gap on Linux 5.9+).

    For a process that is about to hold less than it inherited: what a parent leaked to it
    (a descriptor without close-on-exec, or one uvloop's spawn left open) is closed whatever
    it is, so the process holds only what it knows it holds. Only for descriptors no Python
    object owns: one that did would later close a number that may by then mean another.
    """
    low = 3
    for fd in sorted({fd for fd in keep if fd >= 3}):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, max(os.sysconf("SC_OPEN_MAX"), low + 1))


def prctl(option: int, arg: int = 0) -> None:
    _check(_libc.prctl(option, arg, 0, 0, 0), "prctl")
