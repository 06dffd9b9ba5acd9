"""A control group per session worker: memory, process count and CPU, on cgroup v1 or v2.

rlimits bound one process; a cgroup bounds the whole session, children included, so a fork
bomb hits ``pids.max`` and a memory bomb spread over processes (or a tmpfs full of files)
hits the memory limit, and neither slows anyone else. Groups are made under the cgroup the
device itself runs in (``/proc/self/cgroup``), so an operator's own limits on the device
still hold, in a folder named for the template process::

    <device's cgroup>/cellbus-<template pid>/w<worker pid>

The template's folder has a memory limit too, the device's budget for all its sessions
together (``--memory-budget``): one session's limit bounds one session, the budget bounds
the sum, which the per-session limits alone would let grow past the machine's memory.

Only the template process (root) creates, reads and removes them; a worker joins its own
group before it drops privileges, and the group is read (was it OOM-killed? did it hit its
process limit?) and removed after the worker is reaped. The device reads one more thing of
a live worker's group (:func:`oom_kills_of`): whether the OOM killer ended its kernel.
"""

from __future__ import annotations

import errno
import os
import signal
from dataclasses import dataclass

from .limits import Limits

ROOT = "/sys/fs/cgroup"
V1_CONTROLLERS = ("memory", "pids", "cpu")
CPU_PERIOD_US = 100_000


@dataclass
class Events:
    """What the kernel counted for one group during its worker's life."""
    oom_kills: int = 0
    pids_denied: int = 0


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read_counter(path: str, key: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _own_cgroups() -> dict[str, str]:
    """controller (or "" for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    own: dict[str, str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                own[c] = path
    return own


def oom_kills_of(pid: int) -> int:
    """How many processes of the memory cgroup that ``pid`` is in the out-of-memory killer
    has ended (0 where there is none to read). The device reads a kernel's worker's while it
    lives: the kernel, a child of the worker, is what that killer ends, and the worker lives
    on to say only that its kernel was killed by SIGKILL (device/endings.py)."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return 0
    v2 = os.path.exists(os.path.join(ROOT, "cgroup.controllers"))  # as Cgroups.detect
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if ("" if v2 else "memory") not in (controllers.split(",") if controllers else [""]):
            continue
        # Only a worker's own group (<...>/cellbus-<template>/w<n>): without cgroups a worker
        # is in the device's, whose kills are not the session's.
        if not os.path.basename(os.path.dirname(path)).startswith("cellbus-"):
            return 0
        if v2:
            return _read_counter(os.path.join(ROOT, path.lstrip("/"), "memory.events"),
                                 "oom_kill")
        return _read_counter(os.path.join(ROOT, "memory", path.lstrip("/"),
                                          "memory.oom_control"), "oom_kill")
    return 0


class Cgroups:
    """The cgroup hierarchy of this machine, as the template uses it. Subclasses: v1, v2."""

    version = ""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    @staticmethod
    def detect(folder: str) -> Cgroups:
        """The machine's cgroups, or OSError saying why none can be used."""
        if os.path.exists(os.path.join(ROOT, "cgroup.controllers")):
            return CgroupsV2(folder)
        if all(os.path.isdir(os.path.join(ROOT, c)) for c in V1_CONTROLLERS):
            return CgroupsV1(folder)
        raise OSError(errno.ENOENT, f"no cgroup v2 at {ROOT} and no v1 memory, pids and cpu "
                                    "controllers")

    def setup(self) -> None:
        """Make the template's folder (and, for v2, delegate the controllers to it)."""
        raise NotImplementedError

    def create(self, name: str, limits: Limits) -> None:
        raise NotImplementedError

    def join(self, name: str) -> None:
        """Move the calling process into group ``name``."""
        raise NotImplementedError

    def events(self, name: str) -> Events:
        raise NotImplementedError

    def remove(self, name: str) -> bool:
        """Kill what is left in group ``name`` and remove it; False if it is not empty yet."""
        raise NotImplementedError

    def teardown(self) -> None:
        raise NotImplementedError

    def budget(self, memory_bytes: int) -> None:
        """Cap the memory of every session together (the template's folder): the sessions'
        own limits may add up to more than the machine has."""
        raise NotImplementedError

    def describe(self) -> str:
        return f"cgroup {self.version} (memory, pids, cpu)"


def _kill_all(procs_file: str) -> None:
    try:
        with open(procs_file) as f:
            pids = [int(p) for p in f.read().split()]
    except OSError:
        return
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stale(parent: str, prefix: str) -> list[str]:
    """Paths ``parent/<prefix><pid>`` left by template processes that are gone (a device
    killed with SIGKILL cannot clean up after itself)."""
    try:
        names = os.listdir(parent)
    except OSError:
        return []
    return [os.path.join(parent, name) for name in names if name.startswith(prefix)
            and name[len(prefix):].isdigit() and not os.path.exists(f"/proc/{name[len(prefix):]}")]


def _remove_stale(parent: str) -> None:
    """Remove the cgroup folders of templates that are gone, with every group in them."""
    for folder in stale(parent, "cellbus-"):
        _clear(folder)
        try:
            _rmdir(folder)
        except OSError:
            pass  # still busy: the next template start tries again


def _clear(folder: str) -> None:
    """Kill what is in each group under ``folder`` and remove the groups."""
    try:
        for entry in os.scandir(folder):
            if entry.is_dir(follow_symlinks=False):
                _kill_all(os.path.join(entry.path, "cgroup.procs"))
                _rmdir(entry.path)
    except OSError:
        pass


def _rmdir(path: str) -> bool:
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError as e:
        if e.errno == errno.EBUSY:
            return False
        raise
    return True


def _limit_memory_v1(path: str, memory_bytes: int) -> None:
    """Memory, and memory plus swap where the kernel counts it: no escaping into swap. (The
    first must be set first: the second may never be below it.)"""
    _write(os.path.join(path, "memory.limit_in_bytes"), str(memory_bytes))
    swap = os.path.join(path, "memory.memsw.limit_in_bytes")
    if os.path.exists(swap):
        _write(swap, str(memory_bytes))


def _limit_memory_v2(path: str, memory_bytes: int) -> None:
    _write(os.path.join(path, "memory.max"), str(memory_bytes))
    if os.path.exists(os.path.join(path, "memory.swap.max")):
        _write(os.path.join(path, "memory.swap.max"), "0")


class CgroupsV1(Cgroups):
    """One folder per controller (``/sys/fs/cgroup/memory/...`` and so on)."""

    version = "v1"

    def __init__(self, folder: str) -> None:
        super().__init__(folder)
        own = _own_cgroups()
        self.bases = {c: os.path.join(ROOT, c, own.get(c, "/").lstrip("/"), folder)
                      for c in V1_CONTROLLERS}

    def setup(self) -> None:
        for base in self.bases.values():
            _remove_stale(os.path.dirname(base))
            _clear(base)  # a dead template's folder, if this pid was its pid too
            os.makedirs(base, exist_ok=True)

    def create(self, name: str, limits: Limits) -> None:
        for controller, base in self.bases.items():
            path = os.path.join(base, name)
            os.mkdir(path)
            if controller == "memory" and limits.session_memory > 0:
                _limit_memory_v1(path, limits.session_memory)
            elif controller == "pids" and limits.processes > 0:
                _write(os.path.join(path, "pids.max"), str(limits.processes))
            elif controller == "cpu" and limits.cpu_cores > 0:
                _write(os.path.join(path, "cpu.cfs_period_us"), str(CPU_PERIOD_US))
                _write(os.path.join(path, "cpu.cfs_quota_us"),
                       str(int(limits.cpu_cores * CPU_PERIOD_US)))

    def budget(self, memory_bytes: int) -> None:
        _limit_memory_v1(self.bases["memory"], memory_bytes)

    def join(self, name: str) -> None:
        for base in self.bases.values():
            _write(os.path.join(base, name, "cgroup.procs"), "0")

    def events(self, name: str) -> Events:
        return Events(
            oom_kills=_read_counter(os.path.join(self.bases["memory"], name,
                                                 "memory.oom_control"), "oom_kill"),
            pids_denied=_read_counter(os.path.join(self.bases["pids"], name, "pids.events"),
                                      "max"))

    def remove(self, name: str) -> bool:
        done = True
        for base in self.bases.values():
            path = os.path.join(base, name)
            _kill_all(os.path.join(path, "cgroup.procs"))
            done = _rmdir(path) and done
        return done

    def teardown(self) -> None:
        for base in self.bases.values():
            _rmdir(base)


class CgroupsV2(Cgroups):
    """The unified hierarchy: one folder with every controller enabled for its children.

    The device's own cgroup must let it enable ``memory pids cpu`` below it (root does, and a
    systemd unit with ``Delegate=yes``); if it cannot, cgroups are reported off.
    """

    version = "v2"

    def __init__(self, folder: str) -> None:
        super().__init__(folder)
        own = _own_cgroups().get("", "/")
        self.parent = os.path.join(ROOT, own.lstrip("/"))
        self.base = os.path.join(self.parent, folder)

    def setup(self) -> None:
        _remove_stale(self.parent)
        _clear(self.base)
        wanted = "+memory +pids +cpu"
        _write(os.path.join(self.parent, "cgroup.subtree_control"), wanted)
        os.makedirs(self.base, exist_ok=True)
        _write(os.path.join(self.base, "cgroup.subtree_control"), wanted)

    def create(self, name: str, limits: Limits) -> None:
        path = os.path.join(self.base, name)
        os.mkdir(path)
        if limits.session_memory > 0:
            _limit_memory_v2(path, limits.session_memory)
        if limits.processes > 0:
            _write(os.path.join(path, "pids.max"), str(limits.processes))
        if limits.cpu_cores > 0:
            _write(os.path.join(path, "cpu.max"),
                   f"{int(limits.cpu_cores * CPU_PERIOD_US)} {CPU_PERIOD_US}")

    def budget(self, memory_bytes: int) -> None:
        _limit_memory_v2(self.base, memory_bytes)

    def join(self, name: str) -> None:
        _write(os.path.join(self.base, name, "cgroup.procs"), "0")

    def events(self, name: str) -> Events:
        path = os.path.join(self.base, name)
        return Events(oom_kills=_read_counter(os.path.join(path, "memory.events"), "oom_kill"),
                      pids_denied=_read_counter(os.path.join(path, "pids.events"), "max"))

    def remove(self, name: str) -> bool:
        path = os.path.join(self.base, name)
        try:
            _write(os.path.join(path, "cgroup.kill"), "1")
        except OSError:
            _kill_all(os.path.join(path, "cgroup.procs"))
        return _rmdir(path)

    def teardown(self) -> None:
        _rmdir(self.base)
