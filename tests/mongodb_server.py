"""The MongoDB server the MongoDB tests run against: $CELLBUS_TEST_MONGODB_URL, or SecantusDB.

A real MongoDB named by ``CELLBUS_TEST_MONGODB_URL`` always wins. Without it, the tests start
SecantusDB (a MongoDB-wire-compatible server on WiredTiger, PyPI ``secantusdb``; GPL-2.0-only
AND CC-BY-4.0) from the venv of its own that ``bin/test`` installs it into (never into .venv,
never a dependency of cellbus), in memory, on a free loopback port, once per mode and test
run: ``replset`` (it advertises a one-member replica set, so the store commits seqs in
transactions) and ``standalone`` (``--standalone``: the path without transactions).

What the tests ran against is noted in :data:`RAN`, for the run's summary line
(``tests/conftest.py``); where no server could be had, why.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NoReturn
from urllib.parse import urlsplit, urlunsplit

import pytest

from broker.store.base import redact_url
from harness import ROOT, free_port

ENV_URL: Final = "CELLBUS_TEST_MONGODB_URL"
#: Where bin/test installs SecantusDB; CELLBUS_SECANTUS names another secantusd-py.
SECANTUS: Final = Path(os.environ.get("CELLBUS_SECANTUS")
                       or ROOT / ".venv-secantus" / "bin" / "secantusd-py")
#: The replica set name SecantusDB advertises unless started with --standalone.
REPLICA_SET: Final = "secantus"
MODES: Final = ("replset", "standalone")
START_TIMEOUT: Final = 30.0
PR_SET_PDEATHSIG: Final = 1


@dataclass
class Ran:
    """What the MongoDB tests of this run were given: servers started, or why none."""

    servers: dict[str, str] = field(default_factory=dict)  # mode -> URL
    missing: str = ""  # why no server could be had, if so


RAN = Ran()


class ServerUnavailable(RuntimeError):
    """No MongoDB server for the tests: SecantusDB is not installed or did not start."""


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the test run dies without stopping it."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: stop() is then the only way it ends
        pass


class Secantus:
    """One SecantusDB process, in memory, on a free loopback port; :meth:`stop` ends it."""

    def __init__(self, mode: str) -> None:
        if not SECANTUS.is_file():
            raise ServerUnavailable(
                f"SecantusDB is not installed ({SECANTUS} is missing): bin/test installs it "
                "into .venv-secantus from PyPI (package secantusdb), so it was offline or "
                "the install failed; its output above says why")
        self.mode, self.port = mode, free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="cellbus-secantus-")
        self.log_path = Path(self._dir.name) / "secantus.log"
        argv = [str(SECANTUS), "--host", "127.0.0.1", "--port", str(self.port),
                "--storage-path", ":memory:", "--cache-size", "128M", "--log-level", "WARNING"]
        if mode == "standalone":
            argv.append("--standalone")
        with open(self.log_path, "wb") as log:  # its cwd is empty: no ./secantusd.toml read
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=self._dir.name,
                                         start_new_session=True, preexec_fn=_die_with_parent)
        query = "" if mode == "standalone" else f"?replicaSet={REPLICA_SET}"
        self.url = f"mongodb://127.0.0.1:{self.port}/{query}"
        try:
            self._wait_listening()
        except BaseException:
            self.stop()
            raise

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerUnavailable(f"SecantusDB exited with {self.proc.returncode} on "
                                        f"start: {self.log()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)  # polling a port: nothing to wait on but the next try
        raise ServerUnavailable(f"SecantusDB did not listen on port {self.port} within "
                                f"{START_TIMEOUT:.0f} s: {self.log()[-2000:]}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGKILL of its whole process group; removes its directory. Its data dies with the
        run, so there is nothing to shut down cleanly: a SIGTERM it took 10 s or more to heed
        on a loaded machine ran the last test of a worker past its timeout, which counts the
        session fixtures' teardown too."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # and anything it started
        except ProcessLookupError:
            pass
        self.proc.wait(5)
        self._dir.cleanup()


def unavailable(e: ServerUnavailable) -> NoReturn:
    """Skip the test that has no server, saying why; fail it instead in CI (CI=true)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"no MongoDB server for the MongoDB tests: {e}", pytrace=False)
    pytest.skip(f"MongoDB tests did not run: {e}")


def own(mode: str) -> Secantus:
    """A SecantusDB of one test's own (to stop, pause, or start where a broker waits for
    it), in the run's summary; without one, :func:`unavailable`."""
    try:
        secantus = Secantus(mode)
    except ServerUnavailable as e:
        unavailable(e)
    RAN.servers.setdefault(mode, secantus.url)
    return secantus


def server(mode: str, started: dict[str, Secantus]) -> str:
    """The base URL of the server for ``mode`` (``replset`` or ``standalone``): the one
    $CELLBUS_TEST_MONGODB_URL names, else a SecantusDB started now unless ``started`` has
    one. Raises :class:`ServerUnavailable` saying why there is none."""
    env = os.environ.get(ENV_URL)
    if env:
        RAN.servers[mode] = redact_url(env)
        return env
    if mode not in started:
        if RAN.missing:  # tried once this run: as good as trying again
            raise ServerUnavailable(RAN.missing)
        try:
            started[mode] = Secantus(mode)
        except ServerUnavailable as e:
            RAN.missing = str(e)
            raise
        RAN.servers[mode] = started[mode].url
    return started[mode].url


def summary(outcomes: list[str]) -> str | None:
    """The run's line on the MongoDB tests (their ``outcomes``), or None if none ran."""
    if not outcomes:
        return None
    counts = ", ".join(f"{outcomes.count(o)} {o}" for o in ("passed", "failed", "skipped"))
    if not RAN.servers:
        return (f"MongoDB store tests DID NOT RUN ({counts}): "
                f"{RAN.missing or 'no test reached a server'}")
    where = "; ".join(f"{mode} at {RAN.servers[mode]}" for mode in MODES
                      if mode in RAN.servers)
    if os.environ.get(ENV_URL):
        line = f"MongoDB store tests ran against the server at {where}: {counts}"
    else:
        line = (f"MongoDB store tests ran against SecantusDB {version()}, a MongoDB-compatible "
                f"server, NOT MongoDB ({where}): {counts}")
    return line + (f" (some could not run: {RAN.missing})" if RAN.missing else "")


def version() -> str:
    """SecantusDB's version, from its venv's metadata (without importing it here)."""
    for meta in SECANTUS.parent.parent.glob("lib/python*/site-packages/secantusdb-*.dist-info"):
        return meta.name.removeprefix("secantusdb-").removesuffix(".dist-info")
    return "(unknown version)"


def fresh_database(url: str) -> str:
    """``url`` naming a fresh database ``cellbus_test_...`` (the caller drops it)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/cellbus_test_{uuid.uuid4().hex[:16]}"))


def drop_database(url: str) -> None:
    """Drop the database ``url`` names (blocking: ``asyncio.to_thread`` it in a loop)."""
    from pymongo import MongoClient
    client: MongoClient[dict[str, Any]] = MongoClient(url)
    try:
        client.drop_database(client.get_default_database())
    finally:
        client.close()
