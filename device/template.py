"""The template process: session runtime imported once, workers forked from it.

``python -P -m device.template --control-fd FD`` is started by the overseer with one end of a
SOCK_SEQPACKET socketpair. It imports the session runtime (and ``--preload`` modules), then
waits for requests on that control channel. It has no threads and no ZeroMQ, so forking it is
safe and fast: a worker is ready about a millisecond after it is asked for.

Control channel, one msgpack dict per packet::

    overseer -> template  {"op": "fork", "id": n, "workdir": path, "limits": {...},
                           "backend": spec}   (spec: see session.backends; default --backend)
    template -> overseer  {"op": "forked", "id": n, "pid": pid}   + the overseer's end of
                                                                      the worker's link (fd)
    template -> overseer  {"op": "output", "pid": pid, "name": "stdout", "text": "..."}
                           (none or more, just before "exited": see Template.last_words)
    template -> overseer  {"op": "exited", "pid": pid, "returncode": rc}   (negative: signal)
    template -> overseer  {"op": "failed", "id": n, "error": "..."}

    template -> overseer  {"op": "ready", "protections": {...}, "kernels": [...]}   once,
                           first: what the sandbox could set up, and per kernel of
                           --kernels {name, display_name, language, backend} or {name, error}
    ("exited" also carries "oom": true when the worker's cgroup ran out of memory.)

A forked worker closes every descriptor but its link (its standard ones are replaced when it
starts to serve: :mod:`session.worker`), starts a new session (process group), dies with the
template (PR_SET_PDEATHSIG), gets its limits, enters its sandbox (:mod:`device.sandbox`: PID
1 of its own namespaces, its own root, uid and cgroup, a syscall filter) and then serves its
link. The template exits when the control channel closes; its workers die with it.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import mmap
import os
import select
import signal
import socket
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any

import msgpack

from .limits import Limits, apply
from .linux import close_descriptors_except
from .protections import MODES
from . import rootfs
from .sandbox import Sandbox, sandbox_path
from .uids import auto_range, parse_uids

MAX_PACKET = 65536
#: Bytes read of a dead worker's descriptor 1 or 2 (a pipe holds 64 KiB), and characters of
#: them per "output" record (at most 4 bytes each in UTF-8: well within a packet).
LAST_WORDS_MAX = 65536
LAST_WORDS_CHUNK = 8192
#: A worker's standard descriptors and the names of their streams.
STREAMS = {1: "stdout", 2: "stderr"}


def die_with_parent() -> None:
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def send(control: socket.socket, record: dict[str, Any], fds: list[int] | None = None) -> None:
    data = msgpack.packb(record)
    if fds:
        socket.send_fds(control, [data], fds)
    else:
        control.send(data)


def loading(control: socket.socket, what: str) -> None:
    """Tell the device what the template imports next, before it is ready: a module that
    never finishes importing (a researcher's backend) is then named while the device
    waits, instead of 60 s of silence and "did not report ready". A device that closed the
    channel meanwhile (it stops) ends the template as at end of stream: exit 0, no word."""
    try:
        send(control, {"op": "loading", "what": what})
    except (BrokenPipeError, ConnectionResetError):
        raise SystemExit(0) from None


@dataclass
class Child:
    """What the template holds for one live worker: its uid and cgroup, freed when it exits."""
    uid: int | None
    cgroup: str | None
    #: PID 1 of its own namespace, which exits with 128+N when signal N killed the worker.
    init: bool = False
    #: The read ends of its descriptors 1 and 2's pipes, and the marks it shares about them
    #: (:mod:`session.capture`): what it wrote there just before it died is still in them.
    reads: dict[int, int] = field(default_factory=dict)
    marks: Any = None

    def close(self) -> None:
        for fd in self.reads.values():
            os.close(fd)
        self.reads = {}



def backend_problem(spec: str) -> str | None:
    """Why the template could not load the session backend ``spec`` (None if it can): the
    device asks before it starts one, so that a typo is one line, not two tracebacks."""
    from session.worker import load_backend
    try:
        load_backend(spec)
    except ValueError as e:
        return str(e)
    return None

class Template:
    def __init__(self, control: socket.socket, backend: str | None, sandbox: Sandbox,
                 kernels: str = "") -> None:
        from session.worker import DEFAULT_BACKEND, load_backend, preload, serve
        loading(control, "the session runtime")
        preload()
        self.sandbox = sandbox
        self.children: dict[int, Child] = {}
        self.stale: list[Child] = []  # exited, but their cgroup still held a process
        self.control = control
        self.serve = serve
        self.load_backend = load_backend
        self.default = backend or DEFAULT_BACKEND
        loading(control, f"the backend {self.default!r} of the kernel 'python'")
        #: Backends by the spec a fork request names (its kernel's), loaded on first use.
        self.factories = {self.default: load_backend(self.default)}
        self.kernels = self.offer(kernels)
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the device decides when we stop

    def offer(self, kernels: str) -> list[dict[str, str]]:
        """What each kernel of ``--kernels`` (default: see session.backends) runs with."""
        from session.backends import offer
        return offer(kernels, self.default, self.factories,
                     loading=lambda what: loading(self.control, what))

    def run(self) -> int:
        protections = self.sandbox.probe()
        if protections.has("filesystem"):
            self.kernels = [self.unseen(kernel) for kernel in self.kernels]
        try:  # a device stopping as this template starts closed the channel before "ready"
            send(self.control, {"op": "ready", "protections": protections.to_dict(),
                                "kernels": self.kernels})
            return self.serve_control()
        except (BrokenPipeError, ConnectionResetError):
            return 0  # the device closed the channel while we told it something: as at EOF
        finally:
            self.end_children()
            self.sandbox.teardown()

    def unseen(self, kernel: dict[str, str]) -> dict[str, str]:
        """``kernel``, or its error if it is a kernelspec that launches a file a sandboxed
        worker does not see (a kernel in a venv under /home or /root): every session of it
        would fail to start."""
        spec = getattr(self.factories.get(kernel.get("backend", "")), "kernel_spec", None)
        if spec is None:
            return kernel
        from session.kernelspecs import paths
        session_path = os.pathsep.join(sandbox_path())
        hidden = [p for p in paths(spec, session_path) if not rootfs.shown(p)]
        if not hidden:
            return kernel
        return {"name": kernel["name"], "error": (
            f"the kernelspec {kernel['name']!r} ({spec.resource_dir}/kernel.json) launches "
            f"{', '.join(hidden)}, which sandboxed sessions do not see (they see /usr, /etc, "
            "/opt and the device's Python): install the kernel there")}

    def end_children(self) -> None:
        """Kill and reap every worker (the device is gone or stopping), then free their
        uids and cgroups, so nothing is left behind, not even a worker still starting."""
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid, child in list(self.children.items()):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            del self.children[pid]
            child.close()
            self.release(child)

    def serve_control(self) -> int:
        while True:
            watched: list[Any] = [self.control, self.wake_r]
            ready, _, _ = select.select(watched, [], [])
            if self.wake_r in ready:
                os.read(self.wake_r, 4096)
                self.reap()
            if self.control in ready:
                data = self.control.recv(MAX_PACKET)
                if not data:
                    return 0
                try:
                    request = msgpack.unpackb(data)
                except ValueError:
                    continue
                if isinstance(request, dict) and request.get("op") == "fork":
                    self.fork(request)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            returncode = os.waitstatus_to_exitcode(status)
            child = self.children.pop(pid, None)
            oom = False
            if child is not None:
                if child.init and 128 < returncode < 128 + signal.NSIG:
                    returncode = 128 - returncode  # the worker's signal, from its init
                oom = self.release(child)
                self.last_words(pid, child)
            send(self.control, {"op": "exited", "pid": pid, "returncode": returncode,
                                "oom": oom})

    def last_words(self, pid: int, child: Child) -> None:
        """Send what an exited worker left in its descriptors' pipes, unread by its own
        threads (the line a failed C ``assert`` wrote before the abort), for its cell to
        show before its death. Not where its mark is set: it died holding bytes it had
        read and not sent, and what follows them would show after a gap."""
        for fd, read_end in child.reads.items():
            if child.marks is not None and child.marks[fd - 1]:
                continue
            data = b""
            while len(data) < LAST_WORDS_MAX:
                try:
                    chunk = os.read(read_end, LAST_WORDS_MAX - len(data))
                except OSError:  # nothing more (EAGAIN: a process of its own still has it)
                    break
                if not chunk:
                    break
                data += chunk
            text = data.decode("utf-8", "replace")
            for start in range(0, len(text), LAST_WORDS_CHUNK):
                send(self.control, {"op": "output", "pid": pid, "name": STREAMS[fd],
                                    "text": text[start:start + LAST_WORDS_CHUNK]})
        child.close()

    def release(self, child: Child) -> bool:
        """Give back the uid and remove the cgroup of an exited worker; True if it was
        OOM-killed. A cgroup that still holds processes is retried on the next exit."""
        cgroups = self.sandbox.cgroups
        oom = False
        if cgroups is not None and child.cgroup is not None:
            oom = cgroups.events(child.cgroup).oom_kills > 0
        self.stale.append(child)
        for held in list(self.stale):
            try:
                removed = cgroups is None or held.cgroup is None or cgroups.remove(held.cgroup)
            except OSError as e:  # never let cleanup end the template (and every worker)
                print(f"device.template: cannot remove cgroup {held.cgroup}: {e}",
                      file=sys.stderr)
                removed = False
            if removed:
                self.stale.remove(held)
                if held.uid is not None:
                    self.sandbox.uids.give_back(held.uid)
        return oom

    def fork(self, request: dict[str, Any]) -> None:
        workdir = str(request.get("workdir", ""))
        spec = str(request.get("backend") or self.default)
        try:
            factory = self.factories.get(spec) or self.load_backend(spec)
        except ValueError as e:
            send(self.control, {"op": "failed", "id": request.get("id"), "error": str(e)})
            return
        self.factories[spec] = factory
        limits = Limits.from_dict(request.get("limits") or {})
        sandbox = self.sandbox
        child = Child(None, None)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pipes = {fd: os.pipe() for fd in STREAMS}
        child.reads = {fd: r for fd, (r, _) in pipes.items()}
        child.marks = mmap.mmap(-1, len(STREAMS))  # shared with the worker across its fork
        try:
            if sandbox.protections.has("uid"):
                child.uid = sandbox.uids.take()
            if sandbox.cgroups is not None:
                child.cgroup = f"w{request.get('id')}"
                sandbox.cgroups.create(child.cgroup, limits)
            child.init = sandbox.protections.has("namespaces")
            # What the template has made so far, out of the collector's reach: a worker's
            # collections then leave those objects' pages alone, shared with the template
            # (an idle session's private memory 5.41 -> 4.85 MB, bench/RESULTS.md "Third
            # pass").
            gc.freeze()
            pid = sandbox.fork_child()
        except OSError as e:
            ours.close()
            theirs.close()
            for _, w in pipes.values():
                os.close(w)
            child.close()
            self.release(child)
            send(self.control, {"op": "failed", "id": request.get("id"), "error": str(e)})
            return
        if pid == 0:  # the worker
            status = 1
            try:
                ours.close()
                self.control.close()
                signal.set_wakeup_fd(-1)
                os.close(self.wake_r)
                os.close(self.wake_w)
                # Whatever else the template holds is not the worker's (nor its init's).
                close_descriptors_except([theirs.fileno(), *sandbox.descriptors(),
                                          *(end for pipe in pipes.values() for end in pipe)])
                for sig in (signal.SIGCHLD, signal.SIGINT):
                    signal.signal(sig, signal.SIG_DFL)
                os.setsid()
                die_with_parent()
                apply(limits)
                workdir = sandbox.enter(workdir, child.uid if child.uid is not None
                                        else os.getuid(), child.cgroup, limits)
                os.chdir(workdir)
                status = self.serve(theirs, workdir, factory, pipes=pipes, marks=child.marks)
            except BaseException:
                traceback.print_exc()  # the device's stderr: why this worker never served
            finally:
                os._exit(status)
        self.children[pid] = child
        theirs.close()
        for r, w in pipes.values():
            os.close(w)
            os.set_blocking(r, False)
        send(self.control, {"op": "forked", "id": request.get("id"), "pid": pid}, [ours.fileno()])
        ours.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m device.template")
    p.add_argument("--control-fd", type=int, required=True)
    p.add_argument("--backend")
    p.add_argument("--preload", default="", help="comma-separated modules to import once")
    p.add_argument("--kernels", default="", help="comma-separated kernels to offer "
                   "(session.backends names); empty: the built-in one and every kernelspec")
    p.add_argument("--sandbox", choices=MODES, default="auto")
    p.add_argument("--sandbox-uids", type=parse_uids, default=auto_range(0))
    p.add_argument("--hide", action="append", default=[], help="a host path to keep out of "
                   "the workers' sight (repeatable)")
    p.add_argument("--memory-budget", type=int, default=0, help="bytes all workers may use "
                   "together (0: no budget)")
    p.add_argument("--init-program", default="", help="the compiled namespace init "
                   "(device/init.c); empty: a Python init")
    args = p.parse_args(argv)
    die_with_parent()
    # The device's event loop may spawn us with more than the control channel open (uvloop
    # leaves copies of the standard descriptors, and whatever its own parent leaked): none
    # of them is ours to hand down to workers.
    close_descriptors_except([args.control_fd])
    control = socket.socket(fileno=args.control_fd)
    for name in filter(None, (m.strip() for m in args.preload.split(","))):
        loading(control, f"the --preload module {name!r}")
        try:
            importlib.import_module(name)
        except ImportError as e:
            print(f"device.template: cannot preload {name}: {e}", file=sys.stderr)
    sandbox = Sandbox(args.sandbox, args.sandbox_uids, args.hide, args.init_program,
                      memory_budget=args.memory_budget)
    try:
        template = Template(control, args.backend, sandbox, args.kernels)
    except ValueError as e:  # a backend it cannot load: one line (the device says the rest)
        print(f"device.template: {e}", file=sys.stderr)
        return 2
    return template.run()


if __name__ == "__main__":
    sys.exit(main())
