"""One running chain (broker, device, gateway) shared by the tests of a whole module.

Starting a chain and stopping it takes about 3-4 s (the device's start, which waits for its
registration, is most of it); per test that added up to minutes over the suite. Tests that
share one must leave its nodes as they found them and each use worksheets (so sessions) of
their own; a test that stops, kills or restarts a node, or needs node options, starts its own
(the ``chain`` and ``running_chain`` fixtures).

Sessions stay open until their device's idle timeout (15 min), longer than a module runs, so
the shared device takes more of them at once (:data:`MAX_SESSIONS`) than a device's default
16, which a module's tests together may reach: a request beyond it would wait for a free one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from harness import Chain, NodeProcess, stop_nodes
from protocol.config import generate_key

#: The shared device's --max-sessions.
MAX_SESSIONS = 64


def module_chain(tmp_path_factory: pytest.TempPathFactory, name: str, *,
                 device: Sequence[str] = (), gateway: Sequence[str] = (),
                 log: Path | None = None) -> Iterator[Chain]:
    """Start a chain on a fresh key and SQLite file (``device`` and ``gateway``: the nodes'
    extra options), yield it, and stop its nodes when resumed, whatever happens; ``log``:
    where the nodes' logs are written then."""
    tmp = tmp_path_factory.mktemp(name)
    key_file = tmp / "bus.key"
    generate_key(key_file)
    nodes: list[NodeProcess] = []
    chain = Chain(key_file, f"sqlite:///{tmp / 'cellbus.db'}", nodes)
    try:
        chain.start_broker()
        chain.start_device("--max-sessions", str(MAX_SESSIONS), *device)
        chain.start_gateway(*gateway)
        yield chain
    finally:
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("\n\n".join(f"== {n.argv[n.argv.index('cellbus') + 1]} ==\n{n.log}"
                                      for n in nodes))
        stop_nodes(nodes)
