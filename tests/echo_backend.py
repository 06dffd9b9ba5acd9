"""A session backend for tests that must not run arbitrary code: it only echoes sizes.

Selected with ``bin/cellbus device --backend echo_backend:EchoBackend`` (``tests/`` on the
device's ``PYTHONPATH``). The fuzz tests send thousands of random inputs through the whole
chain; with this backend each is answered, quickly and harmlessly, with its length.
"""

from __future__ import annotations

from typing import Any

from session.backend import ExecuteOutcome, SessionBackend


class EchoBackend(SessionBackend):
    """Executes nothing: prints the input's length and returns it as the result."""

    def execute(self, code: str, *, silent: bool = False,
                store_history: bool = True) -> ExecuteOutcome:
        self.out.stream("stdout", f"{len(code)} characters\n")
        return ExecuteOutcome(result={"text/plain": str(len(code))})

    def kernel_info(self) -> dict[str, Any]:
        return {"language_info": {"name": "echo", "version": "1"}, "banner": "echo"}
