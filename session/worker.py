"""The worker process of one session: its start, its life and its command line.

    python -m session.worker --fd FD --workdir DIR [--backend module:Class]
                             [--max-file-size BYTES]

``FD`` is the worker's end of a ``socketpair`` held by the overseer (see
:mod:`protocol.link`); the worker never sees the bus key nor ZeroMQ. :func:`serve` is the
whole life of a worker (the overseer may also call it in a forked template process): it moves
into ``DIR``, captures descriptors 0-2 and ``sys`` streams, makes ``input()`` ask over the
link (:mod:`session.stdin`), takes over SIGINT, builds the backend, then answers requests
(:mod:`session.requests`) until the link closes or a ``shutdown_request`` arrives.

Diagnostics about the worker itself go over the link as ``worker_log`` records
(:mod:`session.linkoutput`), which the device writes to its own log, labelled with the worker
and session: the worker keeps no descriptor of the device's (its stderr, say), since user
code runs in the same process and could read, forge or truncate whatever such a descriptor
points at.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from protocol.link import DEFAULT_MAX_RECORD, WorkerLink

from .backend import DEFAULT_MAX_FILE_SIZE, BackendConfig, Output, SessionBackend
from .capture import Capture
from .interrupts import InterruptGuard
from .linkoutput import LinkOutput
from .requests import Worker
from .starting import start
from .stdin import install as install_stdin
from .usage import install as count_processes

BackendFactory = Callable[[Output, BackendConfig], SessionBackend]
DEFAULT_BACKEND = "session.python:PythonBackend"
MPLBACKEND = "module://session.mplbackend"
#: Seconds a finished worker waits for threads that user code left running.
EXIT_GRACE = 2.0


def preload() -> None:
    """Import what serve() and a first execution use, so that a template process that forks
    workers pays for it once instead of each new session paying on its first cell."""
    import ctypes  # noqa: F401  (C stdio flush)
    import json  # noqa: F401
    import mimetypes
    import platform  # noqa: F401

    import session.blocks  # noqa: F401
    import session.display  # noqa: F401
    mimetypes.init()


def load_backend(spec: str) -> BackendFactory:
    """``module:Class``, an entry-point name or a kernelspec -> that backend; ``ValueError``
    saying what is wrong (see :mod:`session.backends`)."""
    from .backends import load_backend as find
    try:
        return find(spec)
    except ValueError as e:  # "backend 'x': why" -> "--backend 'x': why", the option's name
        raise ValueError(f"--{e}") from None


def serve(sock: socket.socket, workdir: str,
          backend_factory: BackendFactory | None = None, *,
          max_file_size: int = DEFAULT_MAX_FILE_SIZE,
          max_record: int = DEFAULT_MAX_RECORD,
          pipes: dict[int, tuple[int, int]] | None = None, marks: Any = None) -> int:
    """Be the worker on ``sock`` (from the main thread); returns the exit status. ``pipes``
    and ``marks``: descriptors 1 and 2's pipes that the template reads after the worker's
    death (see :mod:`session.capture`)."""
    guard = InterruptGuard()
    guard.install()  # from here on, SIGINT never kills the worker
    os.set_inheritable(sock.fileno(), False)  # subprocesses of user code get no link
    sock.setblocking(True)
    os.chdir(workdir)
    _select_matplotlib_backend()
    link = WorkerLink(sock, max_record=max_record)
    out = LinkOutput(link, guard)
    out.capture = Capture.install(out.send_stream, guard, pipes, marks)
    asker = install_stdin(link, out, guard)  # input() asks the page (session.stdin)
    os.register_at_fork(after_in_child=lambda: _forked_by_user_code(out))
    count_processes()
    try:
        if backend_factory is None:
            from .python import PythonBackend
            backend_factory = PythonBackend
        # A backend that fails to start is told in each run, and tried again (starting).
        backend = start(backend_factory, out, BackendConfig(workdir=os.getcwd(),
                                                            max_file_size=max_file_size),
                        out.diag, lambda: bool(select.select([sock], [], [], 0)[0]))
        return Worker(link, out, guard, backend, asker).run()
    except Exception:  # fd 2 is captured by now: the device hears it over the link
        out.diag("crashed:\n" + traceback.format_exc())
        return 1


def _forked_by_user_code(out: LinkOutput) -> None:
    """In a child that user code forked (``os.fork``, ``multiprocessing``): it prints through
    the worker's captured descriptors but never speaks on the link, and once the code it runs
    returns to the worker's loop, it exits instead of serving (a fork bomb's children die as
    soon as their fork fails, and nothing they send can reach the overseer)."""
    out.broken = True
    if out.capture is not None:
        out.capture.in_forked_child()
        out.capture = None


def _select_matplotlib_backend() -> None:
    """Make matplotlib draw with :mod:`session.mplbackend`, now or whenever it is imported."""
    os.environ["MPLBACKEND"] = MPLBACKEND
    matplotlib = sys.modules.get("matplotlib")
    if matplotlib is not None:  # preloaded, e.g. by a template process that forked us
        matplotlib.use(MPLBACKEND, force=True)


def _exit_after_grace(status: int) -> None:
    """Exit even if user code left non-daemon threads running."""
    timer = threading.Timer(EXIT_GRACE, os._exit, (status,))
    timer.daemon = True
    timer.start()


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when its device dies, so a device killed with
    SIGKILL leaves no session running unsupervised; exit at once if it already died."""
    parent = os.getppid()
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: the device still closes the link, which ends an idle worker
    if os.getppid() != parent or parent == 1:
        os._exit(0)


def main(argv: list[str] | None = None) -> int:
    die_with_parent()
    parser = argparse.ArgumentParser(
        prog="python -m session.worker",
        description="Run one cellbus session: execute code received over a private link.")
    parser.add_argument("--fd", type=int, required=True,
                        help="inherited descriptor of the worker's end of the overseer's "
                             "socketpair (AF_UNIX, SOCK_STREAM)")
    parser.add_argument("--workdir", required=True,
                        help="the session's private working directory (must exist)")
    parser.add_argument("--backend", default=DEFAULT_BACKEND,
                        help="session backend: module:Class, a cellbus.backends entry point "
                             "or a Jupyter kernelspec name (default: %(default)s)")
    parser.add_argument("--max-file-size", type=int, default=DEFAULT_MAX_FILE_SIZE,
                        help="largest new file whose bytes are sent, in bytes "
                             "(default: %(default)s); larger ones are only announced")
    args = parser.parse_args(argv)
    try:
        factory = load_backend(args.backend)
        sock = socket.socket(fileno=args.fd)
        if not os.path.isdir(args.workdir):
            raise ValueError(f"--workdir {args.workdir!r} is not a directory")
    except (ValueError, OSError) as e:
        print(f"session.worker: {e}", file=sys.stderr)
        return 2
    status = serve(sock, args.workdir, factory, max_file_size=args.max_file_size)
    _exit_after_grace(status)
    return status


if __name__ == "__main__":
    sys.exit(main())
