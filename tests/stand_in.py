"""The end of a test whose device talks to a stand-in broker (a :class:`harness.BusClient`).

A stopping device waits up to ``DRAIN_REPLY_TIMEOUT`` (3 s) for the broker's receipts of the
output records it still holds, as long as the broker was heard lately (device/router.py,
``shutdown``). A stand-in broker gives no receipts, so each such test's teardown waited the
full 3 s. :func:`stop_device` acknowledges every record as the broker would
(``output_ack``, broker/receipts.py) while the device stops, so it leaves at once.
"""

from __future__ import annotations

import signal
import time

import zmq

from harness import BusClient, NodeProcess
from protocol.errors import ProtocolError
from protocol.msgtypes import OUTPUT_ACK, RECORDS
from protocol.records import unbundle
from protocol.wire import Message


def stop_device(client: BusClient, device: NodeProcess, timeout: float = 10.0) -> None:
    """SIGTERM ``device`` once every record it sent ``client`` is acknowledged, and go on
    acknowledging what it sends until it exits, at most ``timeout`` s (what still runs then
    is left to the ``nodes`` fixture, which kills it)."""
    if device.proc.poll() is not None:
        return
    acknowledge(client, [m for _, m in client.inbox])
    device.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while device.proc.poll() is None and time.monotonic() < deadline:
        if not client.sock.poll(50):
            continue
        try:
            _, msg = client.session.deserialize(client.sock.recv_multipart())
        except (zmq.ZMQError, ProtocolError):
            continue
        acknowledge(client, list(unbundle(client.session, msg, lambda e: None))
                    if msg["msg_type"] == RECORDS else [msg])


def acknowledge(client: BusClient, records: list[Message]) -> None:
    """Send the device the broker's receipt of ``records`` (the numbered ones of its
    latest epoch)."""
    numbers = [r["metadata"].get("cellbus", {}).get("out") for r in records]
    numbers = [n for n in numbers if isinstance(n, list) and len(n) == 2]
    if numbers:
        epoch = numbers[-1][0]  # the running process's (a test may have restarted it)
        stored = max(n for e, n in numbers if e == epoch)
        ack = client.session.msg(OUTPUT_ACK, {"epoch": epoch, "stored": stored,
                                              "resend": False})
        client.sock.send_multipart(client.session.serialize(ack))
