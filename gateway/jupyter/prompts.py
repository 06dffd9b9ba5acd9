"""Which ``input_request`` a channels socket is shown, and which one a client's answer is for.

A Jupyter kernel asks the client whose execute called ``input()``, on that client's stdin
channel. Here that client is known by the ``session`` of its request's header: the socket's
own ``session_id`` (from its URL) or any session its execute requests named (a client with
no ``session_id`` in its URL, as jupyter_server's ``GatewayKernelClient``). Its answer names
the prompt as its parent, or none at all (jupyter_client's ``KernelClient.input``), which a
kernel takes as the answer to the one thing it is asking now: the newest prompt.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from protocol.recent import forget_oldest

#: Prompts (and request sessions) remembered per socket, oldest forgotten first.
MAX_PROMPTS = 64


class Prompts:
    """One socket's prompts: the input_request msg_ids it was shown, each with its cell."""

    def __init__(self, client: str) -> None:
        self.client = client
        self.cells: OrderedDict[str, str] = OrderedDict()
        self.senders: OrderedDict[str, None] = OrderedDict()

    def sent(self, session: str) -> None:
        """The socket sent an execute request whose header names ``session``."""
        self.senders[session] = None
        forget_oldest(self.senders, MAX_PROMPTS)

    def is_ours(self, parent: dict[str, Any]) -> bool:
        """Whether an input_request with this parent header asks this socket's client."""
        session = parent.get("session")
        return session == self.client or session in self.senders

    def shown(self, msg_id: str, cell_id: str) -> None:
        self.cells[msg_id] = cell_id
        forget_oldest(self.cells, MAX_PROMPTS)

    def answered(self, parent: Any) -> tuple[str, str] | None:
        """``(prompt msg_id, its cell)`` an input_reply with this parent header answers: the
        one it names, or the newest if it names none; None if no such prompt was shown."""
        prompt = parent.get("msg_id") if isinstance(parent, dict) else None
        if not prompt and self.cells:
            prompt = next(reversed(self.cells))
        cell_id = self.cells.get(prompt) if isinstance(prompt, str) else None
        return None if cell_id is None else (prompt, cell_id)  # type: ignore[return-value]

    def done(self, prompt: str) -> None:
        """The prompt was answered: an answer naming no prompt goes to an older one now."""
        self.cells.pop(prompt, None)
