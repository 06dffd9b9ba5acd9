"""The session sandbox: what a forked worker goes through before any user code runs.

The template process (root, see :mod:`device.template`) forks each worker into a fresh PID
namespace, and the worker, still privileged for a moment, then

1. joins its own cgroup (memory, pids, cpu: :mod:`device.cgroups`);
2. unshares mount, IPC, network (loopback only, and down), UTS and cgroup namespaces;
3. forks again: PID 1 stays behind as the namespace's init (in all those namespaces,
   confined too, holding no descriptor, then the small compiled program of device/init.c)
   and PID 2 goes on as the worker;
4. builds and pivots into its own root (:mod:`device.rootfs`): the system read-only, a
   private working directory and ``/tmp``, no key, no store, no other session;
5. drops to a uid of its own (one per live worker, from a range no real account uses), with
   no supplementary groups and so no capabilities;
6. sets ``no_new_privs`` and loads the syscall filter (:mod:`device.syscalls`).

All of it happens in the prefork pool, off the request path. Kernel primitives are used
directly rather than bubblewrap or nsjail: both ``exec`` a new program, and a worker is a fork
of the template that already imported the session runtime, which is what makes a new session
start in about a millisecond; a sandbox tool would throw that away.

Where the machine cannot do a part (not root, no namespaces, no cgroups, no libseccomp),
:func:`probe` finds out once, at start, by running every step in a throwaway child; the device
then runs with the rest and says exactly what is off (``--sandbox require`` refuses instead).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import sys
import tempfile
import traceback
from typing import Any

from . import linux as L
from . import rootfs, syscalls
from .cgroups import Cgroups, stale
from .limits import Limits
from .protections import PROTECTIONS, Protections
from .uids import UidPool

#: Signals the namespace's init passes on to the worker (the device's interrupt is SIGINT,
#: then SIGCONT for a worker that was stopped).
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2, signal.SIGCONT)


def default_init_program() -> str:
    """The compiled namespace init (device/init.c), which bin/_venv builds into the venv, or
    the path in CELLBUS_INIT_PROGRAM; without one (or with that set empty) each namespace
    keeps a Python init."""
    return os.environ.get("CELLBUS_INIT_PROGRAM",
                          os.path.join(sys.prefix, "libexec", "cellbus-init"))


def _open_init(path: str) -> int:
    """A descriptor of the compiled init at ``path`` to exec by (so no folder above it need
    let the session uids in), or -1 if it is not a program anyone may run."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return -1
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode) and st.st_mode & stat.S_IXOTH:
        return fd
    os.close(fd)
    return -1


class Sandbox:
    """The template's side of the sandbox: set up once, applied in every forked worker."""

    def __init__(self, mode: str, uids: range, hide: list[str], init_program: str = "", *,
                 memory_budget: int = 0) -> None:
        self.mode = mode
        self.memory_budget = memory_budget
        self.init_program = init_program
        self.uids = UidPool(uids)
        self.hide = [os.path.abspath(p) for p in hide if p]
        self.protections = Protections()
        self.cgroups: Cgroups | None = None
        self.filter: Any = None
        self.root = ""
        self._own_pid_ns = -1
        self._init_fd = -1

    # -- once, in the template ---------------------------------------------------------------

    def probe(self) -> Protections:
        """Find out what works here, by trying it all in a throwaway child."""
        p = self.protections = Protections()
        if self.mode == "off":
            p.off = {part: "--sandbox off" for part in PROTECTIONS}
            return p
        root = os.geteuid() == 0
        if root:
            try:
                self.cgroups = Cgroups.detect(f"cellbus-{os.getpid()}")
                self.cgroups.setup()
                p.cgroup_version = self.cgroups.version
            except OSError as e:
                self.cgroups = None
                p.off["cgroups"] = f"cannot use cgroups: {e.strerror or e}"
            try:
                self._own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                p.off["namespaces"] = f"no PID namespace: {e.strerror}"
            self.root = self._make_root_folder()
        else:
            why = "the device does not run as root"
            p.off.update(uid=why, namespaces=why, filesystem=why, cgroups=why)
        try:
            self.filter = syscalls.build()
        except (ImportError, OSError, RuntimeError) as e:
            p.off["seccomp"] = f"libseccomp is not available: {e}"
        # Every step, for real, in a child whose report says which worked.
        result = self._trial()
        for part in PROTECTIONS:
            if part not in p.off:
                if part in result.get("ok", []):
                    p.on.append(part)
                else:
                    p.off[part] = result.get("errors", {}).get(part, "not tried")
        if p.has("namespaces") and self.init_program:
            self._init_fd = _open_init(self.init_program)
            if self._init_fd >= 0:
                p.init = self.init_program
        if self.cgroups is not None and not p.has("cgroups"):
            self.cgroups.teardown()
            self.cgroups = None
        if self.cgroups is not None and self.memory_budget > 0:
            try:
                self.cgroups.budget(self.memory_budget)
                p.memory_budget = self.memory_budget
            except OSError as e:  # the device's log says it is not applied, and this why
                print(f"device.template: cannot set the memory budget: {e}", file=sys.stderr)
        return p

    @staticmethod
    def _make_root_folder() -> str:
        """An empty folder to mount each worker's new root on (in the worker's own mount
        namespace; on the host it stays empty), named for this process; those of templates
        that were killed before they could remove theirs go first."""
        tmp = tempfile.gettempdir()
        for path in stale(tmp, "cellbus-root-"):
            try:  # another device's template starting beside this one may remove it first
                st = os.lstat(path)
                if st.st_uid == 0 and stat.S_ISDIR(st.st_mode):
                    os.rmdir(path)
            except OSError:
                pass
        path = os.path.join(tmp, f"cellbus-root-{os.getpid()}")
        os.mkdir(path, 0o755)
        return path

    def _trial(self) -> dict[str, Any]:
        r, w = socket.socketpair()
        uid = self.uids.take()
        name = "probe"
        cgroups = self.cgroups
        workdir = tempfile.mkdtemp(prefix="cellbus-probe-")
        try:
            if cgroups is not None:
                cgroups.create(name, Limits())
            try:
                pid = self.fork_child()
            except OSError as e:
                self.protections.off["namespaces"] = f"no PID namespace: {e.strerror}"
                pid = os.fork()
            if pid == 0:
                r.close()
                report: dict[str, Any] = {"ok": [], "errors": {}}
                try:
                    self.enter(workdir, uid, name, Limits(), report=report)
                finally:
                    w.sendall(json.dumps(report).encode())
                    os._exit(0)
            w.close()
            data = b""
            while chunk := r.recv(65536):
                data += chunk
            os.waitpid(pid, 0)
            return json.loads(data or b"{}")
        except OSError as e:
            return {"ok": [], "errors": {part: str(e) for part in PROTECTIONS}}
        finally:
            r.close()
            w.close()
            self.uids.give_back(uid)
            if cgroups is not None:
                cgroups.remove(name)
            shutil.rmtree(workdir, ignore_errors=True)

    # -- each fork ---------------------------------------------------------------------------

    def descriptors(self) -> list[int]:
        """What a freshly forked worker still needs of the template's descriptors (each is
        closed by :meth:`enter` once used)."""
        return [fd for fd in (self._own_pid_ns, self._init_fd) if fd >= 0]

    def fork_child(self) -> int:
        """``os.fork()``, the child as PID 1 of a new PID namespace when namespaces are on."""
        if self._own_pid_ns < 0 or "namespaces" in self.protections.off:
            return os.fork()
        L.unshare(L.CLONE_NEWPID)
        try:
            return os.fork()
        finally:
            if os.getpid() != 1:  # the parent: its next children go back to its own namespace
                L.setns(self._own_pid_ns, L.CLONE_NEWPID)

    def enter(self, workdir: str, uid: int, cgroup: str | None, limits: Limits, *,
              report: dict[str, Any] | None = None) -> str:
        """In the forked worker: everything up to (not including) serving its link. Returns
        the working directory to serve in (``workdir``, or the one inside its own root).

        With ``report`` (the probe), each step's failure is recorded and the rest still run;
        without, the first failure raises and the worker never serves.
        """
        def step(part: str, action: Any) -> bool:
            if report is None:
                if self.protections.has(part):
                    action()
                    return True
                return False
            try:
                action()
            except Exception as e:  # the probe reports, never raises
                report["errors"][part] = f"{type(e).__name__}: {e}"
                if os.environ.get("CELLBUS_DEBUG_SANDBOX"):
                    traceback.print_exc()
                return False
            report["ok"].append(part)
            return True

        if self._own_pid_ns >= 0:  # the host's PID namespace: never inside a sandbox
            os.close(self._own_pid_ns)
            self._own_pid_ns = -1
        if self.cgroups is not None and cgroup is not None:
            cgroups = self.cgroups
            step("cgroups", lambda: cgroups.join(cgroup))
        _session_environment(workdir)
        own_namespace = os.getpid() == 1
        # PID 1 first, so that the init is in the session's namespaces too: its /proc/1/net
        # and mountinfo then show the session's (empty) network and its own root, not the
        # host's ports, socket paths and mounts. From "/", so that the worker's pivot_root
        # moves the init's root and working directory into the session's root as well.
        namespaces = step("namespaces", lambda: self._namespaces(own_namespace))
        if own_namespace:
            os.chdir("/")
            self._become_init(uid, strict=report is None)
        if self._init_fd >= 0:  # the worker has no use for it
            os.close(self._init_fd)
            self._init_fd = -1
        isolated = False
        if namespaces:
            isolated = step("filesystem", lambda: rootfs.build(
                self.root, uid=uid, size_bytes=limits.disk_bytes, hide=self.hide))
        elif report is not None:
            report["errors"]["filesystem"] = "needs the namespaces"
        if isolated:
            workdir = rootfs.WORKDIR
            os.environ["HOME"] = workdir
        step("uid", lambda: self._drop_to(uid, None if isolated else workdir))
        # A change of uid clears the parent-death signal: set it again, so the worker still
        # dies with its parent (its namespace's init, or the template).
        L.prctl(L.PR_SET_PDEATHSIG, signal.SIGKILL)
        step("no_new_privs", lambda: L.prctl(L.PR_SET_NO_NEW_PRIVS, 1))
        if self.filter is not None:
            step("seccomp", lambda: syscalls.load(self.filter))
        return workdir

    def _become_init(self, uid: int, *, strict: bool) -> None:
        """Fork the worker proper and stay behind as PID 1 of the namespace; return only in
        the worker, which then goes through the rest of the sandbox.

        The init forwards the device's signals, reaps orphans, and exits when the worker does
        (the kernel then kills whatever else still runs in the namespace) with the worker's
        code, or 128+N if signal N killed it, which the template reports as that signal. The
        worker itself is not PID 1, so signals behave for user code as they do anywhere
        (a PID 1 ignores every signal it has no handler for, even from itself).

        Then the init confines itself like the worker (the session's uid, ``no_new_privs``,
        the syscall filter; if that fails and ``strict``, i.e. not the probe, it kills the
        worker and exits 255) and execs the compiled init (device/init.c), which does the
        same job. As a fork of the template it would keep every page of the interpreter that
        both the template and the worker write later: about 2 MB of an idle session's
        private memory (bench/RESULTS.md). It shares the worker's mount, network, IPC and UTS
        namespaces (made before this fork), and holds no descriptor but the program it
        execs. Without the compiled init, this Python loop stays.
        """
        # The signals to forward are held, not lost, until this init forwards them: a PID 1
        # drops every signal it has no handler for, and an interrupt that came after the
        # compiled init's exec but before its handlers never reached the cell. A blocked
        # signal stays pending through the exec; the compiled init unblocks these once its
        # handlers are in place, as the Python one does below.
        signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
        worker = os.fork()
        if worker == 0:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
            return
        try:
            for sig in FORWARDED:
                signal.signal(sig, lambda signum, _frame: os.kill(worker, signum))
            wanted = self.protections.has if strict else lambda part: True
            try:
                if wanted("uid"):
                    self._drop_to(uid, None)
                L.prctl(L.PR_SET_PDEATHSIG, signal.SIGKILL)  # a change of uid cleared it
                if wanted("no_new_privs"):
                    L.prctl(L.PR_SET_NO_NEW_PRIVS, 1)
                if wanted("seccomp") and self.filter is not None:
                    syscalls.load(self.filter)
            except Exception:  # whatever failed, a strict init never runs unconfined
                if strict:
                    os.kill(worker, signal.SIGKILL)
                    raise
            _hold_nothing(keep=self._init_fd)
            if self._init_fd >= 0:
                try:
                    os.execve(self._init_fd, [self.protections.init, str(worker)], {})
                except OSError:
                    pass  # stay the Python init below
            signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
            while True:
                pid, status = os.wait()
                if pid == worker:
                    code = os.waitstatus_to_exitcode(status)
                    os._exit(code if code >= 0 else 128 - code)
        finally:
            os._exit(255)

    @staticmethod
    def _namespaces(own_pid_namespace: bool) -> None:
        if not own_pid_namespace:
            raise OSError("the worker is not in a PID namespace of its own")
        # A cgroup namespace too (the worker has joined its group by now): /proc/self/cgroup
        # then says "/", not the host's paths (the device's own cgroup, a container's id,
        # the template's pid).
        L.unshare(L.CLONE_NEWNS | L.CLONE_NEWIPC | L.CLONE_NEWNET | L.CLONE_NEWUTS
                  | L.CLONE_NEWCGROUP)
        socket.sethostname("cellbus")

    @staticmethod
    def _drop_to(uid: int, workdir: str | None) -> None:
        if workdir is not None:
            # Not in a root of its own: the host folder the overseer made a moment ago,
            # before any session code ran, becomes the session's.
            fd = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                os.fchown(fd, uid, uid)
            finally:
                os.close(fd)
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        if os.geteuid() != uid or os.getegid() != uid:
            raise OSError("the uid change did not take")

    # -- after a worker exits ------------------------------------------------------------------

    def teardown(self) -> None:
        if self.cgroups is not None:
            self.cgroups.teardown()
        if self.root:
            try:
                os.rmdir(self.root)
            except OSError:
                pass


def sandbox_path() -> list[str]:
    """A session's ``PATH``: the folder of the Python the session runs first, so ``python``
    and its scripts are it."""
    return list(dict.fromkeys([os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin",
                               "/bin"]))


def _session_environment(home: str) -> None:
    """Replace the device's environment (host paths, cloud and CA settings...) with the few
    variables README.rst lists for sessions; the worker adds MPLBACKEND."""
    os.environ.clear()
    os.environ.update(PATH=":".join(sandbox_path()), HOME=home, TMPDIR="/tmp",
                      LANG="C.UTF-8")


def _hold_nothing(keep: int) -> None:
    """The namespace's init, confined: its standard descriptors become ``/dev/null`` and
    every other one but ``keep`` (the compiled init to exec) is closed. It writes nothing,
    and it must not keep the worker's link (the device would not see the worker's end) nor
    the device's stderr."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    L.close_descriptors_except([keep])
