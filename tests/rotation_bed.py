"""Three "machines" on loopback TCP for the rotation tests (tests/test_key_rotation.py):
``hub`` runs the broker, ``gpu`` a device, ``web`` a gateway, each with a folder of its own
(its own copy of ``bus.key`` and of its certificates, its own XDG_RUNTIME_DIR), as README's
"Three machines, step by step" lays them out. A key file is changed on ``hub`` and copied to
the others, as an operator would, and each node is told with SIGHUP."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

from harness import CELLBUS, ROOT, Chain, NodeProcess, node_env, wait_gateway_linked

HOSTS = ("hub", "gpu", "web")
#: A cell that prints a numbered line every 20 ms until the file ``FLAG`` is there, then
#: "end": its output streams all through a rotation, and each line must come once.
STREAM = """import os, time
n = 0
while not os.path.exists({flag!r}):
    print(f"line {{n}}", flush=True)
    n += 1
    time.sleep(0.02)
print("end")
"""


class Bed:
    """The three hosts' folders and nodes, and the chain that reaches the gateway."""

    def __init__(self, root: Path, nodes: list[NodeProcess]) -> None:
        self.root = root
        for host in HOSTS:
            (root / host / "run").mkdir(parents=True, mode=0o700)
        assert cellbus("key", str(self.file("hub", "bus.key"))).returncode == 0
        self.chain = Chain(self.file("hub", "bus.key"), f"sqlite:///{root / 'hub' / 'cb.db'}",
                           nodes)
        self.flag = root / "stop-streaming"

    def file(self, host: str, name: str) -> Path:
        return self.root / host / name

    def copy(self, name: str, to: str, source: Path | None = None) -> Path:
        """Copy ``name`` from ``hub`` (its key folder, for a certificate) to ``to``."""
        there = self.file(to, Path(name).name)
        shutil.copyfile(source or self.file("hub", "bus.key"), there)
        os.chmod(there, 0o600)
        return there

    def start(self, host: str, *argv: str) -> NodeProcess:
        node = NodeProcess(*argv, "--key-file", str(self.file(host, "bus.key")),
                           env={"XDG_RUNTIME_DIR": str(self.root / host / "run")})
        self.chain.nodes.append(node)
        return node

    def certificate(self, host: str, name: str, role: str) -> list[str]:
        """The CURVE options of ``name`` on ``host``: its pair made on ``hub``, copied."""
        self.chain.cert_options(name, role)
        keys = self.chain.keys_dir
        secret = self.copy(f"{name}.key_secret", host, keys / f"{name}.key_secret")
        broker = self.copy("broker.key", host, keys / "broker.key")
        return ["--curve-key", str(secret), "--broker-key", str(broker)]

    def up(self) -> tuple[NodeProcess, NodeProcess, NodeProcess]:
        """Broker on hub, device gpu1 on gpu, gateway on web, each started and linked."""
        chain = self.chain
        for host in ("gpu", "web"):
            self.copy("bus.key", host)
        self.start_broker()
        device = self.start("gpu", "device", "--connect", chain.device_ep, "--device-id", "gpu1",
                            "--prefork", "1", "--sandbox", "off",
                            *self.certificate("gpu", "gpu1", "device"))
        chain.broker.wait_for_log(r"device gpu1 registered")
        chain.gateway = self.start("web", "gateway", "--port", str(chain.port),
                                   "--broker", chain.gateway_ep,
                                   "--subscribe", chain.publish_ep,
                                   *self.certificate("web", "web1", "gateway"))
        wait_gateway_linked(chain)
        return chain.broker, device, chain.gateway

    def start_broker(self) -> NodeProcess:
        """The broker on hub (again, after a stop: same store, same key folder)."""
        chain = self.chain
        chain.broker = self.start("hub", "broker", "--store", chain.store,
                                  "--curve-dir", str(chain.keys_dir),
                                  "--gateway-bind", chain.gateway_ep,
                                  "--device-bind", chain.device_ep,
                                  "--publish-bind", chain.publish_ep)
        chain.broker.wait_for_log(r"broker started")
        return chain.broker

    def stream(self, cell: str) -> None:
        """Start :data:`STREAM` in ``cell`` and wait for its first lines."""
        assert self.chain.evaluate(cell, STREAM.format(flag=str(self.flag)))[0] == 202
        self.wait_lines(cell, 3)

    def wait_lines(self, cell: str, at_least: int) -> int:
        """Until ``cell`` shows ``at_least`` more lines than now; how many it shows then."""
        seen = 0
        while True:
            doc = self.chain.update(cell, wait=2)[1]
            text = doc["output"].get("stdout_0", {}).get("content", "")
            now = text.count("\n")
            if not seen:
                seen = now
            if now >= seen + at_least:
                assert doc["status"] == "working", doc  # the cell streams on meanwhile
                return now

    def finish(self, cell: str) -> list[str]:
        """Stop :data:`STREAM`; its lines, which must be 0, 1, 2, ... each once, then end."""
        self.flag.touch()
        doc = self.chain.wait_done(cell)
        assert doc["status"] == "done", doc
        lines = doc["output"]["stdout_0"]["content"].splitlines()
        assert lines[-1] == "end", lines[-5:]
        assert lines[:-1] == [f"line {n}" for n in range(len(lines) - 1)], lines
        return lines

    def run(self, cell: str, n: int) -> None:
        """A quick cell in another worksheet: a request, a hand-out and output, all signed."""
        assert self.chain.evaluate(cell, f"print({n})")[0] == 202
        doc = self.chain.wait_done(cell)
        assert doc["output"]["stdout_0"]["content"] == f"{n}\n", doc


def cellbus(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CELLBUS, *argv], cwd=ROOT, env=node_env(), capture_output=True,
                          text=True, timeout=60)


def hang_up(node: NodeProcess, pattern: str, nth: int) -> None:
    """SIGHUP ``node`` and wait for its ``nth`` log line matching ``pattern``."""
    node.proc.send_signal(signal.SIGHUP)
    node.wait_for_log(pattern, nth=nth)


def dropped(*nodes: NodeProcess) -> list[str]:
    """Lines where a node dropped a message."""
    return [line for node in nodes for line in node.log.splitlines()
            if re.search(r"dropped a message|refused a", line)]
