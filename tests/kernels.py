"""The kernels the tests run, and what each one's cells look like.

ipykernel (``python3``) and bash_kernel (``bash``) come from PyPI with the test extra,
IRkernel (``ir``) from Debian's ``r-cran-irkernel``; ``bin/test`` installs and registers them
all. A kernel that is not installed is skipped saying why, and in CI (``CI=true``) fails.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Cells:
    """A backend's name and a few cells in its language."""
    name: str
    #: Prints ``hello`` on stdout (None: the language has no print).
    hello: str | None
    #: (code, text the result's text/plain holds) (None: no execute_result).
    result: tuple[str, str] | None
    #: (code, ename of its error)
    error: tuple[str, str]
    #: Defines state, then a cell that shows it as ``5`` (in a stream or a result).
    define: str
    show: str
    #: Runs until interrupted (None: the backend cannot be interrupted mid-statement).
    loop: str | None
    #: Whether it is a Jupyter kernelspec (to be found installed).
    jupyter: bool = True


PYTHON_CELLS = dict(hello="print('hello')", result=("6*7", "42"),
                    error=("1/0", "ZeroDivisionError"), define="x = 5", show="print(x)",
                    loop="while True: pass")
BACKENDS = [
    Cells("python", jupyter=False, **PYTHON_CELLS),  # type: ignore[arg-type]
    Cells("python3", **PYTHON_CELLS),  # type: ignore[arg-type]
    Cells("bash", hello="echo hello", result=None, error=("false", "Error"),
          define="X=5", show="echo $X", loop="while true; do :; done"),
    Cells("ir", hello='cat("hello\\n")', result=("6*7", "[1] 42"),
          error=('stop("boom")', "ERROR"), define="x <- 5", show="cat(x)",
          loop="while (TRUE) {}"),
    Cells("sqlite", jupyter=False, hello=None, result=("select 6*7 as v", "v\n42"),
          error=("selec 1", "OperationalError"),
          define="create table t(a); insert into t values (5)", show="select a from t",
          loop=None),
]
BY_NAME = {c.name: c for c in BACKENDS}


def require_kernel(name: str) -> None:
    """Skip (or in CI fail) unless the kernelspec ``name`` is installed."""
    from jupyter_client.kernelspec import KernelSpecManager
    if name in KernelSpecManager().find_kernel_specs():
        return
    how = {"ir": "Debian's r-cran-irkernel, as root with apt",
           "bash": "bash_kernel from the test extra, registered into .venv"}.get(
               name, "ipykernel from the test extra")
    why = f"the Jupyter kernel {name!r} is not installed (bin/test installs it: {how})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(why, pytrace=False)
    pytest.skip(why)
