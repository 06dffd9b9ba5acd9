from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
    """Started nodes are stopped (then killed) after the test, whatever happens, in the order
    ``bin/cellbus up`` stops them (harness.stop_nodes)."""
    from harness import stop_nodes
    started: list[NodeProcess] = []
    yield started
    stop_nodes(started)


@pytest.fixture
def device_with_client(key: bytes, key_file: Path, nodes: list[NodeProcess]):
    """A device process connected to a signed test client that stands in for the broker.

    Call it with extra device options; it returns (client, device).
    """
    clients: list[tuple[BusClient, NodeProcess]] = []

    def start(*options: str, packer: str = "msgpack", env: dict[str, str] | None = None,
              tcp: bool = False) -> tuple[BusClient, NodeProcess]:
        """``tcp``: over loopback TCP, in clear (--insecure-bus), for a test about ports."""
        endpoint = f"tcp://127.0.0.1:{free_port()}" if tcp else ipc_endpoint("broker")
        options = ("--insecure-bus", *options) if tcp else options
        client = BusClient(key, bind=endpoint, packer=packer)
        device = NodeProcess("device", "--connect", endpoint, "--key-file", str(key_file),
                             "--packer", packer, "--device-id", f"dev-{os.getpid()}", *options,
                             env=env)
        nodes.append(device)
        clients.append((client, device))
        client.wait_for(lambda m: m["msg_type"] == "device_register")
        return client, device

    yield start
    from stand_in import stop_device
    for client, device in clients:
        stop_device(client, device)  # its last records acknowledged: it need not wait for them
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
def shared_chain(tmp_path_factory: pytest.TempPathFactory):
    """A running chain for a whole module (tests/module_chain.py), for tests that leave its
    nodes as they found them and each use worksheets of their own; a test that stops or
    restarts a node, or needs node options, takes ``running_chain`` or ``chain``."""
    from module_chain import module_chain
    yield from module_chain(tmp_path_factory, "shared")


@pytest.fixture(scope="module")
def fuzz_chain(tmp_path_factory: pytest.TempPathFactory):
    """A chain for a whole module of fuzz or bad-input tests (tests/fuzz_chain.py)."""
    from fuzz_chain import run_fuzz_chain
    yield from run_fuzz_chain(tmp_path_factory)


# -- the MongoDB tests: a server for the run, and a line that says what they ran against ------


@pytest.fixture(scope="session")
def mongodb_server() -> Iterator[Callable[[str], str]]:
    """``mode -> base URL`` of a MongoDB server (tests/mongodb_server.py): the one
    $CELLBUS_TEST_MONGODB_URL names, else SecantusDB, started at first use in each mode and
    stopped when the run ends, whatever happens. Without a server a test is skipped saying
    why, and fails instead in CI (CI=true)."""
    import mongodb_server as servers
    started: dict[str, servers.Secantus] = {}

    def server(mode: str) -> str:
        if os.environ.get(servers.ENV_URL) and mode != "replset":
            pytest.skip(f"{servers.ENV_URL} names one server; the {mode} mode runs only "
                        "against a SecantusDB the tests start")
        try:
            return servers.server(mode, started)
        except servers.ServerUnavailable as e:
            servers.unavailable(e)

    try:
        yield server
    finally:
        for running in started.values():
            running.stop()


@pytest.fixture
def mongodb_mode() -> str:
    """The mode of the server ``mongodb_database`` is on; parametrize to run both modes."""
    return "replset"


@pytest.fixture
def mongodb_database(mongodb_mode: str, mongodb_server: Callable[[str], str]) -> Iterator[str]:
    """The URL of a fresh database on the ``mongodb_mode`` server, dropped after the test."""
    from mongodb_server import drop_database, fresh_database
    url = fresh_database(mongodb_server(mongodb_mode))
    yield url
    drop_database(url)


def _no_skip_in_ci(report: pytest.TestReport | pytest.CollectReport) -> None:
    """With CI=true (.ci/run sets it) no test may skip: CI has root and everything bin/test
    installs, so a skip there (a missing browser, kernel, MongoDB server or test extra) is
    something that did not run unseen. Each skip's own reason is kept in the failure."""
    if report.skipped and os.environ.get("CI", "").lower() in ("1", "true", "yes") \
            and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"CI=true: this test may not skip, but it did: {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Iterator[pytest.TestReport]:
    report = yield
    _no_skip_in_ci(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[pytest.CollectReport]:
    report = yield  # a module-level importorskip skips the file here
    _no_skip_in_ci(report)
    return report


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "mongodb: a test of the MongoDB store, against the mongodb_server fixture")
    # Nodes run on the interpreter under test (harness.CELLBUS); give its environment the
    # compiled namespace init that bin/cellbus builds into .venv, where devices look for it.
    from cellbus.init_program import build
    build()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    """One line: what the MongoDB tests ran against (SecantusDB is not MongoDB), or why not."""
    from mongodb_server import summary
    outcomes: dict[str, str] = {}
    rank = {"passed": 0, "skipped": 1, "failed": 2}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if isinstance(report, pytest.TestReport) and "mongodb" in report.keywords:
                old = outcomes.get(report.nodeid, "passed")
                outcomes[report.nodeid] = max(old, report.outcome, key=lambda o: rank.get(o, 2))
    line = summary(list(outcomes.values()))
    if line is not None:
        terminalreporter.write_line(line)
    from fuzzing import summary as fuzz_summary  # the fuzz tests' case counts and memory
    for fuzz_line in fuzz_summary():
        terminalreporter.write_line(fuzz_line)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """In a worker of pytest-xdist (``bin/test`` runs a few): what its tests ran against and
    counted, for the summary the controller writes (:func:`pytest_testnodedown`)."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        from fuzzing import COUNTS, NOTES
        from mongodb_server import RAN
        workeroutput["cellbus"] = {"mongodb_servers": RAN.servers, "mongodb_missing": RAN.missing,
                                   "fuzz_counts": dict(COUNTS), "fuzz_notes": NOTES}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """In pytest-xdist's controller: one worker's part of the summary, added to the rest."""
    part = getattr(node, "workeroutput", {}).get("cellbus")
    if part:
        from fuzzing import COUNTS, NOTES
        from mongodb_server import RAN
        RAN.servers.update(part["mongodb_servers"])
        RAN.missing = RAN.missing or part["mongodb_missing"]
        COUNTS.update(part["fuzz_counts"])
        NOTES.update(part["fuzz_notes"])
