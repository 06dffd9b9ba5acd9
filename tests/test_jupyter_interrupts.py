"""When the Jupyter backend interrupts a kernel once more (session/jupyter.py): a kernel may
ignore an interrupt that comes before it started the cell (ipykernel), and R keeps one that
comes after its reply pending, so that it interrupts the next cell (which made
test_backend_contract's ``test_interrupt_then_next_cell[ir]`` fail now and then). The whole
path runs against real kernels in tests/test_backend_contract.py; this is the rule alone."""

from __future__ import annotations

from types import SimpleNamespace

from session.jupyter import INTERRUPT_AGAIN, JupyterBackend

LATER = INTERRUPT_AGAIN + 0.1


def again(started: float | None, last: float, now: float) -> bool:
    return JupyterBackend._again(SimpleNamespace(started=started), last, now)  # type: ignore[arg-type]


def test_a_kernel_that_has_not_started_the_cell_is_interrupted_once_a_second() -> None:
    assert not again(None, last=10.0, now=10.5)
    assert again(None, last=10.0, now=10.0 + LATER)


def test_an_interrupt_sent_before_the_cell_started_is_sent_again_a_second_after_it_did() -> None:
    assert not again(started=10.5, last=10.0, now=11.0)  # started, but not a second ago
    assert again(started=10.5, last=10.0, now=10.5 + LATER)


def test_an_interrupt_the_kernel_had_while_running_is_never_sent_again() -> None:
    assert not again(started=10.0, last=10.2, now=10.2 + LATER)
    assert not again(started=10.0, last=10.2, now=30.0)
