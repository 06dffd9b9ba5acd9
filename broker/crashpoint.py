"""A crash at one exact moment, for fault-injection tests: the broker SIGKILLs itself right
after the store committed a batch and before it published anything of it, when
``$CELLBUS_TEST_CRASH_AFTER_STORE`` names a message of the batch.

A SIGKILL sent from outside cannot be aimed between a commit and the publish after it (a
few microseconds apart), yet that moment leaves a state no other leaves: output stored and
acknowledged to its device, which never sends it again, and published to no gateway. The
value is ``MSG_TYPE`` or ``MSG_TYPE:EXECUTION_STATE`` (``status:idle``), matched against
output of a request (a message with a parent). Unset, as in every real deployment, this is
one comparison per batch.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable

from protocol.wire import Message

ENV = "CELLBUS_TEST_CRASH_AFTER_STORE"
_WANTED = os.environ.get(ENV, "")


def matches(msg: Message, wanted: str) -> bool:
    """Whether ``msg`` is output of a request of the kind ``wanted`` names."""
    kind, _, state = wanted.partition(":")
    return (msg["msg_type"] == kind and bool(msg["parent_header"].get("msg_id"))
            and (not state or msg["content"].get("execution_state") == state))


def after_store(outputs: Iterable[tuple[str, Message]]) -> None:
    """Called between the store's commit of ``outputs`` and their publication."""
    if _WANTED and any(matches(msg, _WANTED) for _, msg in outputs):
        os.kill(os.getpid(), signal.SIGKILL)
