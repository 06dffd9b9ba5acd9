"""Prometheus metrics of a node, with the standard ``prometheus_client`` library.

Each node keeps its metrics in a registry of its own (:class:`NodeMetrics`), so that several
nodes in one process (tests) never clash; the gateway serves it at ``/metrics`` on its HTTP
port, the broker and devices on ``--metrics-port``. Names follow Prometheus conventions
(``cellbus_`` prefix, base units, ``_total`` for counters); no label ever holds user code, a
token or a user name.

Most gauges are read from the node's own state when Prometheus scrapes (a :class:`Collector`
per node), so the hot paths carry no bookkeeping; the few counters and histograms that need
an event (a commit, a first output) are observed where it happens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

#: Latency buckets in seconds, from a warm round trip (a few ms) to a cold start.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0)

Read = Callable[[], Iterable[Metric]]


class StateCollector(Collector):
    """Metrics read from a node's state at scrape time, by ``read``."""

    def __init__(self, read: Read) -> None:
        self.read = read

    def collect(self) -> Iterable[Metric]:
        return self.read()


def gauge(name: str, doc: str, value: float | None = None, *,
          labels: Mapping[str, Mapping[str, float]] | None = None) -> GaugeMetricFamily:
    """A gauge with one ``value``, or one sample per label value (``{label: {value: n}}``)."""
    if labels is None:
        return GaugeMetricFamily(name, doc, value=value if value is not None else 0)
    (label, samples), = labels.items()
    family = GaugeMetricFamily(name, doc, labels=[label])
    for key, n in sorted(samples.items()):
        family.add_metric([key], n)
    return family


def counter(name: str, doc: str, samples: Mapping[str, float], label: str) -> CounterMetricFamily:
    """A counter with one sample per value of ``label``."""
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, n in sorted(samples.items()):
        family.add_metric([key], n)
    return family


class NodeMetrics:
    """A node's registry. Subclasses add their metrics; :meth:`collect_state` adds a reader
    of the node's state, and every node reports the bus messages it rejected."""

    def __init__(self, node: str, rejected: Mapping[str, int]) -> None:
        self.node = node
        self.registry = CollectorRegistry()  # collectors read state only when scraped
        self._rejected = rejected
        self.collect_state(self._read_rejected)

    def collect_state(self, read: Read) -> None:
        self.registry.register(StateCollector(read))

    def _read_rejected(self) -> Iterable[Metric]:
        yield counter("cellbus_bus_messages_rejected",
                      "Bus messages this node dropped, by reason (signature, replay, ...)",
                      dict(self._rejected), "reason")

    def serve(self, port: int, addr: str = "127.0.0.1") -> Any:
        """Serve ``/metrics`` on ``addr:port`` from a thread of its own."""
        return start_http_server(port, addr=addr, registry=self.registry)
