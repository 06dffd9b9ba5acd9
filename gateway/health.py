"""What an operator's tools ask the gateway: ``/health`` (liveness), ``/ready`` (readiness)
and ``/metrics`` (Prometheus), and the gateway's own metrics.

``/health`` answers while the gateway's loop runs. ``/ready`` asks the broker and answers 200
only when the broker answers, its store takes writes, and at least one device is registered
and not draining; otherwise 503 with what is wrong, so a load balancer sends no one to a
gateway that could only refuse them. Its access line is logged when the answer changes
(:class:`ReadyLog`). ``/metrics`` answers clients on this machine only (scrape from here, or
through a proxy you control); another address gets 404, as for any route it may not see.
``/ready``'s status is for anyone (a load balancer's probe), but what its problems say
(the broker's endpoint, devices' names, keys) only for this machine's clients.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from prometheus_client.core import Metric
from tornado.web import RequestHandler

from protocol import msgtypes as mt
from protocol.metrics import NodeMetrics, gauge

from .access import ACCESS_LEVEL, REFUSAL_NOTE, client_address, is_loopback
from .base import BaseHandler
from .bus import BrokerLink, BrokerUnavailable
from .finished import FinishedAnswers
from .errors import fail

#: Seconds /ready waits for the broker.
READY_TIMEOUT = 3.0
#: Devices /ready names when none is alive (the rest are counted).
NAMED_DEVICES = 3


class GatewayMetrics(NodeMetrics):
    def __init__(self, link: BrokerLink, rejected: dict[str, int]) -> None:
        super().__init__("gateway", rejected)
        self.link = link
        self.requests = Counter("cellbus_http_requests", "HTTP requests answered, by route "
                                "and status", ["route", "status"], registry=self.registry)
        self.refusals = Counter("cellbus_refusals", "Requests this gateway refused itself, by "
                                "reason (rate: --rate)", ["reason"], registry=self.registry)
        #: The kept answers of finished cells (gateway/finished.py), once the app is made.
        self.finished: FinishedAnswers | None = None
        self.collect_state(self._read_state)

    def request(self, handler: RequestHandler) -> None:
        """Count a finished request (called from the access log hook)."""
        route = type(handler).__name__.removesuffix("Handler").lower() or "unknown"
        self.requests.labels(route, str(handler.get_status())).inc()

    def _read_state(self) -> Iterable[Metric]:
        keyed = self.link.keyed
        yield gauge("cellbus_websocket_connections", "WebSocket connections open",
                    len(keyed.get(None, ())))
        yield gauge("cellbus_worksheets_watched", "Worksheets with at least one subscriber",
                    sum(1 for k in keyed if k is not None))
        if self.finished is not None:
            yield gauge("cellbus_update_answers_kept", "Reads of finished cells answered "
                        "without asking the broker (gateway/finished.py), since the start",
                        self.finished.answered)


class HealthHandler(BaseHandler):
    public = True

    def get(self) -> None:
        self.write_json(200, {"ok": True})


class ReadyHandler(BaseHandler):
    public = True

    async def get(self) -> None:
        problems: list[tuple[str, str]] = []  # (what it is, its words)
        state: dict[str, Any] = {}
        rejected = self.link.node.rejected
        forged = rejected["signature"]
        try:
            reply = await self.link.request(mt.BROKER_STATUS_REQUEST, {}, ("", "", ""),
                                            timeout=READY_TIMEOUT)
        except BrokerUnavailable as e:
            failing = any(link.problem for link in self.link.node.links)
            down = self.link.node.link_problem(self.link.connect, "--gateway-bind")
            # The broker's beacons (each second) fail this gateway's signature check while
            # it waits: the two hold different keys, and the broker drops this request too.
            keyed = rejected["signature"] > forged
            problems.append((
                "broker " + ("curve" if failing else "down" if down else "key" if keyed else ""),
                f"broker: {e}" + (
                    " (this gateway's CURVE handshake with it fails: its log says why)"
                    if failing else f" (this gateway has {down})" if down
                    else f" (this gateway dropped {rejected['signature'] - forged} messages "
                         "signed with another deployment key meanwhile: every node needs the "
                         "same --key-file)" if keyed else "")))
        else:
            content = reply["content"]
            devices = [d for d in content.get("devices") or [] if isinstance(d, dict)]
            state = {"devices": sum(1 for d in devices if d.get("alive")),
                     "store_writable": content.get("store_writable")}
            if content.get("store_writable") is False:
                problems.append(("store", "store: the broker's store cannot take writes "
                                          "(disk full?)"))
            problems += device_problems(devices)
            # Requests reach the broker over one link, output comes over another: without
            # it, WebSockets get no output and long polls wait their whole time. (With no
            # broker at all, that is the problem to name, not each of its links.)
            if feed := self.link.node.link_problem(self.link.subscribe, "--publish-bind"):
                problems.append(("feed", f"output feed: {feed} (this gateway's --subscribe: "
                                 "its WebSockets get no output, its long polls wait to the "
                                 "end)"))
        words = [text for _, text in problems]
        self.settings.setdefault("ready_log", ReadyLog()).note(
            self, tuple(kind for kind, _ in problems), words)
        if not is_loopback(client_address(self)):
            words = [unsaid(text) for text in words]
        self.write_json(503 if problems else 200,
                        {"ready": not problems, "problems": words, **state})


def unsaid(problem: str) -> str:
    """What a client elsewhere is told of a problem: which part is not ready. Its words name
    the broker's endpoint (internal addresses and ports), devices and keys: like /metrics,
    they are for this machine's clients, and the gateway's log has them (:class:`ReadyLog`)."""
    return (problem.split(":", 1)[0] + ": not ready (what is wrong is said to clients on "
            "the gateway's machine, and in its log)")


def device_problems(devices: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """/ready's problem with the broker's ``devices`` (its status rows), if none is alive and
    taking work: every live one draining, none registered, or each registered one named
    with how long it has been silent (a device frozen, or cut off, is still registered: it
    is not one that never came)."""
    live = [d for d in devices if d.get("alive")]
    if any(d.get("draining") is not True for d in live):
        return []
    if live:  # each stopping (SIGTERM): it finishes its cells and takes no new work
        return [("devices draining", "devices: every live device is draining ("
                 + ", ".join(str(d.get("device")) for d in live[:NAMED_DEVICES])
                 + (f" and {len(live) - NAMED_DEVICES} more" if len(live) > NAMED_DEVICES
                    else "") + "): new sessions wait until a device that takes work is "
                 "registered")]
    if not devices:
        return [("devices", "devices: no device is registered with the broker")]
    silent = sorted(devices, key=lambda d: d.get("silent") or 0)
    named = ", ".join(f"{d.get('device')} silent for {d.get('silent') or 0:g} s"
                      for d in silent[:NAMED_DEVICES])
    more = len(silent) - NAMED_DEVICES
    return [("devices silent", f"devices: no live device: {named}"
             + (f" and {more} more" if more > 0 else "")
             + " (stopped without leaving, frozen, or its link or host down? the broker's "
               "log says when it took each for lost)")]


class ReadyLog:
    """What /ready answered last, so that a load balancer probing every few seconds makes an
    access line when the answer changes (with why it is not ready, or "ready again") and
    lines at DEBUG while the answer stays the same, not an ERROR line per probe."""

    def __init__(self) -> None:
        self.last: tuple[str, ...] | None = None

    def note(self, handler: RequestHandler, kinds: tuple[str, ...], problems: list[str]
             ) -> None:
        """Set ``handler``'s access line for an answer with the problems ``kinds`` (their
        words ``problems``; none: ready)."""
        if kinds == self.last:
            setattr(handler, ACCESS_LEVEL, logging.DEBUG)
        elif problems:
            setattr(handler, REFUSAL_NOTE, "; ".join(problems))
        elif self.last is not None:
            setattr(handler, ACCESS_LEVEL, logging.INFO)
            setattr(handler, REFUSAL_NOTE, "ready again")
        self.last = kinds


class MetricsHandler(BaseHandler):
    public = True

    def get(self) -> None:
        if not is_loopback(client_address(self)):  # (a proxy's client is not this host)
            raise fail(404, f"no route {self.request.path}")
        metrics: GatewayMetrics = self.settings["metrics"]
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(metrics.registry))


ROUTES = [(r"/health", HealthHandler), (r"/ready", ReadyHandler), (r"/metrics", MetricsHandler)]
