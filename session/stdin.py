"""Interactive standard input of a session: ``input()``, ``getpass()`` and ``sys.stdin`` ask
the person at the page, as they do in Jupyter.

Reading sends an ``input_request`` ``{"prompt", "password"}`` over the worker's link (its
parent is the running request, like any output) and blocks the calling thread until the
device sends ``{"msg_type": "input_reply", "content": {"value"}}`` back. Then the prompt and
the answer are echoed to stdout as a terminal would show them (a password's answer never),
so the cell's stored output reads like the session it was; the echo is marked
(:data:`protocol.msgtypes.STDIN_ECHO`) for the Jupyter channels, which leave it out.

The wait is interruptible: a SIGINT (the Stop button) raises ``KeyboardInterrupt`` out of
``input()``, as anywhere in user code; a record is read whole inside the interrupt guard's
critical section, so an interrupt never leaves the link mid-record. A reply whose ``error``
is set (the device's ``--input-timeout`` ran out) raises :class:`InputTimeout` with that
text; a closed link raises ``EOFError``. Installs itself as ``sys.stdin``,
``builtins.input`` and ``getpass.getpass``; touches nothing else.

A prompt belongs to the run (cell) that asked it. When the run ends, a thread still waiting
at its prompt gets ``EOFError`` and lets go of the link, and one that asks between runs gets
``EOFError`` at once: a background thread that outlives its cell never blocks the next
cell's prompts, nor reads the link while the worker waits for its next request.
"""

from __future__ import annotations

import builtins
import getpass
import io
import select
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from protocol import msgtypes as mt
from protocol.link import WorkerLink

from .interrupts import InterruptGuard


#: Why ``input()`` of a run that has ended reads nothing.
ENDED = "the cell that asked for input has ended: no answer can come"
#: How often a waiting prompt looks whether its run has ended, in ms (a pipe to wake it
#: would be one more descriptor in the session's hands).
RECHECK_MS = 50


class StdinNotImplementedError(NotImplementedError):
    """``input()`` in a request whose client said it cannot answer (``allow_stdin``
    false: nbclient, ``jupyter nbconvert --execute``): raised at once, as IPython's
    exception of this name, instead of a prompt nobody will answer."""


#: Its text, IPython's.
NO_STDIN = "raw_input was called, but this frontend does not support input requests."


class InputTimeout(EOFError):
    """No answer came before the device's ``--input-timeout`` (an ``EOFError``, as a closed
    stdin would be, so code that handles end of input handles this too)."""


class Asker:
    """Asks over the link for one line at a time (one thread at a time)."""

    def __init__(self, link: WorkerLink, out: Any, guard: InterruptGuard) -> None:
        #: ``out`` is the worker's :class:`session.linkoutput.LinkOutput` (its ``message``,
        #: ``stream`` and ``broken``); typed loosely to keep this module free of the worker.
        self.link, self.out, self.guard = link, out, guard
        self._lock = threading.Lock()
        #: The running request's id; None between runs (see :meth:`serving`).
        self._run: str | None = None
        #: Whether the running request's client answers prompts (its ``allow_stdin``).
        self._allowed = True

    @contextmanager
    def serving(self, run: str, allowed: bool = True) -> Iterator[None]:
        """Prompts may be asked while this is entered (the worker wraps each run in it),
        if ``allowed`` (else :class:`StdinNotImplementedError`); at its end, a prompt still
        waiting raises ``EOFError``, and this returns only once no thread reads the link
        any more."""
        self._run, self._allowed = run, allowed
        try:
            yield
        finally:
            self._run, self._allowed = None, True
            with self._lock:  # a waiting thread sees it within RECHECK and lets go
                pass

    def ask(self, prompt: str = "", password: bool = False) -> str:
        """The answer to ``prompt`` (without a newline)."""
        if not isinstance(prompt, str):
            prompt = str(prompt)
        run = self._run
        with self._lock:
            if self.out.broken:  # a process user code forked: it has no link
                raise EOFError("this process cannot read the session's input")
            if run is None or run != self._run:
                raise EOFError(ENDED)
            if not self._allowed:
                raise StdinNotImplementedError(NO_STDIN)
            self.out.message(mt.INPUT_REQUEST, {"prompt": prompt, "password": password})
            content = self._wait(run)
        error = content.get("error")
        if isinstance(error, str):
            raise InputTimeout(error)
        value = content.get("value")
        value = value if isinstance(value, str) else ""
        if value == mt.INPUT_EOF:
            raise EOFError("end of input")
        # A message of its own (what the cell printed before goes first), marked so that
        # Jupyter clients, which show the prompt and answer themselves, are not sent it.
        self.out.message(mt.STREAM, {"name": "stdout",
                                     "text": f"{prompt}{'' if password else value}\n"},
                         {mt.STDIN_ECHO: True})
        return value

    def _wait(self, run: str) -> dict[str, Any]:
        """The content of the next ``input_reply``; anything else the link brings meanwhile
        is not for a running cell and is dropped. ``EOFError`` once ``run`` has ended."""
        poller = select.poll()
        poller.register(self.link.sock.fileno(), select.POLLIN)
        while True:
            ready = poller.poll(RECHECK_MS)  # interruptible: SIGINT raises here
            if self._run != run:
                raise EOFError(ENDED)
            if not ready:
                continue
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
