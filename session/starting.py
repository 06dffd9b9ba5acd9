"""A backend that did not start: the user is told why, and each run tries it again.

A worker builds its backend before it reads a request, most often in the device's prefork
pool (a Jupyter kernel is launched there). When that fails (a kernelspec whose program is
missing, a kernel that exits at once or never answers, a researcher's backend that raises in
``__init__``), the worker used to exit, and the user's cell ended with "WorkerDied: exited
with code 1" while the reason was only in the device's log. Now the worker serves with
:class:`Unstarted` instead: an execute or interact first builds the backend again (the
machine may have been busy, a kernel may have been installed since), and if that fails
too, or the run waited through the last failed start, the run ends in a
``BackendStartError`` that says why, with what the kernel wrote.
The operator's log gets the same once per failed start (``worker_log``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .backend import BackendConfig, ExecuteOutcome, Output, SessionBackend

BackendFactory = Callable[[Output, BackendConfig], SessionBackend]
#: The ``ename`` of a run whose backend could not be started.
ENAME = "BackendStartError"


def describe(factory: BackendFactory) -> str:
    """How the user knows the backend: its kernel's name, else its class."""
    name = getattr(factory, "kernel_name", None)
    if isinstance(name, str) and name:
        return f"kernel {name!r}"
    return f"backend {getattr(factory, '__module__', '?')}:{getattr(factory, '__name__', '?')}"


def start_error(factory: BackendFactory, error: BaseException) -> str:
    """What a failed start says (a Jupyter backend's own message names its kernel)."""
    text = str(error) or type(error).__name__
    return text if text.startswith("the kernel ") else \
        f"the {describe(factory)} did not start: {type(error).__name__}: {text}"


def start(factory: BackendFactory, out: Output, config: BackendConfig,
          report: Callable[[str], None], waiting: Callable[[], bool]) -> SessionBackend:
    """The backend ``factory`` makes, or, if that raises, an :class:`Unstarted` that says
    why (``report``: the line for the device's log; ``waiting``: whether a request is
    waiting to be read)."""
    unstarted = Unstarted(out, config, factory, report, waiting)
    return unstarted.started or unstarted


class Unstarted(SessionBackend):
    """Stands in for a backend whose start failed; starts it on a later run, then passes
    everything on to it.

    A run that was already waiting when a start failed is told at once, without another
    try: a kernel that never answers fails only after ``START_TIMEOUT`` (60 s), and a cell
    that waited through the pool's failed start waited as long once more before it was
    told. The run after it tries again."""

    def __init__(self, out: Output, config: BackendConfig, factory: BackendFactory,
                 report: Callable[[str], None], waiting: Callable[[], bool]) -> None:
        super().__init__(out, config)
        self.factory, self.report, self.waiting = factory, report, waiting
        self.error = ""
        self.started: SessionBackend | None = None
        self.display_name = getattr(factory, "display_name", "")
        self.language = getattr(factory, "language", "")
        #: The next run waited through the last failed start: it is not tried for it.
        self.skip = False
        self._backend()

    def _backend(self) -> SessionBackend | None:
        """The backend, started now if it was not yet (None: it failed, or is not tried
        for this run)."""
        if self.started is None and self.skip:
            self.skip = False
        elif self.started is None:
            try:
                self.started = self.factory(self.out, self.config)
            except Exception as e:  # noqa: BLE001 - told to the user on each run
                self.error = start_error(self.factory, e)
                self.report(self.error)
                self.skip = self.waiting()
        return self.started

    def _failed(self) -> ExecuteOutcome:
        first, _, rest = self.error.partition("\n")
        return ExecuteOutcome.failed(ENAME, first, [f"{ENAME}: {self.error}"] if rest
                                     else [f"{ENAME}: {first}"])

    def execute(self, code: str, *, silent: bool = False,
                store_history: bool = True) -> ExecuteOutcome:
        backend = self._backend()
        if backend is None:
            return self._failed()
        backend.execution_count = self.execution_count
        return backend.execute(code, silent=silent, store_history=store_history)

    def interact(self, interact_id: str, values: dict[str, Any], state: int) -> ExecuteOutcome:
        backend = self._backend()
        return self._failed() if backend is None else backend.interact(interact_id, values,
                                                                        state)

    def comm(self, msg_type: str, content: dict[str, Any],
             buffers: list[bytes] | None = None) -> ExecuteOutcome:
        return self._failed() if self.started is None else self.started.comm(msg_type, content,
                                                                             buffers)

    def query(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        """Unanswered until a run started the backend (a completion does not wait for a
        kernel's start)."""
        if self.started is None:
            return super().query(msg_type, content)
        return self.started.query(msg_type, content)

    def kernel_info(self) -> dict[str, Any]:
        if self.started is not None:
            return self.started.kernel_info()
        return {"language_info": {"name": self.language or "unknown"},
                "banner": f"{self.error.partition(chr(10))[0]} (the next run tries again)"}

    def shutdown(self) -> None:
        if self.started is not None:
            self.started.shutdown()
