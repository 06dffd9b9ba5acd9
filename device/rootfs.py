"""The filesystem a sandboxed worker sees: a fresh root, mostly read-only, mostly empty.

Built inside the worker's own mount namespace (so nothing here touches the host's mounts),
the same way bubblewrap builds one: a small tmpfs becomes the new root, and into it go

- read-only, nosuid, nodev bind mounts of the system (``/usr``, ``/etc``, ``/opt``, the
  ``/bin``-style links) and of the Python the template runs (its prefixes and every folder
  on ``sys.path``, so a lazy ``import`` still works), and nothing else of the host: not the
  device's key, not the store, not other sessions' folders, not ``/home`` or ``/root``;
- one private, writable tmpfs, capped at the session's disk limit *in all*, whose three
  folders are the session's working directory (:data:`WORKDIR`, mode 0700, owned by the
  session's uid, also its ``HOME``), ``/tmp`` and ``/dev/shm``; gone with the worker, so
  nothing privileged ever has to clean them up by name;
- a minimal ``/dev`` (null, zero, full, random, urandom, and terminals of its own in a
  private ``devpts``) and a ``/proc`` of the worker's own PID namespace, so it sees only its
  own processes;

then ``pivot_root`` into it, detach the old root, and make the new root itself read-only.
Paths given in ``hide`` (the key file, say) that a bound folder would expose are covered
with an empty read-only file or folder.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

from . import linux as L

SYSTEM = ("/usr", "/etc", "/opt", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
DEVICES = ("null", "zero", "full", "random", "urandom")
#: The session's working directory inside its root.
WORKDIR = "/home/session"
BIND = L.MS_BIND | L.MS_REC
TMPFS = L.MS_NOSUID | L.MS_NODEV
#: Terminals a session may hold at once (its devpts's ``max``). The machine has one pool for
#: every devpts instance but the host's own (``kernel.pty.max`` minus ``kernel.pty.reserve``,
#: 3,072 by default), so without a bound one session could take all of it.
SESSION_PTYS = 32


#: cellbus's packages a worker loads code from (device: the sandbox's own steps run in it).
PACKAGES = ("session", "protocol", "device")


def python_paths() -> list[str]:
    """Folders the running Python and cellbus load code from.

    A folder that holds cellbus's packages (a checkout, run in place) is not given whole:
    only those packages are, so a session sees nothing else of it (``.git``, ``tests``, or
    files an operator keeps there, such as keys)."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths.update(p for p in sys.path if p)
    files = [getattr(sys.modules.get(name), "__file__", None) for name in PACKAGES]
    packages = [os.path.dirname(os.path.abspath(f)) for f in files if isinstance(f, str)]
    real = {os.path.realpath(p) for p in paths} | {os.path.abspath(p) for p in paths}
    holders = {os.path.dirname(p) for p in packages}
    holders |= {os.path.realpath(p) for p in holders}
    real = (real - holders) | set(packages) | {os.path.realpath(p) for p in packages}
    return sorted(p for p in real if os.path.isdir(p))


def shown(path: str) -> bool:
    """Whether a sandboxed worker sees the host's ``path`` (a file or folder), under the
    system folders or the Python's (what :func:`build` binds), as the device's template
    finds them."""
    system = [p for p in SYSTEM if os.path.isdir(p)]
    roots = system + [os.path.realpath(p) for p in system] + python_paths()
    return all(any(p == r or p.startswith(r.rstrip("/") + "/") for r in roots)
               for p in (os.path.abspath(path), os.path.realpath(path)))  # a link, and where


def _outermost(paths: Iterable[str]) -> list[str]:
    """``paths`` without those inside another one of them."""
    kept: list[str] = []
    for path in sorted(set(paths)):
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


def _mkdirs(root: str, path: str) -> str:
    target = root + path
    os.makedirs(target, mode=0o755, exist_ok=True)
    return target


def _bind_read_only(root: str, path: str) -> None:
    if os.path.isdir(path):
        target = _mkdirs(root, path)
    else:
        _mkdirs(root, os.path.dirname(path))
        target = root + path
        open(target, "a").close()
    L.mount(path, target, None, BIND)
    L.make_read_only(target)


def _tmpfs(target: str, options: str) -> None:
    os.makedirs(target, mode=0o755, exist_ok=True)
    L.mount("tmpfs", target, "tmpfs", TMPFS, options)


#: Where the session's one writable tmpfs is mounted while the root is built, and its
#: folders: (name, where it is bound, mode).
SCRATCH = "/.scratch"
WRITABLE = (("tmp", "/tmp", 0o1777), ("home", WORKDIR, 0o700), ("shm", "/dev/shm", 0o1777))


def _scratch(root: str, *, uid: int, size_bytes: int) -> str:
    """Mount the session's one writable tmpfs (``size_bytes`` for all of /tmp, its working
    directory and /dev/shm together) and make its folders; returns where it is mounted."""
    scratch = root + SCRATCH
    _tmpfs(scratch, f"mode=0700,size={max(size_bytes, 1 << 20)}")
    for name, _, mode in WRITABLE:
        os.mkdir(f"{scratch}/{name}")
        os.chmod(f"{scratch}/{name}", mode)
    os.chown(f"{scratch}/home", uid, uid)
    return scratch


def _bind_writable(root: str, scratch: str, name: str) -> None:
    target = next(path for folder, path, _ in WRITABLE if folder == name)
    L.mount(f"{scratch}/{name}", _mkdirs(root, target), None, L.MS_BIND)


def _private_ptys(root: str) -> None:
    """A devpts instance of the session's own at ``/dev/pts`` (and ``/dev/ptmx``): programs
    that need a terminal (bash_kernel runs bash on one) get one, and see no other session's;
    at most :data:`SESSION_PTYS` at once, of the machine's one pool.
    Without it (a kernel too old for ``newinstance``) sessions just have no terminals."""
    try:
        L.mount("devpts", _mkdirs(root, "/dev/pts"), "devpts", L.MS_NOSUID | L.MS_NOEXEC,
                f"newinstance,ptmxmode=0666,mode=0620,max={SESSION_PTYS}")
    except OSError:
        return
    os.symlink("pts/ptmx", root + "/dev/ptmx")


def build(root: str, *, uid: int, size_bytes: int, hide: Iterable[str] = ()) -> None:
    """Build the new root at ``root`` (an empty folder) and move this process into it.

    Needs root privileges and a mount namespace of this process's own, and must run in the
    worker's PID namespace (for ``/proc``). Afterwards the working directory is
    :data:`WORKDIR`.
    """
    L.mount(None, "/", None, L.MS_REC | L.MS_PRIVATE)  # nothing propagates back to the host
    L.mount("tmpfs", root, "tmpfs", TMPFS, "mode=0755,size=1m")
    scratch = _scratch(root, uid=uid, size_bytes=size_bytes)
    # /tmp first: folders bound below (a checkout under /tmp, say) must show through it.
    _bind_writable(root, scratch, "tmp")
    bound = []
    for path in SYSTEM:
        if os.path.islink(path):
            os.symlink(os.readlink(path), root + path)
        elif os.path.isdir(path):
            bound.append(path)
    visible = _outermost(bound + python_paths())
    for path in visible:
        _bind_read_only(root, path)
    for path in hide:
        if any(path.startswith(b.rstrip("/") + "/") for b in visible) and \
                os.path.lexists(root + path):
            if os.path.isdir(root + path):
                L.mount("tmpfs", root + path, "tmpfs", TMPFS | L.MS_RDONLY, "size=4k,mode=0555")
            else:
                empty = root + "/.hidden"
                open(empty, "x").close()
                L.mount(empty, root + path, None, L.MS_BIND)
                L.make_read_only(root + path, recursive=False)
                os.unlink(empty)  # the bind keeps the empty file; its name goes
    _bind_writable(root, scratch, "home")
    _tmpfs(root + "/dev", "mode=0755,size=64k")
    for name in DEVICES:
        open(f"{root}/dev/{name}", "a").close()
        L.mount(f"/dev/{name}", f"{root}/dev/{name}", None, L.MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{root}/dev/{name}")
    _bind_writable(root, scratch, "shm")
    L.umount2(scratch, L.MNT_DETACH)  # the binds keep the tmpfs; its own mount point goes
    os.rmdir(scratch)
    _private_ptys(root)
    L.make_read_only(root + "/dev", recursive=False)
    _mkdirs(root, "/proc")
    L.mount("proc", root + "/proc", "proc", L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC)
    old = _mkdirs(root, "/.old-root")
    L.pivot_root(root, old)
    os.chdir("/")
    L.umount2("/.old-root", L.MNT_DETACH)
    os.rmdir("/.old-root")
    L.make_read_only("/", recursive=False)
    os.chdir(WORKDIR)
