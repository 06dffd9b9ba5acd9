"""The chain the fuzz and bad-input tests share: a broker, a device and a gateway.

The device runs ``tests/echo_backend.py`` (random input is answered, not executed) and the
gateway a small ``--max-input``, so that every size limit is cheap to reach.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import Chain, NodeProcess, stop_nodes
from protocol.config import generate_key

TESTS = Path(__file__).resolve().parent
#: The gateway's --max-input in these tests: small, so that "too big" is cheap to reach.
MAX_INPUT = 16 * 1024
#: The gateway's body limit (2 * max_input + 64 KiB): a larger body gets 413.
MAX_BODY = 2 * MAX_INPUT + 65536
#: Largest WebSocket message (the gateway sets max_input + 64 KiB).
MAX_WS_MESSAGE = MAX_INPUT + 65536


def run_fuzz_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    """One broker, one EchoBackend device and one gateway, stopped when resumed (the
    ``fuzz_chain`` fixture in conftest.py, one per test module)."""
    tmp = tmp_path_factory.mktemp("fuzz")
    key_file = tmp / "bus.key"
    generate_key(key_file)
    nodes: list[NodeProcess] = []
    old_path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), old_path]))
    try:
        chain = Chain(key_file, f"sqlite:///{tmp / 'cellbus.db'}", nodes)
        chain.start_broker()
        chain.start_device("--backend", "echo_backend:EchoBackend", "--max-sessions", "64",
                           "--prefork", "1", "--idle-timeout", "30")
        chain.start_gateway("--max-input", str(MAX_INPUT))
        yield chain
    finally:
        if old_path is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old_path
        stop_nodes(nodes)
