"""Per-session resource limits: what they are, how a worker gets them, how to say so.

Limits are set with ``setrlimit`` in the worker process after it is forked and before any user
code runs; each is configurable and has a default meant for a shared public service. When one
is hit, the cell's error names the limit in words (see :func:`explain`).
"""

from __future__ import annotations

import resource
import signal
from dataclasses import asdict, dataclass, replace
from typing import Any

GiB = 1024 ** 3
MiB = 1024 ** 2
#: The share of this machine's memory that all sessions of a device may use together, unless
#: ``--memory-budget`` says otherwise: the rest is for the nodes and the system.
DEFAULT_MEMORY_BUDGET = "50%"
#: ``oom_score_adj`` of every session process (the kernel's maximum): when memory runs out,
#: the OOM killer takes sessions before any node, whose own scores are left as they are.
SESSION_OOM_SCORE_ADJ = 1000


@dataclass(frozen=True)
class Limits:
    #: CPU seconds a session may use in all (RLIMIT_CPU).
    cpu_seconds: int = 3600
    #: Address space of a worker, in bytes (RLIMIT_AS): allocations beyond it fail.
    memory_bytes: int = 4 * GiB
    #: Processes (RLIMIT_NPROC). Linux counts them per user, and does not apply this to root.
    processes: int = 256
    #: Largest file a session may write, in bytes (RLIMIT_FSIZE).
    file_bytes: int = 1 * GiB
    #: Open files (RLIMIT_NOFILE).
    open_files: int = 1024
    #: CPU cores a session may keep busy at once (cgroup cpu quota; 0: no quota).
    cpu_cores: float = 1.0
    #: Bytes a sandboxed session may keep in its working directory, and again in /tmp.
    disk_bytes: int = 1 * GiB
    #: Memory of the session's cgroup, all its processes and files (0: ``memory_bytes``);
    #: less where the device's memory budget is split among its workers (device.fit).
    cgroup_memory_bytes: int = 0

    @property
    def session_memory(self) -> int:
        """The memory all of a session's processes and files may use together (its cgroup)."""
        return self.cgroup_memory_bytes or self.memory_bytes

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def __str__(self) -> str:
        """In the device's start line, in the options' words (not the dataclass's repr)."""
        cores = f"{self.cpu_cores:g} CPU cores" if self.cpu_cores else "no CPU core quota"
        return (f"CPU {self.cpu_seconds} s, memory {_size(self.memory_bytes)}, "
                f"{self.processes} processes, files up to {_size(self.file_bytes)}, "
                f"{self.open_files} open files, {cores}, disk {_size(self.disk_bytes)}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Limits:
        fields = cls.__dataclass_fields__
        values: dict[str, Any] = {k: float(v) if fields[k].type == "float" else int(v)
                                  for k, v in d.items() if k in fields}
        return cls(**values)


def memory_budget(text: str) -> int:
    """``--memory-budget``: ``"N%"`` of this machine's memory, or bytes; 0 means none.
    ValueError saying what is wrong."""
    text = text.strip()
    try:
        if text.endswith("%"):
            share = float(text[:-1])
            if not 0 < share <= 100:
                raise ValueError
            return int(_machine_memory() * share / 100)
        value = int(text)
    except ValueError:
        raise ValueError(f"{text!r}: give N% of the machine's memory, or bytes (0: no "
                         "budget)") from None
    if value < 0:
        raise ValueError(f"{text!r} is negative")
    return value


def _machine_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise ValueError("/proc/meminfo has no MemTotal")


#: Each limit a worker gets by ``setrlimit``: its field, its resource, what it is (for the
#: device's log), the option that sets it, and where a device's own hard limit comes from.
_RLIMITS = (
    ("cpu_seconds", resource.RLIMIT_CPU, "CPU seconds of each session", "--max-cpu",
     "ulimit -Ht, LimitCPU="),
    ("memory_bytes", resource.RLIMIT_AS, "address space of each worker", "--max-memory",
     "ulimit -Hv, LimitAS="),
    ("processes", resource.RLIMIT_NPROC, "processes of each session", "--max-processes",
     "ulimit -Hu, LimitNPROC="),
    ("file_bytes", resource.RLIMIT_FSIZE, "largest file a session may write",
     "--max-file-bytes", "ulimit -Hf, LimitFSIZE="),
    ("open_files", resource.RLIMIT_NOFILE, "open files of each session process", "",
     "ulimit -Hn, LimitNOFILE="),
)
_SIZES = ("memory_bytes", "file_bytes")


def within_hard(limits: Limits) -> tuple[Limits, list[str]]:
    """``limits`` lowered to this process's hard limits, and a WARNING line for each one
    lowered. A worker (forked from the template, which may not raise a hard limit) cannot
    be given more than the device has: a limit above it failed every worker as it set its
    limits ("not allowed to raise maximum limit"), and every cell ended with "the
    session's worker process exited with code 1"."""
    said: list[str] = []
    for field, which, what, option, where in _RLIMITS:
        value, hard = getattr(limits, field), resource.getrlimit(which)[1]
        if value <= 0 or hard == resource.RLIM_INFINITY or value <= hard:
            continue
        limits = replace(limits, **{field: hard})
        words = _size if field in _SIZES else str
        given = (f"{option} {words(value)}" if option
                 else f"{words(value)}, what a session gets otherwise,")
        said.append(f"WARNING: {what}: {words(hard)} ({given} is above this device's own "
                    f"hard limit, which its workers cannot raise: {where}; raise that for "
                    "more)")
    return limits, said


def apply(limits: Limits) -> None:
    """Set the limits on this process (the worker, before user code runs), none for core
    dumps, and make it the OOM killer's first choice (see :data:`SESSION_OOM_SCORE_ADJ`)."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(SESSION_OOM_SCORE_ADJ))
    except OSError:
        pass  # no /proc: nothing to rank by
    for which, value in ((resource.RLIMIT_CPU, limits.cpu_seconds),
                         (resource.RLIMIT_AS, limits.memory_bytes),
                         (resource.RLIMIT_NPROC, limits.processes),
                         (resource.RLIMIT_FSIZE, limits.file_bytes),
                         (resource.RLIMIT_NOFILE, limits.open_files)):
        if value > 0:
            # CPU: the soft limit sends SIGXCPU (which ends the worker); hard is a backstop,
            # within this process's own (within_hard made ``value`` fit it).
            hard = value + 5 if which == resource.RLIMIT_CPU else value
            cap = resource.getrlimit(which)[1]
            if cap != resource.RLIM_INFINITY:
                hard = min(hard, cap)
            resource.setrlimit(which, (min(value, hard), hard))
    # No core dumps, hard limit too, so no program a cell runs can raise it: a crash would
    # write its memory image where the host's core_pattern says, or hand it to a root helper
    # outside every session limit when that is a pipe (the kernel still starts the helper
    # with the limit 0; systemd-coredump and apport then keep nothing).
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # A write past RLIMIT_FSIZE raises OSError(EFBIG) in the user's code instead of killing.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _size(n: int) -> str:
    return f"{n / GiB:g} GiB" if n >= GiB else f"{n / MiB:g} MiB"


def explain(limits: Limits, ename: str, evalue: str) -> str | None:
    """Words for a user error that a limit caused, or None if none did."""
    if ename == "MemoryError":
        return (f"the session hit its memory limit of {_size(limits.memory_bytes)} "
                "(--max-memory)")
    if ename == "OSError" and "File too large" in evalue:
        return f"files are limited to {_size(limits.file_bytes)} (--max-file-bytes)"
    if ename in ("BlockingIOError", "OSError") and "Resource temporarily unavailable" in evalue:
        return f"the session may run at most {limits.processes} processes (--max-processes)"
    if ename == "OSError" and "Too many open files" in evalue:
        return f"the session may keep at most {limits.open_files} files open"
    return None


def over_memory(limits: Limits) -> str:
    """What a session that the out-of-memory killer stopped did, naming its limit."""
    return (f"the session's processes used more than {_size(limits.session_memory)} of "
            f"memory together (--max-memory"
            f"{', --memory-budget' if limits.cgroup_memory_bytes else ''})")


#: What a program that ran out of address space at its start says (Python, C++, glibc's
#: loader): a kernel whose threads' stacks and arenas pass --max-memory fails so.
OUT_OF_ADDRESS_SPACE = ("can't start new thread", "MemoryError", "Cannot allocate memory",
                        "cannot allocate memory", "std::bad_alloc", "failed to map segment")


def explain_start(limits: Limits, text: str) -> str | None:
    """Words for a backend's failed start (``text``: its error and what it wrote) that
    ran out of address space, or None: ipykernel under --max-memory 600 MiB failed with
    "can't start new thread" only, which names no limit."""
    if limits.memory_bytes > 0 and any(sign in text for sign in OUT_OF_ADDRESS_SPACE):
        return (f"each session process may use {_size(limits.memory_bytes)} of address "
                "space (--max-memory), which may be too little for this kernel to start")
    return None


def explain_exit(limits: Limits, returncode: int | None, *,
                 oom_killed: bool = False) -> tuple[str, str] | None:
    """(ename, evalue) when a worker's exit shows a limit ended it."""
    if oom_killed:
        return ("MemoryLimitExceeded", f"{over_memory(limits)}, and were stopped; the session "
                "restarts fresh")
    if returncode == -signal.SIGSYS:  # the syscall filter kills only for a foreign ABI
        return ("ForbiddenSystemCall", "the session made a system call the sandbox forbids "
                "(one of another architecture's ABI, such as x32 or 32-bit int 0x80) and was "
                "stopped; the session restarts fresh")
    if returncode == -signal.SIGXCPU:
        return ("CPULimitExceeded", f"the session used its {limits.cpu_seconds} s of CPU time "
                                    "(--max-cpu) and was stopped; the session restarts fresh")
    return None
