"""Interactive standard input of a session: ``input()``, ``getpass()`` and ``sys.stdin`` ask
the person at the page, as they do in Jupyter.

Reading sends an ``input_request`` ``{"prompt", "password"}`` over the worker's link (its
parent is the running request, like any output) and blocks the calling thread until the
device sends ``{"msg_type": "input_reply", "content": {"value"}}`` back. Then the prompt and
the answer are echoed to stdout as a terminal would show them (a password's answer never),
so the cell's stored output reads like the session it was.

The wait is interruptible: a SIGINT (the Stop button) raises ``KeyboardInterrupt`` out of
``input()``, as anywhere in user code; a record is read whole inside the interrupt guard's
critical section, so an interrupt never leaves the link mid-record. A reply whose ``error``
is set (the device's ``--input-timeout`` ran out) raises :class:`InputTimeout` with that
text; a closed link raises ``EOFError``. Installs itself as ``sys.stdin``,
``builtins.input`` and ``getpass.getpass``; touches nothing else.
"""

from __future__ import annotations

import builtins
import getpass
import io
import select
import sys
import threading
from typing import Any

from protocol import msgtypes as mt
from protocol.link import WorkerLink

from .interrupts import InterruptGuard


class InputTimeout(EOFError):
    """No answer came before the device's ``--input-timeout`` (an ``EOFError``, as a closed
    stdin would be, so code that handles end of input handles this too)."""


class Asker:
    """Asks over the link for one line at a time (one thread at a time)."""

    def __init__(self, link: WorkerLink, out: Any, guard: InterruptGuard) -> None:
        #: ``out`` is the worker's :class:`session.worker.LinkOutput` (its ``message``,
        #: ``stream`` and ``broken``); typed loosely to keep this module free of the worker.
        self.link, self.out, self.guard = link, out, guard
        self._lock = threading.Lock()

    def ask(self, prompt: str = "", password: bool = False) -> str:
        """The answer to ``prompt`` (without a newline)."""
        if not isinstance(prompt, str):
            prompt = str(prompt)
        with self._lock:
            if self.out.broken:  # a process user code forked: it has no link
                raise EOFError("this process cannot read the session's input")
            self.out.message(mt.INPUT_REQUEST, {"prompt": prompt, "password": password})
            content = self._wait()
        error = content.get("error")
        if isinstance(error, str):
            raise InputTimeout(error)
        value = content.get("value")
        value = value if isinstance(value, str) else ""
        if value == mt.INPUT_EOF:
            raise EOFError("end of input")
        self.out.stream("stdout", f"{prompt}{'' if password else value}\n")
        return value

    def _wait(self) -> dict[str, Any]:
        """The content of the next ``input_reply``; anything else the link brings meanwhile
        is not for a running cell and is dropped."""
        poller = select.poll()
        poller.register(self.link.sock.fileno(), select.POLLIN)
        while True:
            poller.poll()  # interruptible: SIGINT raises KeyboardInterrupt here
            with self.guard:  # a record is read whole; an interrupt waits for its end
                record = self.link.recv()
            if record is None:
                raise EOFError("the session is closing: no answer can come")
            if record.get("msg_type") == mt.INPUT_REPLY:
                content = record.get("content")
                return content if isinstance(content, dict) else {}


class Stdin(io.TextIOBase):
    """``sys.stdin`` of a session: each line read is asked for with an empty prompt."""

    def __init__(self, asker: Asker) -> None:
        super().__init__()
        self._asker = asker

    @property
    def name(self) -> str:
        return "<stdin>"

    def readable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        try:
            return self._asker.ask() + "\n"
        except InputTimeout:
            raise  # an error the cell shows, not a silent end of file
        except EOFError:
            return ""  # a file's end, as a closed stdin reads

    def read(self, size: int | None = -1) -> str:
        """One line: there is no end of file to read up to, only the next answer."""
        return self.readline()


def install(link: WorkerLink, out: Any, guard: InterruptGuard) -> Asker:
    """Make ``sys.stdin``, ``input()`` and ``getpass.getpass()`` ask over ``link``."""
    asker = Asker(link, out, guard)
    sys.stdin = Stdin(asker)

    def ask_input(prompt: object = "") -> str:
        """Read a line, asked for with ``prompt`` in the cell (cellbus)."""
        return asker.ask(str(prompt), False)

    def ask_password(prompt: str = "Password: ", stream: object = None) -> str:
        """Read a password, asked for with ``prompt`` in a masked box (cellbus); it is
        neither echoed nor stored."""
        return asker.ask(str(prompt), True)

    builtins.input = ask_input
    getpass.getpass = ask_password
    return asker
