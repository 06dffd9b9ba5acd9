from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import BusClient, NodeProcess, free_port, ipc_endpoint
from protocol.config import generate_key


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "bus.key"
    generate_key(path)
    return path


@pytest.fixture
def key(key_file: Path) -> bytes:
    return key_file.read_bytes().strip()


@pytest.fixture
def nodes() -> Iterator[list[NodeProcess]]:
    """Started nodes are stopped (then killed) after the test, whatever happens."""
    started: list[NodeProcess] = []
    yield started
    for node in started:
        node.stop(timeout=10)
        node.kill_group()


@pytest.fixture
def device_with_client(key: bytes, key_file: Path, nodes: list[NodeProcess]):
    """A device process connected to a signed test client that stands in for the broker.

    Call it with extra device options; it returns (client, device).
    """
    clients: list[BusClient] = []

    def start(*options: str, packer: str = "msgpack", env: dict[str, str] | None = None,
              tcp: bool = False) -> tuple[BusClient, NodeProcess]:
        """``tcp``: over loopback TCP, in clear (--insecure-bus), for a test about ports."""
        endpoint = f"tcp://127.0.0.1:{free_port()}" if tcp else ipc_endpoint("broker")
        options = ("--insecure-bus", *options) if tcp else options
        client = BusClient(key, bind=endpoint, packer=packer)
        clients.append(client)
        device = NodeProcess("device", "--connect", endpoint, "--key-file", str(key_file),
                             "--packer", packer, "--device-id", f"dev-{os.getpid()}", *options,
                             env=env)
        nodes.append(device)
        client.wait_for(lambda m: m["msg_type"] == "device_register")
        return client, device

    yield start
    for client in clients:
        client.close()


@pytest.fixture
def chain(key_file: Path, tmp_path: Path, nodes: list[NodeProcess]):
    """A broker on a fresh SQLite file, a gateway and (call start_device) devices."""
    from harness import Chain
    return Chain(key_file, f"sqlite:///{tmp_path / 'cellbus.db'}", nodes)


@pytest.fixture
def running_chain(chain):
    chain.start_broker()
    chain.start_device()
    chain.start_gateway()
    return chain


@pytest.fixture(scope="module")
def fuzz_chain(tmp_path_factory: pytest.TempPathFactory):
    """A chain for a whole module of fuzz or bad-input tests (tests/fuzz_chain.py)."""
    from fuzz_chain import run_fuzz_chain
    yield from run_fuzz_chain(tmp_path_factory)


# -- the MongoDB store contract suite: say plainly whether it ran ---------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "mongodb: a store contract test against $CELLBUS_TEST_MONGODB_URL")
    # Nodes run on the interpreter under test (harness.CELLBUS); give its environment the
    # compiled namespace init that bin/cellbus builds into .venv, where devices look for it.
    from cellbus.init_program import build
    build()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    """One line: whether the MongoDB contract suite ran, against which server, or why not."""
    from broker.store.base import redact_url
    outcomes: dict[str, str] = {}
    rank = {"passed": 0, "skipped": 1, "failed": 2}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if isinstance(report, pytest.TestReport) and "mongodb" in report.keywords:
                old = outcomes.get(report.nodeid, "passed")
                outcomes[report.nodeid] = max(old, report.outcome, key=lambda o: rank.get(o, 2))
    counts = {o: list(outcomes.values()).count(o) for o in ("passed", "failed", "skipped")}
    url = os.environ.get("CELLBUS_TEST_MONGODB_URL", "")
    if not url:
        line = ("MongoDB store contract suite: DID NOT RUN: CELLBUS_TEST_MONGODB_URL is not set "
                "(no MongoDB server can be installed on this machine); README.rst, section "
                "MongoDB, says how to run it against a server")
    elif not outcomes:
        line = f"MongoDB store contract suite: no test selected (server {redact_url(url)})"
    else:
        line = (f"MongoDB store contract suite ran against {redact_url(url)}: "
                + ", ".join(f"{n} {o}" for o, n in counts.items()))
    terminalreporter.write_line(line)
    from fuzzing import summary  # the fuzz tests' case counts and memory numbers, if any ran
    for fuzz_line in summary():
        terminalreporter.write_line(fuzz_line)
