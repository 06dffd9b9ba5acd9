"""What a device says when its broker is silent while its link to it is up (the "no word from
the broker" line of :mod:`device.router`): the words depend on whether the broker answered on
that link since it came up."""

from __future__ import annotations

from collections.abc import Iterable

from protocol.linkwatch import LinkWatch


def silent_link(links: Iterable[LinkWatch], connect: str, broker_heard: float,
                device_id: str) -> str:
    """Why a broker whose link is up says nothing. One that answered on this link since
    it came up took what this device signs, under its --device-id: its keys and name are
    right, and it is the broker, or the path to it, that went quiet."""
    up_at = [link.up_at for link in links
             if link.endpoint == connect and not link.server and link.up]
    if up_at and broker_heard > max(up_at):
        return (f"the broker answered on this device's link to it at {connect}, which "
                "is still up, then fell silent: it is stopped, frozen or too busy (cellbus "
                "status), or the network to it carries nothing while the TCP connection "
                "stays open")
    return (f"its link to the broker at {connect} is up, so the broker does not take "
            "what this device signs: is its --key-file the same as this device's, and "
            f"is no other device running with --device-id {device_id}?")
