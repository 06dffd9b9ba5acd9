"""One request in flight in a Jupyter kernel (:mod:`session.jupyter`): what the kernel says
about it on iopub, shell and stdin, relayed as the session's own output, until its reply and
idle status end it."""

from __future__ import annotations

import getpass
import signal
import time
from typing import TYPE_CHECKING, Any

from protocol import msgtypes as mt

from .backend import ExecuteOutcome, expression_error

if TYPE_CHECKING:
    from .jupyter import JupyterBackend

#: Image types a kernel sends as base64 text.
BASE64_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif"})
#: What the kernel's comms say on iopub, relayed as the session's own output.
COMM_OUTPUT = frozenset({"comm_open", "comm_msg", "comm_close"})
#: Seconds without a message after which a dead kernel is taken to have said everything.
DRAIN_QUIET = 0.2


class Run:
    """One execute_request in flight: relays its output and keeps its reply and result."""

    def __init__(self, backend: JupyterBackend, msg_id: str,
                 answer: str | None = "execute_reply", *, silent: bool = False) -> None:
        self.backend, self.msg_id, self.answer = backend, msg_id, answer
        self.silent = silent
        #: The reply, of type ``answer``; a comm message has none (but comm_info_request):
        #: its idle ends it.
        self.reply: dict[str, Any] | None = None if answer is not None else {}
        self.idle = False
        #: When the kernel started the cell (it sent the cell's execute_input), monotonic.
        self.started: float | None = None
        #: When the kernel said it was busy with the request, monotonic.
        self.busy: float | None = None
        self.result: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self.reply is not None and self.idle

    @property
    def began(self) -> float | None:
        """When the kernel began the cell: its execute_input, or for a silent cell (which
        has none) its busy."""
        return self.busy if self.silent else self.started

    def drain(self, quiet: float = DRAIN_QUIET) -> None:
        """Handle all the kernel sent before it ended, until ``quiet`` seconds pass without
        more: its last output is in its sockets' queues still when its death is seen."""
        while self.step(timeout=quiet):
            pass

    def step(self, timeout: float) -> int:
        """Handle what the kernel sent (waiting up to ``timeout`` seconds for something);
        how many messages were handled."""
        import zmq
        kc = self.backend.kc
        channels = {kc.iopub_channel.socket: self._iopub, kc.shell_channel.socket: self._shell,
                    kc.stdin_channel.socket: self._stdin}
        poller = zmq.Poller()
        for sock in channels:
            poller.register(sock, zmq.POLLIN)
        ready = poller.poll(int(timeout * 1000))
        for sock, _ in ready:
            channels[sock]()
        return len(ready)

    def _mine(self, msg: dict[str, Any]) -> bool:
        return msg["parent_header"].get("msg_id") == self.msg_id

    def _shell(self) -> None:
        msg = self.backend.kc.get_shell_msg(timeout=0)
        if self._mine(msg) and msg["msg_type"] == self.answer:
            self.reply = msg["content"]

    def _stdin(self) -> None:
        msg = self.backend.kc.stdin_channel.get_msg(timeout=0)
        if msg["msg_type"] != "input_request":
            return
        content = msg["content"]
        prompt = str(content.get("prompt", ""))
        # The worker's own SIGINT handling while it waits for the answer: an interrupt ends
        # the prompt (KeyboardInterrupt) as it does input() in a Python session.
        ours = signal.signal(signal.SIGINT, self.backend.worker_sigint)
        try:
            value = getpass.getpass(prompt) if content.get("password") else input(prompt)
        except (EOFError, OSError) as e:  # nobody to answer: the kernel reads ""
            self.backend.out.stream("stderr", f"[cellbus: no answer to the prompt: {e}]\n")
            value = ""
        except KeyboardInterrupt:
            self.backend.km.interrupt_kernel()  # ends its wait for input, and the cell
            return
        finally:
            signal.signal(signal.SIGINT, ours)
        self.backend.kc.input(value)

    def _iopub(self) -> None:
        msg = self.backend.kc.get_iopub_msg(timeout=0)
        if not self._mine(msg):
            return
        kind, content, out = msg["msg_type"], msg["content"], self.backend.out
        if kind == "stream":
            out.stream("stderr" if content.get("name") == "stderr" else "stdout",
                       str(content.get("text", "")))
        elif kind == "display_data":
            out.display(_unwrapped(content.get("data", {})), content.get("metadata"),
                        transient=content.get("transient"))
        elif kind == mt.UPDATE_DISPLAY_DATA:  # its own type: Jupyter clients add no display
            metadata, transient = content.get("metadata"), content.get("transient")
            out.message(kind, {"data": _unwrapped(content.get("data", {})),
                               "metadata": metadata if isinstance(metadata, dict) else {},
                               "transient": transient if isinstance(transient, dict) else {}})
        elif kind == "execute_result":
            self.result = content
        elif kind == "clear_output":
            out.message("clear_output", {"wait": content.get("wait") is True})
        elif kind in COMM_OUTPUT:  # with its metadata (ipywidgets' protocol version) and
            # its buffers (a widget's bytes: jupyter_client gives them as memoryviews)
            out.message(kind, content, msg.get("metadata") or None,
                        buffers=[bytes(b) for b in msg.get("buffers") or ()])
        elif kind == "status" and content.get("execution_state") == "idle":
            self.idle = True
        elif kind == "status" and self.busy is None:
            self.busy = time.monotonic()
        if kind == "execute_input" and self.started is None:  # from the cell's handler
            self.started = time.monotonic()  # (busy comes before it, while SIGINT is ignored)

    def outcome(self, *, interrupted: bool = False) -> ExecuteOutcome:
        """What the cell came to, ``interrupted`` if the worker passed an interrupt on."""
        reply = self.reply or {}
        if reply.get("status") == "abort" and not reply.get("ename"):
            # bash_kernel's answer to an interrupt of its command: no ename, which showed
            # as "Error: " (empty) where every other kernel says KeyboardInterrupt.
            if interrupted:
                return ExecuteOutcome.failed("KeyboardInterrupt", "", ["KeyboardInterrupt"])
            return ExecuteOutcome.failed("Aborted", f"the {self.backend.kernel_name} kernel "
                                         "did not run this cell to its end", [])
        if reply.get("status") != "ok":  # error, or abort: the kernel skipped the cell
            ename = str(reply.get("ename") or "Error")  # bash_kernel sends "" (and the
            evalue = str(reply.get("evalue", ""))      # exit status as evalue)
            traceback = [str(line) for line in reply.get("traceback") or []]
            return ExecuteOutcome.failed(ename, evalue, traceback or [f"{ename}: {evalue}"])
        asked = self.backend.user_expressions
        values = reply.get("user_expressions")
        values = values if isinstance(values, dict) else {}
        # The kernel's own values; one it left out says so (a kernel may ignore them).
        expressions = {name: values.get(name) if isinstance(values.get(name), dict) else
                       expression_error("KeyError", f"the {self.backend.kernel_name} kernel "
                                        "gave no value for this expression", [])
                       for name in asked}
        if self.result is None:
            return ExecuteOutcome(user_expressions=expressions)
        return ExecuteOutcome(result=_unwrapped(self.result.get("data", {})),
                              result_metadata=self.result.get("metadata", {}),
                              user_expressions=expressions)


def _unwrapped(data: Any) -> dict[str, Any]:
    """A mimebundle with its base64 images on one line (IRkernel wraps them every 76
    characters, which a ``data:`` URL does not allow)."""
    if not isinstance(data, dict):
        return {}
    return {mime: "".join(value.split()) if mime in BASE64_IMAGES and isinstance(value, str)
            else value for mime, value in data.items()}
