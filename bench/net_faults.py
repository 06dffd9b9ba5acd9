"""The long variants of the multi-host faults (tests/test_multihost*.py keeps CI short): on
the namespaces bed of tests/netbed.py (broker, gateway, two device hosts on one bridge,
over CURVE), each scenario runs a streaming cell and a queued one through a fault that lasts
``--hold`` seconds (30 by default), heals it, runs one cell more, and prints a line: how each
cell ended, whether each line of its output is there once and in order, and the WARNING and
ERROR lines each node logged, counted by cause. Run as root (namespaces)::

    python bench/net_faults.py                      # every scenario, 30 s each
    python bench/net_faults.py deaf mute --hold 10

Scenarios: ``cut`` (the device host unplugged), ``deaf`` (the device hears nothing from the
broker; the broker hears it), ``mute`` (the other way round), ``loss5``/``loss20`` (that %
of packets lost both ways on every bus link, for the cells run meanwhile), ``mtu576`` (the
device's and the gateway's interfaces at MTU 576, cells with 300 kB and 3 MB outputs).
Packet reordering and netem latency are out of reach (this kernel has no netem; TCP
delivers in order whatever the packets do); 200 ms of latency is tests/tcp_relay.py's
``Relay(delay=...)``, as tests/test_relay_faults.py uses it.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from harness import NodeProcess, stop_nodes  # noqa: E402
from netbed import NetBed, NetChain, sh, wait_until  # noqa: E402
from protocol.config import generate_key  # noqa: E402

LINES = 120  # the streaming cell prints a line every 0.25 s: 30 s
STREAM = ("import time\nfor i in range(%d):\n    print(i, flush=True)\n    time.sleep(0.25)"
          % LINES)
SCENARIOS = ("cut", "deaf", "mute", "loss5", "loss20", "mtu576")


def text(doc: dict[str, Any]) -> str:
    return "".join(b.get("content", "") for b in doc["output"].values()
                   if b["type"] == "text" and b.get("stream") == "stdout")


def errors(doc: dict[str, Any]) -> list[str]:
    return [str(b.get("ename")) for b in doc["output"].values() if b["type"] == "error"]


def in_order(out: str) -> bool:
    """Each line of the streaming cell once, in order (a prefix, if it ended early)."""
    lines = out.splitlines()
    return lines == [str(i) for i in range(len(lines))]


def causes(node: NodeProcess | None) -> Counter[str]:
    """The node's WARNING and ERROR lines by cause (the words before the first colon after
    the level, numbers and addresses taken out)."""
    seen: Counter[str] = Counter()
    for line in (node.log if node else "").splitlines():
        if m := re.search(r" (WARNING|ERROR) (.*)", line):
            words = re.sub(r"[0-9a-f]{32}|\d+(\.\d+)*", "N", m.group(2))[:90]
            seen[f"{m.group(1)} {words}"] += 1
    return seen


def nft(chain: NetChain, host: str, rule: str) -> None:
    sh(*chain.bed.wrap(host), "nft", f"table inet bench {{ {rule} }}")


def heal(chain: NetChain, host: str) -> None:
    sh(*chain.bed.wrap(host), "nft", "delete table inet bench")


def one_way(chain: NetChain, hook: str, way: str) -> tuple[Callable[[], None], Callable[[], None]]:
    rule = (f"chain c {{ type filter hook {hook} priority 0; ip {way} "
            f"{chain.bed.address('broker')} drop; }};")
    return (lambda: nft(chain, "dev0", rule)), (lambda: heal(chain, "dev0"))


def scenario(name: str, hold: float) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "bus.key"
        generate_key(key_file)
        nodes: list[NodeProcess] = []
        net = NetBed(["broker", "gateway", "dev0", "dev1"])
        try:
            chain = NetChain(key_file, f"sqlite:///{tmp}/cellbus.db", nodes, net)
            if name == "mtu576":
                for host in ("dev0", "gateway"):
                    sh("ip", "-n", net.ns(host), "link", "set", "eth0", "mtu", "576")
            chain.start_broker()
            chain.start_device()
            chain.start_gateway("--auth", "none", "--allow-anonymous")
            return run(chain, name, hold)
        finally:
            stop_nodes(nodes)
            net.close()


def run(chain: NetChain, name: str, hold: float) -> str:
    start, end = {
        "cut": (lambda: chain.bed.cut("dev0"), lambda: chain.bed.plug("dev0")),
        "deaf": one_way(chain, "input", "saddr"),
        "mute": one_way(chain, "output", "daddr"),
        "loss5": lossy(chain, 5),
        "loss20": lossy(chain, 20),
        "mtu576": (lambda: None, lambda: None),
    }[name]
    assert chain.evaluate("u/ws/1", "print('warm')")[0] == 202
    chain.wait_done("u/ws/1", 60)
    t0 = time.monotonic()
    assert chain.evaluate("u/ws/2", STREAM)[0] == 202
    wait_until(lambda: text(chain.update("u/ws/2")[1]).startswith("0\n"), 60, "streaming")
    assert chain.evaluate("u/ws/3", "print('queued')")[0] == 202
    start()
    extra = []
    if name.startswith("loss") or name == "mtu576":  # cells meanwhile, big ones on MTU 576
        big = 3_000_000 if name == "mtu576" else 300_000
        for n in range(4):
            code = f"print('{n}' * {big if n % 2 else 1000})"
            assert chain.evaluate(f"u/other/{n}", code)[0] == 202
            doc = chain.wait_done(f"u/other/{n}", 180)
            extra.append(doc["status"] == "done" and text(doc) == str(n) * (
                big if n % 2 else 1000) + "\n")
    time.sleep(max(0.0, hold - (time.monotonic() - t0)))
    end()
    healed = time.monotonic()
    docs = [chain.wait_done(f"u/ws/{n}", 180) for n in (2, 3)]
    after = chain.evaluate("u/ws/4", "print('after')")
    doc4 = chain.wait_done("u/ws/4", 120) if after[0] == 202 else {"status": str(after)}
    took = time.monotonic() - healed
    out = text(docs[0])
    line = (f"{name}: streaming cell {docs[0]['status']} {errors(docs[0])} "
            f"{len(out.splitlines())}/{LINES} lines, once and in order: {in_order(out)}; "
            f"queued {docs[1]['status']} {text(docs[1])!r}; after {doc4['status']} "
            f"({took:.1f} s after the heal)")
    if extra:
        line += f"; cells meanwhile right: {sum(extra)}/{len(extra)}"
    for label, node in (("broker", chain.broker), ("device", chain.devices[0]),
                        ("gateway", chain.gateway)):
        for cause, n in sorted(causes(node).items()):
            line += f"\n    {label} x{n}: {cause}"
    return line


def lossy(chain: NetChain, percent: int) -> tuple[Callable[[], None], Callable[[], None]]:
    """``percent`` % of the packets lost both ways between the broker and the gateway and
    the device, and its end."""
    def start() -> None:
        for host in ("gateway", "dev0"):
            chain.bed.lose(host, "broker", percent)

    def end() -> None:
        for host in ("gateway", "dev0"):
            sh(*chain.bed.wrap(host), "nft", "delete table inet cbloss")
    return start, end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", help=f"of {', '.join(SCENARIOS)} (all)")
    parser.add_argument("--hold", type=float, default=30.0, help="seconds a fault lasts")
    args = parser.parse_args()
    if unknown := set(args.scenarios) - set(SCENARIOS):
        parser.error(f"no such scenario: {', '.join(sorted(unknown))}")
    for name in args.scenarios or SCENARIOS:
        print(scenario(name, args.hold), flush=True)


if __name__ == "__main__":
    main()
