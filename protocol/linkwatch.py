"""What a bus link's connection does, from ZeroMQ's socket monitor, said in the node's log.

``connect()`` returns at once whether or not anything listens, and a CURVE handshake that
fails is retried every ~100 ms without a word from libzmq: a device or gateway given the
wrong ``--broker-key``, or whose public key the broker does not hold, used to run on saying
nothing but "no word from the broker ... with the same --key-file" (pointing at the wrong
file) or a 503, and the broker said nothing of a client whose handshake it could not
decrypt. :class:`LinkWatch` reads the monitor's events of one socket and logs:

- on a client (device, gateway): when the link to the broker is up (handshake done), lost,
  and up again, and that it is not up after :data:`ABSENT` seconds (nothing answers); and
  why a handshake fails, with what to change (:func:`client_problem`);
  the problem stays in :attr:`LinkWatch.problem` for the node's other words (the device's
  "no word from the broker", the gateway's ``/ready``) until a handshake succeeds;
- on the broker's CURVE ports: a handshake it could not decrypt (:func:`server_problem`; a
  key it does not accept is logged by its ZAP handler, :mod:`protocol.curve`).

A failure that repeats on each reconnect is logged again only after :data:`REPEAT` seconds.
``bin/cellbus status``, which has no event loop, reads the same events with
:func:`pending_problem`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import zmq
from zmq.utils.monitor import parse_monitor_message

from .curve import ROLES
from .refusals import Refusals
from .sockets import BusSocket
from .together import Together

#: The monitor events a watch reads.
EVENTS = (zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
          | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
          | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
#: What a node's own watch reads besides: each reconnect ZeroMQ schedules (one after a loss,
#: then one per attempt the broker's port refused), which tells a broker that went away
#: from a link that breaks under traffic.
WATCHED = EVENTS | zmq.EVENT_CONNECT_RETRIED
#: Seconds before the same failure is logged again while it goes on.
REPEAT = 60.0
#: Seconds a client's link may stay down (never up, or lost) before it says so.
ABSENT = 5.0
#: A link lost within this many seconds of coming up is a short one; :data:`FLAPS` short
#: ones in a row say that the link breaks under traffic, not that the network went away.
SHORT = 30.0
FLAPS = 2


def flapping(endpoint: str) -> str:
    """What a link that is lost again soon after each reconnect means, and what to check."""
    host = endpoint.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return (f"the link to the broker at {endpoint} is lost again and again within {SHORT:g} "
            "s of coming up: the handshake passes and then the link breaks, most likely at "
            "the first message too big for the path: an MTU black hole (a link with a "
            "smaller MTU whose ICMP 'fragmentation needed' is filtered: ping -M do -s 1472 "
            f"{host} fails); set sysctl net.ipv4.tcp_mtu_probing=1 on this host and the "
            "broker's, or lower the interface's MTU; else the broker restarts again and "
            "again, or a middlebox cuts connections")


def changed_on_the_way(endpoint: str) -> str:
    """What a failure to decrypt, on a link whose handshake passed, means: the keys are
    right (they made the handshake), the bytes were changed between the two hosts."""
    return (f"the link to the broker at {endpoint} carried a message that could not be "
            "decrypted after its CURVE handshake passed (so the keys are right): its bytes "
            "were changed on the way, by a faulty or hostile device on the network between "
            "this host and the broker's; this node drops that connection and connects "
            "again")


#: A key refused for its role on the port it reached: the other likely cause of a refusal,
#: the endpoint of another of the broker's ports (the broker opens each port to one role).
WRONG_PORT = {
    "device": "--connect names another of its ports than its --device-bind",
    "gateway": ("--broker or --subscribe names another of its ports than its "
                "--gateway-bind or --publish-bind"),
}


async def unresolved(endpoint: str) -> str | None:
    """Why the host a ``tcp://`` ``endpoint`` names cannot be reached by name (None: it is
    an address, or the name resolves): ZeroMQ retries a name that does not resolve as
    silently as a port nothing listens on, and the two want different fixes."""
    if not endpoint.startswith("tcp://"):
        return None
    host = endpoint.removeprefix("tcp://").rsplit(":", 1)[0]
    if host.startswith("[") or host == "*":
        return None
    try:
        await asyncio.get_running_loop().getaddrinfo(host, None)
    except OSError as e:
        return (f"its host name {host!r} does not resolve ({e.strerror or e}): a typo in the "
                "endpoint, or a name this host's resolver does not know?")
    return None


def client_problem(event: int, endpoint: str, role: str, *, curve: bool = True) -> str | None:
    """What a client's failed handshake with the broker at ``endpoint`` means, and what to
    change (``curve``: whether the client has CURVE keys); None for an event that is no
    failure."""
    if not curve and event in (*_FAILED, zmq.EVENT_HANDSHAKE_FAILED_AUTH):
        return (f"the handshake with the broker at {endpoint} failed: that broker encrypts "
                "its TCP links (--curve-dir) and this node has no CURVE keys (--insecure-bus):"
                " give --curve-key and --broker-key (bin/cellbus cert makes them)")
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return (f"the broker at {endpoint} refused this node's CURVE key: its public key is "
                f"not in the broker's --curve-dir {ROLES.get(role, role + 's')}/ folder, or "
                f"was revoked (bin/cellbus cert --list --dir DIR on the broker's host); make "
                f"one with bin/cellbus cert NAME --role {role} and give its .key_secret as "
                f"--curve-key; or {WRONG_PORT.get(role, 'the endpoint names another port')} "
                "(the broker's log names the key it refused and the port)")
    if event in _FAILED:  # (a port of the broker for another socket type fails so too)
        return (f"the CURVE handshake with the broker at {endpoint} failed: --broker-key is "
                "not the public key of the broker listening there (the broker.key of its "
                "--curve-dir), that broker runs without CURVE (--insecure-bus), or what "
                "listens there is no cellbus broker"
                + (f"; or {WRONG_PORT[role]}" if role in WRONG_PORT else ""))
    return None


#: A handshake failure on the broker's port, as ``status`` lists it.
UNDECRYPTED = ("a handshake it could not decrypt: a client with another --broker-key or "
               "without CURVE keys, or a replayed or tampered handshake")


def server_problem(event: int, role: str) -> str | None:
    """What a failed handshake on the broker's ``role`` port means; None for other events."""
    if event in _FAILED:
        return (f"a CURVE handshake on the {role} port failed: a {role} whose --broker-key is "
                "not this broker's broker.key (its --curve-dir), one with no CURVE keys "
                "(--insecure-bus), or a client that is no cellbus node")
    return None


def gone_in_handshake(role: str) -> str:
    """What a connection on the broker's ``role`` port that ended during its handshake, with
    nothing it could not decrypt, means (a wrong key or a replay fails to decrypt: libzmq
    says HANDSHAKE_FAILED_PROTOCOL of those, NO_DETAIL of this)."""
    return (f"a CURVE handshake on the {role} port failed: its connection ended before any "
            f"key was tried (a {role} with no CURVE keys, --insecure-bus; one that went away or "
            "gave up waiting: this broker was stopped or busy, or the network cut it; or a "
            "client that is no cellbus node), not a wrong --broker-key")


def changed_on_the_way_in(role: str) -> str:
    """What a failure to decrypt on the broker's ``role`` port, on a connection that stays
    open (its handshake passed: a failed handshake ends its connection), means."""
    after = ("the device says it was not heard and connects again by itself" if role == "device"
             else "the gateways are asked to check their connections, and the one it came on "
             "is made anew")
    return (f"a message on the {role} port could not be decrypted after its connection's CURVE "
            "handshake passed (so the keys are right): its bytes were changed on the way, by a "
            "faulty or hostile device on the network between its sender's host and this one; "
            f"{after}")


#: Seconds the broker's watch waits, after a failure to decrypt, for the end of its
#: connection, which tells a failed handshake from a message changed after one.
SETTLE = 0.2


class LinkWatch:
    """The monitor of one socket, read on the node's loop by :meth:`run`."""

    def __init__(self, sock: BusSocket, endpoint: str, *, node: str, log: logging.Logger,
                 role: str, server: bool, curve: bool, refusals: Refusals | None = None,
                 reconnect: Callable[[], None] | None = None,
                 wrong_key: Callable[[], bool] | None = None,
                 together: Together | None = None, rank: int = 0, quiet: bool = False,
                 lost: Callable[[], None] | None = None) -> None:
        self.endpoint, self.node, self.log, self.role, self.server = (
            endpoint, node, log, role, server)
        #: Where this node's links say news of one cause in one line, and this link's place
        #: among them (its endpoint is named first in such a line when lowest).
        self.together = together or Together()
        self.rank = rank
        #: The broker's record of refused clients, for ``status`` (servers only).
        self.refusals = refusals
        self.curve = curve
        #: Drops the socket's connections and makes them anew (a client's): ZeroMQ keeps a
        #: connection it could not decrypt a message of open, reading nothing, until its
        #: heartbeat times out (6 s, past the broker's expiry of a device). A server's asks
        #: its clients to (broker/gatewaylinks.py).
        self.reconnect = reconnect
        #: Called when a handshake fails as a wrong --broker-key fails (a client's): the
        #: broker's certificate may have been rotated (:func:`protocol.rekey.next_broker_key`);
        #: True when it was, and the node connects with the broker's next key.
        self.wrong_key = wrong_key
        #: A client's second connection to an endpoint watched already (the gateway's for
        #: big answers): only a message it could not decrypt is said and acted on.
        self.quiet = quiet
        #: Called when a client's link, up, is lost (the device makes its link anew under
        #: its next routing id: device/relink.py).
        self.lost = lost
        address = f"inproc://cellbus-monitor-{uuid.uuid4().hex}"
        sock.monitor(address, WATCHED)
        self.events = BusSocket(sock.context, zmq.PAIR)
        self.events.linger = 0
        self.events.connect(address)
        #: Why the last handshake failed, until one succeeds (clients only).
        self.problem: str | None = None
        self.up = False
        #: Handshakes passed: connections made, each with its own queues, so that what was
        #: sent on an earlier one and not delivered is lost (a device reports it).
        self.handshakes = 0
        self._said: dict[str, float] = {}
        #: When the link last came up (monotonic), and how many times in a row it was lost
        #: within :data:`SHORT` seconds of that.
        self.up_at = 0.0
        self._short = 0
        #: Reconnects scheduled since the link was last lost (:data:`WATCHED`), and whether
        #: that loss came within :data:`SHORT` of its coming up, until the reconnect tells.
        self._retries = 0
        self._cut = False
        #: When the link, not up, is next said to be absent (a deadline: the reconnects'
        #: events come every 0.1 s meanwhile).
        self._absent_at = time.monotonic() + ABSENT
        #: When the node said in a line of its own that this link is not up (monotonic).
        self._absent_said = -REPEAT
        #: A server's failure to decrypt, not yet told (:meth:`_settle`).
        self._undecrypted: int | None = None

    def absence_said(self) -> None:
        """The node's own line said that this link is not up (the device's "no word from
        the broker ... no link to it"): the watch's "no link ... after 5 s", a second later,
        would say the same cause again, so it is said only after :data:`REPEAT` (or at once
        when the broker's host name does not resolve, which the node's line does not say)."""
        self._absent_said = time.monotonic()

    async def run(self) -> None:
        while True:
            waiting = (SETTLE if self._undecrypted is not None else None) if self.server \
                else None if self.up or self.quiet else max(0.0, self._absent_at - time.monotonic())
            try:
                frames = await asyncio.wait_for(self.events.recv_frames(), waiting)
            except TimeoutError:
                if self.server:
                    self._settle(ended=False)
                    continue
                self._absent_at = time.monotonic() + ABSENT
                if self.problem is None:  # no handshake even began: nothing answers there
                    why = await unresolved(self.endpoint)
                    if why is None and time.monotonic() - self._absent_said < REPEAT:
                        continue  # the node's own line said it (absence_said)
                    why = why or ("is a broker running there, at this endpoint, and is its "
                                  "port open to this host?")
                    self.together.say(self, logging.WARNING, f"{self.node}: no link to the "
                                      f"broker at {{at}} after {ABSENT:g} s: {why}")
                continue
            self.seen(parse_monitor_message(frames))

    def seen(self, event: Mapping[str, Any]) -> None:
        kind = int(event["event"])
        if self.server:
            # A failed handshake ends its connection at once; a message that could not be
            # decrypted after one leaves it open (reading nothing): told apart by what comes
            # next, the connection's end or nothing (another connection's events between
            # the two are taken for nothing: a rare mistake of words, never of action).
            self._settle(ended=kind == zmq.EVENT_DISCONNECTED)
            if kind in _FAILED:
                self._undecrypted = kind
            return
        if self.quiet:
            if kind in _FAILED and self.up and self.reconnect is not None:
                self.say(logging.WARNING, f"{self.node}: {changed_on_the_way(self.endpoint)}")
                self.reconnect()
            elif kind == zmq.EVENT_DISCONNECTED and self.up and self.lost is not None:
                self.lost()
            self.up = kind == zmq.EVENT_HANDSHAKE_SUCCEEDED or (self.up and kind not in (
                zmq.EVENT_DISCONNECTED, *_FAILED))
            return
        if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.together.flush(self)  # its loss first, then that it is up again
            self.handshakes += 1
            if not self.up:
                self.log.info("%s: link to the broker at %s is up%s", self.node,
                              self.endpoint, " again" if self._said else "")
                self.up_at = time.monotonic()
            self.up, self.problem, self._retries = True, None, 0
            # A handshake that passes ends the failures it said, not the flapping (which
            # passes its handshakes): that line is said again only after REPEAT seconds.
            # (The lines said are keyed as logged, after the node's name.)
            flaps = f"{self.node}: the link "
            self._said = {k: v for k, v in self._said.items() if k.startswith(flaps)}
        elif kind == zmq.EVENT_DISCONNECTED and self.up:
            self.up = False
            self.together.say(self, logging.WARNING, f"{self.node}: lost its link to the "
                              "broker at {at}; ZeroMQ connects again by itself", every=True)
            now = time.monotonic()
            self._said["lost"] = now
            self._retries, self._absent_at = 0, now + ABSENT
            # A short link: judged once the reconnect shows whether the broker is there.
            self._cut = now - self.up_at < SHORT
            if not self._cut:
                self._short = 0
            if self.lost is not None:
                self.lost()
        elif kind == zmq.EVENT_CONNECT_RETRIED and not self.up:
            self._retries += 1
            if self._retries > 1 and self._cut:  # its port refused a reconnect: the broker
                self._cut, self._short = False, 0  # went away (a restart), no MTU's doing
        elif kind == zmq.EVENT_CONNECTED and self._cut:  # taken at once: the broker is there
            self._cut, self._short = False, self._short + 1
            if self._short >= FLAPS:
                self.problem = flapping(self.endpoint)
                self.say(logging.WARNING, f"{self.node}: {self.problem}")
        elif kind in _FAILED and self.up:  # after the handshake: no key's fault
            self.problem = changed_on_the_way(self.endpoint)
            self.say(logging.WARNING, f"{self.node}: {self.problem}")
            if self.reconnect is not None:
                self.remade()
                self.reconnect()
        elif (problem := client_problem(kind, self.endpoint, self.role,
                                        curve=self.curve)) is not None:
            if (kind in _FAILED and self.curve and self.wrong_key is not None
                    and self.wrong_key()):
                return  # a rotated broker certificate: the node said it tries the next key
            self.problem = problem
            self.say(logging.ERROR, f"{self.node}: {problem}")

    def remade(self) -> None:
        """The connection is being made anew: not up until its handshake passes (a message
        sent before may go to the old one, and be lost)."""
        self.up, self._retries, self._absent_at = False, 0, time.monotonic() + ABSENT

    def _settle(self, *, ended: bool) -> None:
        """Say the server's failure to decrypt that waits, if any: a failed handshake if its
        connection ``ended`` next, else a message changed on the way."""
        kind, self._undecrypted = self._undecrypted, None
        if kind is None:
            return
        if not ended:
            self.say(logging.WARNING, f"{self.node}: {changed_on_the_way_in(self.role)}")
            if self.reconnect is not None:  # a server's: its clients check theirs
                self.reconnect()
            return
        if kind == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:  # not a key: it would not decrypt
            self.say(logging.INFO, f"{self.node}: {gone_in_handshake(self.role)}")
            return
        problem = server_problem(kind, self.role)
        if problem is not None and self.refusals is not None:
            self.refusals.note(self.role, UNDECRYPTED)
        if problem is not None:
            self.say(logging.WARNING, f"{self.node}: {problem}")

    def say(self, level: int, line: str) -> None:
        """Log ``line``, unless it was logged less than :data:`REPEAT` seconds ago."""
        now = time.monotonic()
        if now - self._said.get(line, -REPEAT) >= REPEAT:
            self._said[line] = now
            self.log.log(level, "%s", line)


def pending_problem(monitor: zmq.Socket[bytes], endpoint: str, role: str, *,
                    curve: bool, seen: set[int] | None = None) -> str | None:
    """The last handshake failure among the events waiting on a client's ``monitor``
    socket (made with ``get_monitor_socket(EVENTS)``), without waiting; the events read are
    added to ``seen``.

    A handshake that failed without detail (the broker closed the connection) counts only
    if it failed so again: a broker that dies or restarts during one handshake (killed while
    frozen, its kernel having accepted the connection) fails it once, and nothing listens
    after; a wrong --broker-key fails at every reconnect (~0.1 s)."""
    problem, broken = None, 0
    while monitor.poll(0):
        event = int(parse_monitor_message(monitor.recv_multipart())["event"])
        if seen is not None:
            seen.add(event)
        found = client_problem(event, endpoint, role, curve=curve)
        broken += event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
        if found and (event != zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL or broken > 1):
            problem = found
    return problem
