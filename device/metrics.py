"""A device's Prometheus metrics (see :mod:`protocol.metrics`), served on --metrics-port,
all read from the device's state at scrape time: sessions and places, workers preforked,
cells running and queued, the outbox (records and bytes the broker has not confirmed,
resends), records refused from workers, and which sandbox protections are in force."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, Metric

from protocol.metrics import NodeMetrics, gauge

if TYPE_CHECKING:
    from .router import DeviceRouter


class DeviceMetrics(NodeMetrics):
    def __init__(self, device: DeviceRouter) -> None:
        super().__init__("device", device.rejected)
        self.device = device
        self.collect_state(self._read_state)

    def _read_state(self) -> Iterable[Metric]:
        device = self.device
        overseer = device.overseer
        yield gauge("cellbus_device_sessions", "Sessions with a live worker", len(overseer.workers))
        yield gauge("cellbus_device_places", "Sessions this device runs at most (--max-sessions)",
                    device.config.max_sessions)
        yield gauge("cellbus_device_workers_preforked", "Workers forked and ready",
                    len(overseer.ready))
        by_kernel = {name: 0.0 for name in overseer.pools}
        for w in overseer.workers.values():
            by_kernel[w.kernel] = by_kernel.get(w.kernel, 0.0) + 1
        yield gauge("cellbus_device_kernel_sessions", "Sessions with a live worker, by kernel",
                    labels={"kernel": by_kernel})
        yield gauge("cellbus_device_kernel_workers_preforked", "Workers forked and ready, by "
                    "kernel (--prefork for the built-in one, --kernel-prefork for the others)",
                    labels={"kernel": {name: float(len(pool))
                                       for name, pool in overseer.pools.items()}})
        workers = overseer.workers.values()
        yield gauge("cellbus_device_cells_running", "Requests running in a worker now",
                    sum(1 for w in workers if w.current is not None))
        yield gauge("cellbus_device_cells_queued", "Requests waiting for their session's "
                    "running one to end", sum(len(w.queue) for w in workers))
        yield gauge("cellbus_device_outbox_records", "Output records the broker has not "
                    "confirmed yet", len(device.outbox))
        yield gauge("cellbus_device_outbox_bytes", "Bytes of those records (--outbox-bytes "
                    "bounds them)", device.outbox.bytes)
        yield CounterMetricFamily("cellbus_device_outbox_resends", "Times the outbox sent its "
                                  "unconfirmed records again", value=device.outbox.resends)
        yield CounterMetricFamily("cellbus_device_outbox_user_waits", "Times a worker's writes "
                                  "waited because its user held its share of the outbox "
                                  "(--user-outbox)", value=device.outbox.user_waits)
        yield CounterMetricFamily("cellbus_device_worker_records_rejected", "Records from "
                                  "workers refused (forged, malformed, out of turn)",
                                  value=overseer.rejected)
        protections = overseer.launcher.protections
        yield gauge("cellbus_device_sandbox_protection", "1 for each sandbox protection in "
                    "force, 0 for each that is off", labels={"protection": {
                        **{p: 1.0 for p in protections.on}, **{p: 0.0 for p in protections.off}}})
