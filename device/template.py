"""The template process: session runtime imported once, workers forked from it.

``python -P -m device.template --control-fd FD`` is started by the overseer with one end of a
SOCK_SEQPACKET socketpair. It imports the session runtime (and ``--preload`` modules), then
waits for requests on that control channel. It has no threads and no ZeroMQ, so forking it is
safe and fast: a worker is ready about a millisecond after it is asked for.

Control channel, one msgpack dict per packet::

    overseer -> template  {"op": "fork", "id": n, "workdir": path, "limits": {...}}
    template -> overseer  {"op": "forked", "id": n, "pid": pid}   + the overseer's end of
                                                                      the worker's link (fd)
    template -> overseer  {"op": "exited", "pid": pid, "returncode": rc}   (negative: signal)
    template -> overseer  {"op": "failed", "id": n, "error": "..."}

A forked worker starts a new session (process group), dies with the template
(PR_SET_PDEATHSIG), gets its limits and working directory, and then serves its link.
The template exits when the control channel closes; its workers die with it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import select
import signal
import socket
import sys
from typing import Any

import msgpack

from .limits import Limits, apply

MAX_PACKET = 65536


def die_with_parent() -> None:
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def send(control: socket.socket, record: dict[str, Any], fds: list[int] | None = None) -> None:
    data = msgpack.packb(record)
    if fds:
        socket.send_fds(control, [data], fds)
    else:
        control.send(data)


class Template:
    def __init__(self, control: socket.socket, backend: str | None) -> None:
        from session.worker import DEFAULT_BACKEND, load_backend, preload, serve
        preload()
        self.control = control
        self.serve = serve
        self.factory = load_backend(backend or DEFAULT_BACKEND)
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the device decides when we stop

    def run(self) -> int:
        while True:
            ready, _, _ = select.select([self.control, self.wake_r], [], [])
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
            send(self.control, {"op": "exited", "pid": pid,
                                "returncode": os.waitstatus_to_exitcode(status)})

    def fork(self, request: dict[str, Any]) -> None:
        workdir = str(request.get("workdir", ""))
        limits = Limits.from_dict(request.get("limits") or {})
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            pid = os.fork()
        except OSError as e:
            ours.close()
            theirs.close()
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
                for sig in (signal.SIGCHLD, signal.SIGINT):
                    signal.signal(sig, signal.SIG_DFL)
                os.setsid()
                die_with_parent()
                apply(limits)
                os.chdir(workdir)
                status = self.serve(theirs, workdir, self.factory)
            finally:
                os._exit(status)
        theirs.close()
        send(self.control, {"op": "forked", "id": request.get("id"), "pid": pid}, [ours.fileno()])
        ours.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m device.template")
    p.add_argument("--control-fd", type=int, required=True)
    p.add_argument("--backend")
    p.add_argument("--preload", default="", help="comma-separated modules to import once")
    args = p.parse_args(argv)
    die_with_parent()
    control = socket.socket(fileno=args.control_fd)
    for name in filter(None, (m.strip() for m in args.preload.split(","))):
        try:
            importlib.import_module(name)
        except ImportError as e:
            print(f"device.template: cannot preload {name}: {e}", file=sys.stderr)
    return Template(control, args.backend).run()


if __name__ == "__main__":
    sys.exit(main())
