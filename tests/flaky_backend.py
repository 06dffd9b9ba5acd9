"""A session backend for tests that will not start while its working directory holds a file
``refuse-to-start`` (as a researcher's backend whose licence server or database is not
reachable): its ``__init__`` raises ``ConnectionError`` with that file's text, after
:data:`SLOW` seconds if the text starts with ``slow`` (as a kernel that never answers fails
only when the wait for it ends). Selected with
``--backend flaky_backend:FlakyBackend`` (``tests/`` on ``PYTHONPATH``)."""

from __future__ import annotations

import os
import time
from typing import Any

from session.backend import BackendConfig, ExecuteOutcome, Output, SessionBackend

#: Seconds a "slow" failure to start takes.
SLOW = 1.5


class FlakyBackend(SessionBackend):
    """Prints ``flaky: CODE``; refuses to start while ``refuse-to-start`` exists."""

    def __init__(self, out: Output, config: BackendConfig) -> None:
        super().__init__(out, config)
        marker = os.path.join(config.workdir, "refuse-to-start")
        if os.path.exists(marker):
            with open(marker) as f:
                why = f.read()
            if why.startswith("slow"):
                time.sleep(SLOW)
            raise ConnectionError(why)

    def execute(self, code: str, *, silent: bool = False,
                store_history: bool = True) -> ExecuteOutcome:
        self.out.stream("stdout", f"flaky: {code}\n")
        return ExecuteOutcome()

    def kernel_info(self) -> dict[str, Any]:
        return {"language_info": {"name": "flaky"}, "banner": "flaky"}
