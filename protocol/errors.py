"""The exceptions of cellbus's protocol layer, one per kind of failure a caller acts on."""

from __future__ import annotations

from typing import Literal

Reason = Literal[
    "frames",      # no delimiter, or too few frames after it
    "oversize",    # a frame, or the whole message, over the configured limit
    "signature",   # missing or wrong HMAC
    "replay",      # a signature this Session has already accepted
    "decode",      # a frame the packer cannot decode, or that is not a dict
    "header",      # a header without the fields every message must carry
    "content",     # content that does not fit its msg_type
]


class ProtocolError(Exception):
    """Raised for every kind of bad input on the wire.

    ``reason`` is one of :data:`Reason` so that a program can tell an attack (``signature``,
    ``replay``) from a broken peer (``frames``, ``decode``) without matching message text.
    """

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: Reason = reason
        self.detail = detail


class ConfigError(Exception):
    """Raised when a node is started with settings it cannot run with (no key, bad URL, ...).

    The message says what to do; launchers print it and exit with status 2.
    """


class StoppedBeforeStart(Exception):
    """Raised by a node's start-up when it was asked to stop (SIGTERM) while it waited for
    something it needs (a broker's store that does not answer yet): not a failure, so the
    launcher logs the message and exits with status 0, as a node stopped after start does."""


def address_in_use(node: str, what: str, option: str) -> ConfigError:
    """The one line a node stops with when ``what`` (a port, an endpoint) is taken: by
    another cellbus (a second ``up``?) or another program; ``option`` moves it."""
    return ConfigError(f"{node}: {what} is in use by another program (another cellbus?); "
                       f"stop that one, or choose a free one with {option}")

