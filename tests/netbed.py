"""The multi-host test bed: hosts on one machine, each a Linux network namespace with one
interface, all on one bridge in a switch namespace, as machines on one switch.

The test process itself is a client host on the bridge (the browser's machine): it reaches
the gateway's HTTP port at the gateway host's address. A host is cut off by taking its port
on the switch down (``ip link set ... down``), and a link loses packets by an nftables rule
in the host (``numgen random``: this kernel has no netem). Everything is made with iproute2
and nftables (Debian packages ``bin/test`` installs when missing) and removed afterwards.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from harness import Chain, NodeProcess
from netturns import network_turn


class NetBedUnavailable(Exception):
    """This machine cannot make namespaces (not root, no iproute2, a kernel without them)."""


def sh(*argv: str) -> None:
    """Run a network command; a failure raises with its output."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.stdout.strip()}")


class NetBed:
    """Hosts in network namespaces on one bridge; see the module docstring."""

    def __init__(self, hosts: Sequence[str]) -> None:
        if os.geteuid() != 0:
            raise NetBedUnavailable("the multi-host test bed makes network namespaces, which "
                                    "takes root")
        self.tag = secrets.token_hex(3)
        self.net = f"10.{random.randint(64, 127)}.{random.randint(0, 255)}"
        self.net6 = f"fd00:cb:{random.randint(0, 0xffff):x}:{random.randint(0, 0xffff):x}"
        self.switch = f"cb{self.tag}-sw"
        self.hosts = {name: i + 1 for i, name in enumerate(hosts)}
        self.client = f"{self.net}.200"
        self._made: list[str] = []
        try:
            with network_turn(exclusive=True):  # no browser page has requests in flight
                self._make()
        except (OSError, RuntimeError) as e:
            self.close()
            raise NetBedUnavailable(f"cannot make the test bed's namespaces: {e}") from None

    def ns(self, host: str) -> str:
        return f"cb{self.tag}-{host}"

    def port(self, host: str) -> str:
        """The host's port on the switch (its cable, in the switch namespace)."""
        return f"s{self.tag}{self.hosts[host]}"

    def address(self, host: str) -> str:
        return f"{self.net}.{self.hosts[host]}"

    def address6(self, host: str) -> str:
        """The host's IPv6 address (each host has one beside its IPv4 one)."""
        return f"{self.net6}::{self.hosts[host]:x}"

    def add_address(self, host: str, n: int) -> str:
        """Give ``host`` another IPv4 address (``NET.n``, n past the hosts' numbers), as a
        machine moved to a new address; returns it."""
        address = f"{self.net}.{n}"
        sh("ip", "-n", self.ns(host), "addr", "add", f"{address}/24", "dev", "eth0")
        return address

    def names(self, names: dict[str, str]) -> None:
        """Every host resolves each name to its address, as DNS would (a hosts file per
        namespace, /etc/netns/NS/hosts, which ``ip netns exec`` puts over /etc/hosts);
        called again, the names point elsewhere for every lookup after it."""
        text = "127.0.0.1 localhost\n" + "".join(f"{a} {n}\n" for n, a in names.items())
        for host in self.hosts:
            folder = Path("/etc/netns") / self.ns(host)
            if not folder.exists():
                folder.mkdir(parents=True)
                self._made.append(f"dir:{folder}")
            (folder / "hosts").write_text(text)  # the same file, seen by running processes

    def wrap(self, host: str) -> list[str]:
        """The command prefix that runs a program on ``host``."""
        return ["ip", "netns", "exec", self.ns(host)]

    def _make(self) -> None:
        sw = self.switch
        sh("ip", "netns", "add", sw)
        self._made.append(sw)
        sh("ip", "-n", sw, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", sw, "link", "set", "br0", "up")
        for host, n in self.hosts.items():
            ns = self.ns(host)
            sh("ip", "netns", "add", ns)
            self._made.append(ns)
            self._cable(f"h{self.tag}{n}", self.port(host), ns)
            sh("ip", "-n", ns, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            sh("ip", "-n", ns, "addr", "add", f"{self.address6(host)}/64", "dev", "eth0",
               "nodad")  # usable at once, not after duplicate address detection
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        self._cable(f"c{self.tag}", f"s{self.tag}c", None)
        sh("ip", "addr", "add", f"{self.client}/24", "dev", f"c{self.tag}")
        sh("ip", "link", "set", f"c{self.tag}", "up")

    def _cable(self, end: str, switch_end: str, ns: str | None) -> None:
        """A veth pair: ``end`` goes to ``ns`` as eth0 (or stays here), ``switch_end`` to
        the bridge."""
        sh("ip", "link", "add", end, "type", "veth", "peer", "name", switch_end)
        if ns is not None:
            sh("ip", "link", "set", end, "netns", ns)
            sh("ip", "-n", ns, "link", "set", end, "name", "eth0")
        else:
            self._made.append(f"link:{end}")
        sh("ip", "link", "set", switch_end, "netns", self.switch)
        sh("ip", "-n", self.switch, "link", "set", switch_end, "master", "br0")
        sh("ip", "-n", self.switch, "link", "set", switch_end, "up")

    def cut(self, host: str) -> None:
        """Unplug ``host``: its port on the switch goes down."""
        sh("ip", "-n", self.switch, "link", "set", self.port(host), "down")

    def plug(self, host: str) -> None:
        sh("ip", "-n", self.switch, "link", "set", self.port(host), "up")

    def lose(self, host: str, peer: str, percent: int, *, inbound: bool = True,
             outbound: bool = True) -> None:
        """Drop ``percent`` % of the packets between ``host`` and ``peer``: both ways, or
        only those ``host`` receives (``outbound=False``) or sends (``inbound=False``), an
        asymmetric loss (an nftables rule on ``host``)."""
        chains = []
        if inbound:
            chains.append(f"chain in {{ type filter hook input priority 0; ip saddr "
                          f"{self.address(peer)} numgen random mod 100 < {percent} drop; }};")
        if outbound:
            chains.append(f"chain out {{ type filter hook output priority 0; ip daddr "
                          f"{self.address(peer)} numgen random mod 100 < {percent} drop; }};")
        sh(*self.wrap(host), "nft", f"table inet cbloss {{ {' '.join(chains)} }}")

    def capture(self, host: str, path: Path) -> subprocess.Popen[bytes]:
        """tcpdump of every frame to and from ``host`` (on its port of the switch), into
        ``path``, until :meth:`stop_capture`."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.switch, "tcpdump", "-i",
                                 self.port(host), "--immediate-mode", "-U", "-s", "0",
                                 "-Z", "root", "-w", str(path)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        said = b""
        while b"listening on" not in said:  # it says so once the capture runs
            line = proc.stderr.readline()
            if not line:
                proc.kill()
                proc.wait(15)
                raise RuntimeError(f"tcpdump did not start: {said!r}")
            said += line
        self._probe(host, path)  # it says it listens a little before frames reach its file
        return proc

    def _probe(self, host: str, path: Path) -> None:
        """Send ``host`` a datagram with a fresh payload until the capture into ``path``
        has it: every frame before it is in the file then."""
        payload = b"probe-" + secrets.token_hex(8).encode()
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            deadline = time.monotonic() + 15
            while payload not in path.read_bytes():
                if time.monotonic() > deadline:
                    raise RuntimeError("tcpdump on the switch captured no probe in 15 s")
                probe.sendto(payload, (self.address(host), 9))
                time.sleep(0.05)
        finally:
            probe.close()

    def stop_capture(self, host: str, path: Path, proc: subprocess.Popen[bytes]) -> bytes:
        """End a :meth:`capture` once all it saw is in its file; the file's bytes."""
        try:
            self._probe(host, path)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(15)
            if proc.stderr is not None:
                proc.stderr.close()
        return path.read_bytes()

    def close(self) -> None:
        """Remove every namespace and link made (their processes are stopped by then)."""
        with network_turn(exclusive=True):
            self._remove()

    def _remove(self) -> None:
        for made in reversed(self._made):
            if made.startswith("link:"):
                subprocess.run(["ip", "link", "del", made[5:]], capture_output=True)
            elif made.startswith("dir:"):
                shutil.rmtree(made[4:], ignore_errors=True)
            else:
                subprocess.run(["ip", "netns", "del", made], capture_output=True)
        self._made.clear()


class NetChain(Chain):
    """A :class:`Chain` whose nodes run on the bed's hosts: the broker on ``broker``, the
    gateway on ``gateway``, each device on the host named like it; every node binds or
    connects to its host's address, over CURVE, as on separate machines."""

    #: The ports the broker binds (the same on any machine: each host has its own).
    GATEWAY_PORT, DEVICE_PORT, PUBLISH_PORT, HTTP_PORT = 5555, 5556, 5557, 8888

    def __init__(self, key_file: Path, store: str, nodes: list[NodeProcess],
                 bed: NetBed) -> None:
        super().__init__(key_file, store, nodes)
        self.bed = bed
        broker = bed.address("broker")
        self.gateway_ep = f"tcp://{broker}:{self.GATEWAY_PORT}"
        self.device_ep = f"tcp://{broker}:{self.DEVICE_PORT}"
        self.publish_ep = f"tcp://{broker}:{self.PUBLISH_PORT}"
        self.port = self.HTTP_PORT
        self._host = ""

    def _start(self, *argv: str, wrap: list[str] | None = None) -> NodeProcess:
        """Each node in the namespace of its host (``wrap``, a command to start it under,
        goes inside that namespace's)."""
        host = self._host or argv[0]
        extra = ["--host", self.bed.address(host)] if argv[0] == "gateway" else []
        node = NodeProcess(*argv, *extra, "--key-file", self.key_file,
                           wrap=[*self.bed.wrap(host), *(wrap or [])])
        self.nodes.append(node)
        return node

    def start_device(self, *options: str, name: str | None = None) -> NodeProcess:
        """A device on the host of its name (``dev0``, ``dev1``, ...)."""
        name = name or f"dev{len(self.devices)}"
        self._host = name
        try:
            return super().start_device(*options, name=name)
        finally:
            self._host = ""

    def url(self, path: str) -> str:
        return f"http://{self.bed.address('gateway')}:{self.port}{path}"


def wait_until(predicate: Callable[[], object], timeout: float, what: str,
               every: float = 0.1) -> float:
    """Poll ``predicate`` until it is true; the seconds it took. Fails after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(every)
    return time.monotonic() - start
