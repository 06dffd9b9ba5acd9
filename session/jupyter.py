"""A session backend that runs an installed Jupyter kernel (any kernelspec) in the worker.

The worker is already inside its sandbox (own uid, namespaces, cgroup, no network) when the
backend starts, so the kernel it launches as its child is too. jupyter_client does the
launching: :class:`~jupyter_client.kernelspec.KernelSpecManager` finds the kernelspec by
name, :class:`~jupyter_client.manager.KernelManager` (with its default local provisioner)
writes the connection file and starts the kernel. The kernel's sockets are ``ipc://`` files
in a fresh 0700 folder of the worker's private ``/tmp``, and its connection key is made here
and never sent anywhere: everything the kernel says reaches the device only as the worker's
own records, which the device checks and re-signs as for any Python worker.

The kernelspec is the copy the device's template read and checked when it started
(:mod:`session.kernelspecs`): the worker's sandbox may not have the folder it came from. A
kernel that does not start (its program fails, it exits, it never answers ``kernel_info``)
is killed with its process group and its files removed, and the ``RuntimeError`` says why
with the end of what it wrote (:mod:`session.starting` tells the user, run after run).

Relayed from the kernel's iopub (:mod:`session.kernelrun`): ``stream``, ``display_data``
(and ``update_display_data``: Jupyter clients update the displays of its display_id, the
page shows it as a new display), ``clear_output``, ``comm_open``,
``comm_msg`` and ``comm_close`` (:meth:`JupyterBackend.comm` sends a client's to the
kernel's shell: widgets work);
``execute_result`` and ``error`` become the :class:`ExecuteOutcome` the worker frames, with
the worker's own execution count. The kernel's ``status`` and ``execute_input`` are
dropped: the worker sends its own.

Interrupts: the device sends SIGINT to the worker; while a cell runs, the backend takes it
itself and interrupts the kernel the way its kernelspec says (``interrupt_mode`` signal or
message, :meth:`KernelManager.interrupt_kernel`) once the kernel runs the cell's code, then
waits for the kernel's own reply, which ends the cell (a kernel that does not answer within
``INTERRUPT_GRACE``, or its kernelspec's ``metadata.cellbus.interrupt_grace``, is
restarted, and the cell ends then).
stdin: a kernel's ``input_request`` is answered with :func:`input` (or
:func:`getpass.getpass` for a password) in the worker, which the worker turns into the
session's ``input_request`` output and ``input_reply`` request.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Any

from protocol.processes import how_ended

from . import kernelspecs
from .backend import BackendConfig, ExecuteOutcome, Output, SessionBackend
from .kernelready import wait_ready
from .kernelrun import Run

#: Seconds a kernel may take to start and answer ``kernel_info_request``.
START_TIMEOUT = 60.0
#: Seconds to wait for the kernel's reply after it was interrupted (it is, at once, or
#: INTERRUPT_SETTLE after it began the cell) before it is restarted (the cell then ends at
#: once: the new kernel's start is waited for by the next request);
#: a kernelspec may set its own (``metadata.cellbus.interrupt_grace``, session.kernelspecs).
INTERRUPT_GRACE = 5.0
#: Seconds without a reply after which an interrupt is sent to the kernel again.
INTERRUPT_AGAIN = 1.0
#: Seconds an interrupt waits after the kernel said it started the cell: between that word
#: and the user's code a kernel is not ready for one (IRkernel ends, ipykernel drops the
#: request and never replies).
INTERRUPT_SETTLE = 0.25
#: Seconds after which an interrupt goes to a kernel that has not said it started the cell.
INTERRUPT_BLIND = 5.0
#: Seconds between looks at whether the cell was interrupted or its kernel died.
POLL = 0.1


def _die_with_worker() -> None:
    """In the kernel, before exec: SIGKILL when the worker ends, however it ends (a worker
    killed for a limit never gets to shut its kernel down)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


class JupyterBackend(SessionBackend):
    """Runs cells in a Jupyter kernel started from the kernelspec :attr:`kernel_name`."""

    #: The kernelspec this class runs; :func:`for_kernel` makes a subclass per kernel.
    kernel_name = "python3"
    #: That kernelspec as the device's template read it (None: looked up by name here).
    kernel_spec: Any = None

    def __init__(self, out: Output, config: BackendConfig) -> None:
        super().__init__(out, config)
        self.rundir = tempfile.mkdtemp(prefix="kernel-")  # 0700, in the private /tmp
        self.log_path = os.path.join(self.rundir, "kernel.log")
        self._log = open(self.log_path, "wb")
        try:
            self._start(config)
        except BaseException as e:  # whatever it was, the user is told (session.starting)
            log = self.kernel_log()
            self._discard()
            if not isinstance(e, Exception):  # an interrupt of the start: as it came
                raise
            raise RuntimeError(f"the kernel {self.kernel_name!r} did not start: "
                               f"{str(e) or type(e).__name__}" +
                               (f"\nIt wrote:\n{log}" if log.strip() else "")) from None
        self.worker_sigint: Any = signal.getsignal(signal.SIGINT)
        self.interrupt_grace = kernelspecs.interrupt_grace(self.kernel_spec) or INTERRUPT_GRACE
        #: The kernel was restarted and has not answered yet (see :meth:`_restart`).
        self._unready = False
        # The device continues a worker found stopped (device/stops.py) with SIGCONT: here
        # the kernel is what its code stopped, so the signal goes on to it.
        signal.signal(signal.SIGCONT, lambda *_: self._continue_kernel())

    def _start(self, config: BackendConfig) -> None:
        """Launch the kernel and wait until it answers ``kernel_info_request``."""
        from jupyter_client.manager import KernelManager

        specs = {} if self.kernel_spec is None else {
            "kernel_spec_manager": kernelspecs.OneSpec(self.kernel_spec)}
        self.km = KernelManager(kernel_name=self.kernel_name, transport="ipc",
                                ip=os.path.join(self.rundir, "k"),
                                connection_file=os.path.join(self.rundir, "kernel.json"),
                                **specs)
        # Without the worker's MPLBACKEND (session.mplbackend, whose show() speaks through
        # the built-in session only): the kernel picks its own, ipykernel's inline one, so
        # plt.show() sends the figure as image/png display_data, as in Jupyter.
        env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
        self.km.start_kernel(cwd=config.workdir, stdin=subprocess.DEVNULL, stdout=self._log,
                             stderr=self._log, preexec_fn=_die_with_worker, env=env)
        self.kc = self.km.blocking_client()
        self.kc.start_channels()
        self._info = wait_ready(self.kc, self.km, START_TIMEOUT)

    def _discard(self) -> None:
        """After a failed start: kill what was started of the kernel (its process group)
        and remove its files, so a worker that goes on (to tell the user, and try again)
        holds nothing of it."""
        kc, km = getattr(self, "kc", None), getattr(self, "km", None)
        try:
            if kc is not None:
                kc.stop_channels()
            if km is not None and km.has_kernel:
                km.shutdown_kernel(now=True)
        except Exception:  # noqa: BLE001, S110 - best effort: PR_SET_PDEATHSIG is the rest
            pass
        finally:
            self._log.close()
            shutil.rmtree(self.rundir, ignore_errors=True)

    def _continue_kernel(self) -> None:
        process = getattr(self.km.provisioner, "process", None)
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGCONT)

    def kernel_log(self) -> str:
        """The end of what the kernel wrote to its stdout and stderr (for diagnostics)."""
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-3000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def _restart(self) -> None:
        """Start the kernel again; the next request waits until it answers (:meth:`_ready`):
        a request sent before the new kernel listens can be queued on the dead one's
        connection and never answered (the next cell then hung, now and then). The cell
        that restarted it ends without that wait (an interrupted one ended 1-4 s late)."""
        self.km.restart_kernel(now=True)
        self._unready = True

    def _ready(self) -> None:
        """Before a request to the kernel: wait until a restarted kernel answers."""
        if self._unready:
            self._unready = False
            try:
                wait_ready(self.kc, self.km, START_TIMEOUT)
            except RuntimeError:
                pass  # not ready in time: the request's own wait says it

    # --- SessionBackend ------------------------------------------------------------------

    def kernel_info(self) -> dict[str, Any]:
        return dict(self._info)

    def execute(self, code: str, *, silent: bool = False,
                store_history: bool = True) -> ExecuteOutcome:
        interrupted: list[float] = []
        # A KeyboardInterrupt raised halfway through sending a request (the next one would
        # then be garbled: the kernel rejects it and never answers) or handling a kernel
        # message (the reply, say: the cell would never end) breaks the session. So while
        # the cell is with the kernel, SIGINT only takes note, and the loop below passes it
        # on to the kernel.
        previous = signal.signal(signal.SIGINT, lambda *_: interrupted.append(time.monotonic()))
        self.worker_sigint = previous
        try:
            self._ready()  # (an interrupt meanwhile is noted, and passed on as below)
            msg_id = self.kc.execute(code, silent=silent, store_history=store_history,
                                     user_expressions=self.user_expressions,
                                     allow_stdin=self.allow_stdin,
                                     stop_on_error=False)  # the device aborts what queues
            run = Run(self, msg_id, silent=silent)
            sent, last = 0, 0.0
            first: float | None = None  # when the kernel was first interrupted
            while not run.done:
                run.step(timeout=POLL)
                now = time.monotonic()
                if self._interrupt_due(run, interrupted, sent, last, now):
                    sent, last = len(interrupted), now
                    first = now if first is None else first
                    self.km.interrupt_kernel()
                # (from the interrupt the kernel had, not the worker's: a kernel that never
                # says it began the cell has it only after INTERRUPT_BLIND, and would be
                # restarted at once)
                if first is not None and not run.done and \
                        time.monotonic() - first > self.interrupt_grace:
                    self._restart()
                    return ExecuteOutcome.failed("KeyboardInterrupt", "the kernel did not "
                                                 "stop when interrupted and was restarted", [])
                if not self.km.is_alive():  # the next cell gets a fresh one
                    run.drain()  # what it printed last, before os._exit, say
                    log, how = self.kernel_log(), self._how_it_ended()
                    self._restart()
                    return ExecuteOutcome.failed(
                        "KernelDied", f"the {self.kernel_name} kernel ended during this cell "
                        f"({how}) and was started again; variables defined before are gone",
                        [log] if log.strip() else [])
        finally:
            signal.signal(signal.SIGINT, previous)
        return run.outcome(interrupted=bool(interrupted))

    def _how_it_ended(self) -> str:
        """How the kernel's process ended ("it was killed by signal 9 (SIGKILL)"): a user
        told only that it ended could not tell a crash from an exit or a kill from outside
        (a memory limit's)."""
        process = getattr(self.km.provisioner, "process", None)
        code = process.poll() if process is not None else None
        return "it stopped answering" if code is None else f"it {how_ended(code)}"

    @staticmethod
    def _interrupt_due(run: Run, interrupted: list[float], sent: int, last: float,
                       now: float) -> bool:
        """Whether to interrupt the kernel now, the worker having had SIGINT at the times
        ``interrupted``, ``sent`` of them passed on, the last at ``last`` (0: none yet).

        A kernel interrupted before it runs the cell's code may ignore it (ipykernel, still
        idle), end (IRkernel) or drop the request (ipykernel, in its handler): so an
        interrupt waits until ``INTERRUPT_SETTLE`` after the kernel said it began. A kernel
        that never says so gets it after ``INTERRUPT_BLIND``, once a second, and once more a
        second after it began if the last went before. Never again after one it had while
        running, unless the worker was interrupted again: R keeps a second SIGINT that comes
        after its reply pending, and that interrupts the next cell."""
        if not interrupted or run.reply is not None:
            return False
        began = run.began
        if began is None:
            return now - interrupted[0] >= INTERRUPT_BLIND and now - last >= INTERRUPT_AGAIN
        if now - began < INTERRUPT_SETTLE:
            return False
        return len(interrupted) > sent or 0 < last < began < now - INTERRUPT_AGAIN

    def comm(self, msg_type: str, content: dict[str, Any],
             buffers: list[bytes] | None = None) -> ExecuteOutcome:
        """A client's comm message to the kernel's shell; what the kernel says about it
        (its comms' messages, a ``comm_info_reply``) is relayed until its idle status. An
        interrupt goes to the kernel, as during a cell (a handler stuck in the kernel would
        otherwise hold up the next cell), and ends the wait only when the kernel is idle."""
        answer = "comm_info_reply" if msg_type == "comm_info_request" else None
        outcome, reply = self._shell_request(msg_type, content, answer, buffers)
        if answer is not None and reply is not None:
            self.out.message(answer, reply)
        return outcome

    def query(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        """The kernel's own answer (its completer, its help), asked as :meth:`comm` asks."""
        outcome, reply = self._shell_request(msg_type, content,
                                             msg_type.removesuffix("_request") + "_reply")
        if reply is None:
            raise RuntimeError(f"the kernel gave no reply ({outcome.ename}: {outcome.evalue})")
        return reply

    def _shell_request(self, msg_type: str, content: dict[str, Any], answer: str | None,
                       buffers: list[bytes] | None = None
                       ) -> tuple[ExecuteOutcome, dict[str, Any] | None]:
        """Send a client's message (with its ``buffers``) to the kernel's shell and wait for
        its idle status (and its reply of type ``answer``, if one is expected): the outcome,
        and that reply."""
        interrupted: list[float] = []
        previous = signal.signal(signal.SIGINT, lambda *_: interrupted.append(time.monotonic()))
        try:
            self._ready()
            msg = self.kc.session.msg(msg_type, content)
            if buffers:
                msg["buffers"] = buffers  # jupyter_client's Session.send sends them
            self.kc.shell_channel.send(msg)
            run = Run(self, msg["header"]["msg_id"], answer, silent=True)
            first: float | None = None  # when the kernel was first interrupted
            while not run.done:  # as long as a cell may run: --exec-timeout is the device's
                run.step(timeout=POLL)
                now = time.monotonic()
                if interrupted and (now - interrupted[0] >= INTERRUPT_BLIND or (
                        run.began is not None and now - run.began >= INTERRUPT_SETTLE)):
                    interrupted.clear()  # (as for a cell: once the kernel runs the handler)
                    first = now if first is None else first
                    self.km.interrupt_kernel()
                if first is not None and now - first > self.interrupt_grace:
                    # As for a cell: a handler that ignores the interrupt held the session
                    # until --exec-timeout, and the device then ended the whole worker.
                    return self._restarted(f"the kernel did not stop a {msg_type}'s handler "
                                           "when interrupted", "KeyboardInterrupt"), None
                if not self.km.is_alive():
                    run.drain()
                    return self._restarted(f"the {self.kernel_name} kernel ended during a "
                                           f"{msg_type} ({self._how_it_ended()})",
                                           "KernelDied"), None
        finally:
            signal.signal(signal.SIGINT, previous)
        return ExecuteOutcome(), run.reply if answer is not None else None

    def _restarted(self, why: str, ename: str) -> ExecuteOutcome:
        """Restart the kernel that a client's comm message left stopped or stuck, and say so
        on its stderr (a comm message has no error a client shows): the next cell ran in
        the dead kernel, failing with KernelDied, or waited behind the stuck handler."""
        self._restart()
        self.out.stream("stderr", f"[cellbus: {why}, and was restarted; variables and "
                                  "widgets defined before are gone]\n")
        return ExecuteOutcome.failed(ename, f"{why}, and was restarted", [])

    def warm_up(self) -> None:
        """Nothing to do: the kernel is started and answered ``kernel_info`` already."""

    def shutdown(self) -> None:
        try:
            self.kc.stop_channels()
            self.km.shutdown_kernel(now=False)
        finally:
            self._log.close()
            shutil.rmtree(self.rundir, ignore_errors=True)


def for_kernel(name: str) -> type[JupyterBackend]:
    """A :class:`JupyterBackend` subclass that runs the kernelspec ``name``, read and checked
    now (:func:`session.kernelspecs.read`: ``ValueError`` saying what is wrong with it)."""
    return type(f"JupyterBackend_{name}", (JupyterBackend,), {
        "kernel_name": name, "kernel_spec": kernelspecs.read(name), "__module__": __name__})
