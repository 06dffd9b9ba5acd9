"""``bin/cellbus status`` for scripts and probes: its exit status says the verdict its last
line shows (0 ready, 3 the broker answered but is not ready, 1 no answer), and ``--json``
carries that verdict too. Before, "ready: no" exited 0, and the JSON had no verdict at all."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

from harness import CELLBUS, Chain, chain_status, node_env


def test_the_exit_status_and_the_json_say_whether_it_is_ready(chain: Chain) -> None:
    """Tests that status exits 3 with 'ready: no (no live device)' while no device is
    registered, with "ready": false and that problem in --json, and 0 with "ready": true
    and no problems once a device is (a gateway runs throughout)."""
    chain.start_broker()
    chain.start_gateway()
    text = chain_status(chain)
    assert text.returncode == 3, text.stdout + text.stderr
    assert text.stdout.splitlines()[-1] == "ready: no (no live device)"
    doc = chain_status(chain, "--json")
    assert doc.returncode == 3
    answer = json.loads(doc.stdout)
    assert answer["ready"] is False and answer["problems"] == ["no live device"], answer
    chain.start_device("--prefork", "0", "--kernels", "python")
    ready = chain_status(chain, "--json")
    assert ready.returncode == 0, ready.stdout + ready.stderr
    answer = json.loads(ready.stdout)
    assert answer["ready"] is True and answer["problems"] == [] and answer["ok"] is True
    assert chain_status(chain).stdout.splitlines()[-1] == "ready: yes"


def test_a_state_file_whose_pid_another_program_took_is_said_at_once(tmp_path: Path) -> None:
    """Tests that status, given the state file of an `up` that was killed (-9: it removed
    nothing) whose pid another program now has (pid reuse, or a zombie its parent has not
    reaped), says at once that `up` is gone, exit 2, as for a pid no process has: it asked
    the dead `up`'s broker, waited its 5 s, and asked whether --key-file was right."""
    state = tmp_path / "cellbus" / "up.json"
    state.parent.mkdir(mode=0o700)
    other = subprocess.Popen(["sleep", "60"])
    try:
        state.write_text(json.dumps({"pid": other.pid, "url": "http://127.0.0.1:1/",
                                     "broker": f"ipc://{tmp_path}/gw",
                                     "key_file": str(tmp_path / "bus.key")}))
        (tmp_path / "bus.key").write_text("0" * 64)
        started = time.monotonic()
        done = subprocess.run([*CELLBUS, "status"], capture_output=True, text=True, timeout=30,
                              env=node_env({"XDG_RUNTIME_DIR": str(tmp_path)}))
    finally:
        other.kill()
        other.wait()
    assert time.monotonic() - started < 4, done.stderr
    assert done.returncode == 2, done.stderr
    assert done.stderr == (f"cellbus status: the `bin/cellbus up` that wrote {state} (pid "
                           f"{other.pid}) is gone; remove the file\n")


def test_status_lists_the_gateways_and_says_when_none_is_up(chain: Chain) -> None:
    """Tests that status names each gateway it heard (host:port) as alive; once the only
    gateway stopped (SIGTERM), lists it stopped at once and says "ready: no (no live
    gateway)", exit 3, the broker's log saying so in one INFO line: it warned 6 s later that
    the gateway fell silent "(stopped, frozen, or its link down?)", as every Ctrl-C of
    ``up`` did. One killed is listed as silent after the expiry, and warned of once: with
    every gateway down it said "ready: yes" (the broker never heard of gateways). A broker
    that has just started (restarted) has no word on gateways yet, not "none"."""
    chain.start_broker()
    chain.start_device("--prefork", "0", "--kernels", "python")
    chain.start_gateway()
    name = f"{socket.gethostname()}:{chain.port}"
    deadline = time.monotonic() + 10
    while f"gateway {name}: alive" not in (text := chain_status(chain)).stdout:
        assert time.monotonic() < deadline, text.stdout + text.stderr
    assert text.returncode == 0 and text.stdout.splitlines()[-1] == "ready: yes"
    assert chain.gateway is not None and chain.broker is not None
    chain.gateway.stop()
    chain.broker.wait_for_log(rf"INFO broker: gateway {re.escape(name)} stopped$")
    text = chain_status(chain)
    assert text.returncode == 3, text.stdout + text.stderr
    assert re.search(rf"^gateway {re.escape(name)}: stopped [0-9.]+ s ago$", text.stdout,
                     re.M), text.stdout
    assert text.stdout.splitlines()[-1] == "ready: no (no live gateway)"
    chain.start_gateway()  # the same name again: up (its feed too), then killed: silent
    chain.broker.wait_for_log(rf"INFO broker: gateway {re.escape(name)} is up", nth=2)
    deadline = time.monotonic() + 10
    while not re.search(rf"^gateway {re.escape(name)}: alive$", (text := chain_status(
            chain)).stdout, re.M):
        assert time.monotonic() < deadline, text.stdout + text.stderr
    chain.gateway.stop(signal.SIGKILL)
    deadline = time.monotonic() + 20  # the broker's expiry of a silent gateway is 6 s
    silent = rf"^gateway {re.escape(name)}: not alive \([0-9.]+ s silent\)$"
    while not re.search(silent, (text := chain_status(chain)).stdout, re.M):
        assert time.monotonic() < deadline, text.stdout + text.stderr
    assert text.returncode == 3, text.stdout + text.stderr
    assert text.stdout.splitlines()[-1] == "ready: no (no live gateway)"
    chain.broker.wait_for_log(rf"WARNING broker: gateway {re.escape(name)} silent for \d+ s")
    assert chain.broker.log.count(f"gateway {name} silent") == 1, chain.broker.log
