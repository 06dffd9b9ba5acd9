"""When the Jupyter backend passes an interrupt on to its kernel (session/jupyter.py).

A kernel interrupted before it runs the cell's code may ignore it (ipykernel, still idle),
end (IRkernel: "Execution halted") or drop the request and never reply (ipykernel, inside
its handler); R keeps an interrupt that comes after its reply pending, so that it interrupts
the next cell. Each made test_backend_contract's ``test_interrupt_then_next_cell`` fail
under load now and then. The whole path runs against real kernels there; this is the rule
alone."""

from __future__ import annotations

from types import SimpleNamespace

from session.jupyter import INTERRUPT_AGAIN, INTERRUPT_BLIND, INTERRUPT_SETTLE, JupyterBackend


def due(interrupted: list[float], began: float | None, *, sent: int = 0, last: float = 0.0,
        now: float, reply: dict | None = None) -> bool:
    run = SimpleNamespace(began=began, reply=reply)
    return JupyterBackend._interrupt_due(run, interrupted, sent, last, now)  # type: ignore[arg-type]


def test_an_interrupt_waits_until_the_kernel_runs_the_cell() -> None:
    assert not due([10.0], began=None, now=10.0)  # the kernel may not have the request
    assert not due([10.0], began=10.5, now=10.5)  # it said so, but is not in the code yet
    assert due([10.0], began=10.5, now=10.5 + INTERRUPT_SETTLE)


def test_a_cell_running_for_a_while_is_interrupted_at_once() -> None:
    assert due([30.0], began=10.0, now=30.0)


def test_a_kernel_that_never_says_it_began_is_interrupted_once_a_second_after_a_while() -> None:
    assert not due([10.0], began=None, now=10.0 + INTERRUPT_BLIND - 0.1)
    assert due([10.0], began=None, now=10.0 + INTERRUPT_BLIND)
    last = 10.0 + INTERRUPT_BLIND
    assert not due([10.0], began=None, sent=1, last=last, now=last + 0.5)
    assert due([10.0], began=None, sent=1, last=last, now=last + INTERRUPT_AGAIN)
    # ... and once more a second after it began, the last having gone before
    assert not due([10.0], began=last + 0.5, sent=1, last=last, now=last + 1.0)
    assert due([10.0], began=last + 0.5, sent=1, last=last, now=last + 0.6 + INTERRUPT_AGAIN)


def test_an_interrupt_the_kernel_had_while_running_is_not_sent_again() -> None:
    assert not due([10.0], began=5.0, sent=1, last=10.0, now=10.0 + INTERRUPT_AGAIN + 0.1)
    assert not due([10.0], began=5.0, sent=1, last=10.0, now=60.0)
    assert due([10.0, 20.0], began=5.0, sent=1, last=10.0, now=20.0)  # unless asked again


def test_nothing_is_sent_once_the_kernel_replied() -> None:
    assert not due([10.0], began=5.0, now=10.0, reply={"status": "error"})
    assert not due([], began=5.0, now=10.0)
