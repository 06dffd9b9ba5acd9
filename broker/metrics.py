"""The broker's Prometheus metrics (see :mod:`protocol.metrics`), served on --metrics-port.

Events are observed where they happen: a store commit, a request accepted, its first output
stored, a refusal, a device lost. Everything else (devices, places, sessions, waiting
requests, whether the store writes) is read from the broker's state at scrape time.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable, Sized
from typing import Protocol

from prometheus_client import Counter, Histogram
from prometheus_client.core import Metric

from protocol import msgtypes as mt
from protocol.heartbeat import HEARTBEAT_INTERVAL
from protocol.metrics import LATENCY_BUCKETS, NodeMetrics, gauge
from protocol.wire import Message

from .outputcap import OUTPUT_TYPES, message_size
from .placement import DeviceTable


class BrokerState(Protocol):
    """What the metrics read of the broker at scrape time (:class:`broker.node.Broker`)."""

    rejected: collections.Counter[str]
    devices: DeviceTable

    @property
    def store_failing(self) -> float | None: ...

    @property
    def sent(self) -> Sized: ...

    @property
    def held(self) -> Sized: ...

#: Accepted requests remembered until their first output (the oldest are forgotten).
MAX_WAITING = 10_000
#: What a refusal's HTTP status says about its reason.
REFUSAL_REASONS = {429: "quota", 503: "capacity", 507: "store", 400: "bad_request",
                   404: "not_found", 409: "duplicate", 413: "too_large"}
#: Message types whose arrival is a cell's first output.
FIRST_OUTPUT = OUTPUT_TYPES | {mt.ERROR}


class BrokerMetrics(NodeMetrics):
    def __init__(self, broker: BrokerState) -> None:
        super().__init__("broker", broker.rejected)
        self.broker = broker
        r = self.registry
        self.commit = Histogram("cellbus_store_commit_seconds", "Time to store one batch of "
                                "output with its status changes", buckets=LATENCY_BUCKETS,
                                registry=r)
        self.messages = Counter("cellbus_output_messages_stored", "Output messages stored",
                                registry=r)
        self.bytes = Counter("cellbus_output_bytes_stored", "Bytes of output content stored "
                             "(msgpack, with buffers)", registry=r)
        self.first_output = Histogram(
            "cellbus_first_output_seconds", "From an execute or interact request accepted to "
            "its first output stored", buckets=LATENCY_BUCKETS, registry=r)
        self.refusals = Counter("cellbus_refusals", "Gateway requests the broker refused, by "
                                "reason", ["reason"], registry=r)
        self.devices_lost = Counter("cellbus_devices_lost", "Devices taken for lost after "
                                    "missing their heartbeats", registry=r)
        self.heartbeats_missed = Counter("cellbus_device_heartbeats_missed", "Heartbeat "
                                         "intervals a live device stayed silent through, by "
                                         "device", ["device"], registry=r)
        self._waiting: collections.OrderedDict[str, float] = collections.OrderedDict()
        self.collect_state(self._read_state)

    def accepted(self, msg_id: str) -> None:
        self._waiting[msg_id] = time.monotonic()
        if len(self._waiting) > MAX_WAITING:
            self._waiting.popitem(last=False)

    def heartbeat_round(self) -> None:
        """One heartbeat interval passed: count it missed for each device not taken for lost
        that was not heard from in it (with half an interval of slack for the wire)."""
        table = self.broker.devices
        now = time.monotonic()
        for d in table.devices.values():
            if not d.lost and now - d.last_heard > HEARTBEAT_INTERVAL * 1.5:
                self.heartbeats_missed.labels(d.device).inc()

    def refused(self, http_status: int) -> None:
        self.refusals.labels(REFUSAL_REASONS.get(http_status, str(http_status))).inc()

    def stored(self, outputs: list[tuple[str, Message]], seconds: float,
               size: int | None = None) -> None:
        """A batch was stored; ``size``: its output's bytes if the caller measured them
        (the output caps do), else they are measured here."""
        self.commit.observe(seconds)
        now = time.monotonic()
        measured = 0
        for _, msg in outputs:
            if msg["msg_type"] in FIRST_OUTPUT:
                if size is None:
                    measured += message_size(msg)
                parent = msg["parent_header"].get("msg_id")
                if self._waiting and (since := self._waiting.pop(parent, None)) is not None:
                    self.first_output.observe(now - since)
        self.messages.inc(len(outputs))
        self.bytes.inc(measured if size is None else size)

    def _read_state(self) -> Iterable[Metric]:
        broker = self.broker
        table = broker.devices
        live = [d for d in table.devices.values() if table.alive(d.device)]
        yield gauge("cellbus_devices", "Devices registered and heard from lately", len(live))
        yield gauge("cellbus_places_free", "Places for new sessions on live devices",
                    sum(d.free for d in live if not d.draining))
        yield gauge("cellbus_sessions_open", "Sessions open on each live device",
                    labels={"device": {d.device: len(d.sessions | set(d.placing)) for d in live}})
        yield gauge("cellbus_requests_handed_out", "Requests handed to devices and not yet "
                    "finished (queued there or running)", len(broker.sent))
        yield gauge("cellbus_sessions_waiting_for_room", "Sessions whose requests wait for a "
                    "free place on a device", len(broker.held))
        yield gauge("cellbus_store_writable", "1 while the store takes writes, 0 while it "
                    "refuses them (disk full)", 1 if broker.store_failing is None else 0)
