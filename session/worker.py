"""The worker process of one session: its request loop and its command line.

    python -m session.worker --fd FD --workdir DIR [--backend module:Class]
                             [--max-file-size BYTES]

``FD`` is the worker's end of a ``socketpair`` held by the overseer (see
:mod:`protocol.link`); the worker never sees the bus key nor ZeroMQ. :func:`serve` is the
whole life of a worker (the overseer may also call it in a forked template process): it moves
into ``DIR``, captures descriptors 0-2 and ``sys`` streams, makes ``input()`` ask over the
link (:mod:`session.stdin`), takes over SIGINT, builds the
backend, then answers requests until the link closes or a ``shutdown_request`` arrives.

Framing lives here, not in backends: for each ``execute_request`` the worker sends ``status``
busy, ``execute_input``, whatever the backend emits, ``execute_result`` or ``error``,
``execute_reply`` and ``status`` idle, all with ``parent`` set to the request's ``msg_id``.
Diagnostics about the worker itself go over the link as ``worker_log`` records, which the
device writes to its own log, labelled with the worker and session: the worker keeps no
descriptor of the device's (its stderr, say), since user code runs in the same process and
could read, forge or truncate whatever such a descriptor points at.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from protocol import msgtypes as mt
from protocol.asked import from_content
from protocol.errors import ProtocolError
from protocol.link import DEFAULT_MAX_RECORD, WorkerLink, encode
from protocol.version import VERSION

from .backend import DEFAULT_MAX_FILE_SIZE, BackendConfig, ExecuteOutcome, MimeBundle, \
    Output, SessionBackend
from .capture import Capture
from .children import boot_ticks, end_started_since, hit_process_limit, reap_strays
from .interrupts import InterruptGuard
from .stdin import Asker, install as install_stdin
from .tighter import applied
from .usage import Meter, install as count_processes

BackendFactory = Callable[[Output, BackendConfig], SessionBackend]
DEFAULT_BACKEND = "session.python:PythonBackend"
MPLBACKEND = "module://session.mplbackend"
#: Seconds a finished worker waits for threads that user code left running.
EXIT_GRACE = 2.0


class LinkOutput(Output):
    """Sends a worker's records over its link, stamped with the current request's id."""

    def __init__(self, link: WorkerLink, guard: InterruptGuard) -> None:
        self.link, self.guard = link, guard
        self.parent = ""
        self.capture: Capture | None = None
        self.broken = False
        #: While warming up: records are built and packed as usual, then dropped.
        self.muted = False

    def send(self, msg_type: str, content: dict[str, Any], metadata: dict[str, Any] | None
             = None, buffers: list[bytes] | None = None) -> None:
        record: dict[str, Any] = {"msg_type": msg_type, "content": content,
                                  "parent": self.parent}
        if metadata:
            record["metadata"] = metadata
        if buffers:
            record["buffers"] = buffers
        if self.broken:
            return
        with self.guard:
            try:
                data = encode(record)
            except (TypeError, ValueError, OverflowError) as e:
                self.diag(f"dropped a {msg_type} record that cannot be packed: {e}")
                return
            if len(data) > self.link.max_record:
                data = encode({"msg_type": mt.STREAM, "parent": self.parent, "content": {
                    "name": "stderr",
                    "text": f"[cellbus: a {msg_type} of {len(data)} bytes was dropped: "
                            f"the limit is {self.link.max_record}]\n"}})
            if self.muted:
                return
            try:
                self.link.send_encoded(data)
            except OSError as e:
                self.broken = True
                self.diag(f"link to the overseer failed: {e}")

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Records sent inside reach the overseer in one write when it ends (see
        :meth:`WorkerLink.hold`): for the records that open and close a request."""
        held = self.link.hold()
        try:
            yield
        finally:
            if held:
                with self.guard:
                    try:
                        self.link.release()
                    except OSError as e:
                        self.broken = True
                        self.diag(f"link to the overseer failed: {e}")

    def diag(self, message: str) -> None:
        """Say something about the worker itself in the device's log (see the module doc)."""
        self.send(mt.WORKER_LOG, {"text": message})

    def stream(self, name: str, text: str) -> None:
        if self.capture is not None:
            self.capture.coalescer.write(name, text)
        else:
            self.send(mt.STREAM, {"name": name, "text": text})

    def send_stream(self, name: str, text: str) -> None:
        """The coalescer's sink."""
        self.send(mt.STREAM, {"name": name, "text": text})

    def display(self, data: MimeBundle, metadata: dict[str, Any] | None = None, *,
                buffers: list[bytes] | None = None,
                transient: dict[str, Any] | None = None) -> None:
        self.flush()
        self.send(mt.DISPLAY_DATA, {"data": data, "metadata": metadata or {},
                                    "transient": transient or {}}, buffers=buffers)

    def flush(self) -> None:
        if self.capture is not None:
            self.capture.flush()

    def message(self, msg_type: str, content: dict[str, Any],
                metadata: dict[str, Any] | None = None) -> None:
        self.flush()
        self.send(msg_type, content, metadata)


class Worker:
    """Answers the requests of one link with one backend."""

    def __init__(self, link: WorkerLink, out: LinkOutput, guard: InterruptGuard,
                 backend: SessionBackend, asker: Asker | None = None) -> None:
        self.link, self.out, self.guard, self.backend = link, out, guard, backend
        self.asker = asker  #: input() of each run is served only while the run lasts
        self.execution_count = 0
        #: The worker's children when the last cell ended (see :meth:`execute`).
        self.kept: set[int] = set()

    def warm_up(self) -> None:
        """Take one cell's paths (records, capture, backend) with output muted before the
        first request: see :meth:`SessionBackend.warm_up`. About 300 pages of the template
        get copied here, in the pool, instead of in the user's first cell (1-2 ms)."""
        out = self.out
        out.muted = True
        try:
            with out.batch():
                out.send(mt.STATUS, {"execution_state": "busy"})
            self.backend.warm_up()
            out.flush()  # the flusher thread's text too: it goes nowhere
            with out.batch():
                out.send(mt.EXECUTE_REPLY, {"status": "ok", "execution_count": 0,
                                            "user_expressions": {}, "payload": []})
        except Exception as e:  # noqa: BLE001 - a cold first cell is no reason to fail
            out.muted = False
            out.diag(f"warm-up failed: {e!r}")
        finally:
            out.muted = False

    def run(self) -> int:
        """Serve until EOF (0), ``shutdown_request`` (0) or a broken link (1)."""
        self.warm_up()
        while not self.out.broken:
            try:
                request = self.link.recv()
            except ProtocolError as e:
                self.out.diag(f"bad record from the overseer: {e}")
                return 1
            except OSError:
                return 1
            if request is None:
                return 0
            msg_type = request.get("msg_type")
            msg_id = request.get("msg_id")
            content = request.get("content")
            self.out.parent = msg_id if isinstance(msg_id, str) else ""
            content = content if isinstance(content, dict) else {}
            if msg_type in (mt.EXECUTE_REQUEST, mt.INTERACT_REQUEST):
                if msg_type == mt.EXECUTE_REQUEST:
                    self.execute(content)
                else:
                    self.interact(content)
                self.kept = reap_strays()
            elif msg_type == mt.KERNEL_INFO_REQUEST:
                self.out.send(mt.KERNEL_INFO_REPLY, self.kernel_info())
            elif msg_type in mt.COMM_REQUEST_TYPES:
                self.comm(msg_type, content)
            elif msg_type == mt.SHUTDOWN_REQUEST:
                try:
                    self.backend.shutdown()
                except Exception as e:
                    self.out.diag(f"backend shutdown failed: {e!r}")
                self.out.flush()
                self.out.send(mt.SHUTDOWN_REPLY, {"status": "ok", "restart": False})
                return 0
            # Anything else is ignored: the overseer only sends what it validated.
        return 1

    def kernel_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"status": "ok", "protocol_version": mt.PROTOCOL_VERSION,
                                "implementation": "cellbus",
                                "implementation_version": VERSION, "banner": ""}
        info.update(self.backend.kernel_info())
        return info

    def execute(self, content: dict[str, Any]) -> None:
        code = content.get("code")
        code = code if isinstance(code, str) else ""
        silent = content.get("silent") is True
        store_history = content.get("store_history", True) is not False and not silent
        self.guard.start_request()
        out = self.out
        with out.batch():
            out.send(mt.STATUS, {"execution_state": "busy"})
            if store_history:
                self.execution_count += 1
            count = self.execution_count
            if not silent:
                out.send(mt.EXECUTE_INPUT, {"code": code, "execution_count": count})
        started = boot_ticks()
        meter = Meter()
        meter.start()
        with applied(from_content(content)):
            outcome = self._guarded(
                lambda: self.backend.execute(code, silent=silent, store_history=store_history))
        if outcome.status == "error" and hit_process_limit(outcome.ename, outcome.evalue):
            # Before the reply: the next cell may need those process slots.
            ended = end_started_since(started, keep=self.kept)
            if ended:
                out.flush()
                out.send(mt.STREAM, {"name": "stderr", "text": (
                    f"cellbus: stopped the {ended} processes this cell started: it hit the "
                    "session's process limit\n")})
        with out.batch():  # the end: last output, result, reply and idle in one write
            self._finish(outcome, count, silent, meter)

    def interact(self, content: dict[str, Any]) -> None:
        """Re-run an interact: its output goes out as usual; ``interact_reply`` ends it."""
        interact_id, values, state = (content.get("interact_id"), content.get("values"),
                                      content.get("state"))
        self.guard.start_request()
        self.out.send(mt.STATUS, {"execution_state": "busy"})
        if not isinstance(interact_id, str) or not isinstance(values, dict) or not isinstance(
                state, int) or isinstance(state, bool):
            outcome = ExecuteOutcome.failed("ValueError", "interact_request needs interact_id, "
                                            "values and an integer state", [])
        else:
            outcome = self._guarded(lambda: self.backend.interact(interact_id, values, state))
        with self.out.batch():  # the end in one write, as for execute
            self.out.flush()
            reply: dict[str, Any] = {"status": outcome.status, "interact_id": interact_id,
                                     "state": state, "ignored": outcome.ignored}
            if outcome.status == "error":
                error = {"ename": outcome.ename, "evalue": outcome.evalue, "traceback":
                         list(outcome.traceback) or [f"{outcome.ename}: {outcome.evalue}"]}
                self.out.send(mt.ERROR, error)
                reply.update(error)
            self.out.send(mt.INTERACT_REPLY, reply)
            self.out.send(mt.STATUS, {"execution_state": "idle"})

    def comm(self, msg_type: str, content: dict[str, Any]) -> None:
        """A client's comm message, for the backend (:meth:`SessionBackend.comm`): between
        busy and idle, which ends it, as a Jupyter kernel frames every shell message."""
        self.guard.start_request()
        self.out.send(mt.STATUS, {"execution_state": "busy"})
        outcome = self._guarded(lambda: self.backend.comm(msg_type, content))
        with self.out.batch():
            self.out.flush()
            if outcome.status == "error":
                self.out.diag(f"{msg_type} failed: {outcome.ename}: {outcome.evalue}")
            self.out.send(mt.STATUS, {"execution_state": "idle"})

    def _guarded(self, call: Callable[[], ExecuteOutcome]) -> ExecuteOutcome:
        """Run a backend call with interrupts armed; anything escaping becomes an error.
        Prompts are answered only during the call: none is left waiting at the reply."""
        serving = self.asker.serving(self.out.parent) if self.asker else contextlib.nullcontext()
        with serving:
            return self._call(call)

    def _call(self, call: Callable[[], ExecuteOutcome]) -> ExecuteOutcome:
        try:
            self.guard.arm()
            try:
                return call()
            finally:
                self.guard.disarm()
        except BaseException as e:  # noqa: BLE001 - an interrupt or a backend bug
            self.guard.disarm()
            if not isinstance(e, KeyboardInterrupt):
                self.out.diag(f"backend {type(self.backend).__name__} raised {e!r}")
            return ExecuteOutcome.failed(type(e).__name__, str(e),
                                         traceback.format_exception_only(type(e), e))

    def _finish(self, outcome: ExecuteOutcome, count: int, silent: bool, meter: Meter) -> None:
        out = self.out
        out.flush()  # all stream text, including subprocess output, before the end
        usage = meter.usage()
        reply: dict[str, Any] = {"status": outcome.status, "execution_count": count,
                                 "user_expressions": {}, "payload": []}
        if outcome.status == "error":
            error = {"ename": outcome.ename, "evalue": outcome.evalue,
                     "traceback": list(outcome.traceback)}
            if not silent:
                out.send(mt.ERROR, error)
            reply.update(error)
        elif outcome.result is not None and not silent:
            out.send(mt.EXECUTE_RESULT, {"execution_count": count, "data": outcome.result,
                                         "metadata": outcome.result_metadata})
        out.send(mt.EXECUTE_REPLY, reply, {"usage": usage})
        out.send(mt.STATUS, {"execution_state": "idle"})


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
          max_record: int = DEFAULT_MAX_RECORD) -> int:
    """Be the worker on ``sock`` (from the main thread); returns the exit status."""
    guard = InterruptGuard()
    guard.install()  # from here on, SIGINT never kills the worker
    os.set_inheritable(sock.fileno(), False)  # subprocesses of user code get no link
    sock.setblocking(True)
    os.chdir(workdir)
    _select_matplotlib_backend()
    link = WorkerLink(sock, max_record=max_record)
    out = LinkOutput(link, guard)
    out.capture = Capture.install(out.send_stream, guard)
    asker = install_stdin(link, out, guard)  # input() asks the page (session.stdin)
    os.register_at_fork(after_in_child=lambda: _forked_by_user_code(out))
    count_processes()
    try:
        if backend_factory is None:
            from .python import PythonBackend
            backend_factory = PythonBackend
        backend = backend_factory(out, BackendConfig(workdir=os.getcwd(),
                                                     max_file_size=max_file_size))
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
