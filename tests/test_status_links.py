"""``bin/cellbus status --timeout S`` ends within S (and a margin for starting Python) with one
line and exit status 1 when the broker does not answer, whatever its link does: the broker
ends the link at once (it encrypts and the status does not, or the reverse), it is frozen
(SIGSTOP), or nothing listens. Before, a status whose link the broker had ended before the
request was sent waited in its send forever (seen once in a whole run of test_link_words)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import slow_status
from harness import CELLBUS, ROOT, Chain, NodeProcess, cellbus_status, free_port, node_env, until

#: Seconds a status may take beyond its --timeout: Python's start, and the answer's words.
MARGIN = 8.0
#: A status paused between its connect and its send until the broker ended the link.
SLOW_STATUS = [sys.executable, str(ROOT / "tests" / "slow_status.py")]


def within(args: list[str], timeout: float = 2.0, program: list[str] | None = None
           ) -> tuple[int, str, float]:
    """Exit status, stderr and seconds taken of a status with ``--timeout`` ``timeout``,
    failed with its stacks if it takes longer than that and :data:`MARGIN` (and the pause
    of a :data:`SLOW_STATUS`, which may last until the broker ends the link)."""
    start = time.monotonic()
    pause = slow_status.PAUSE if program == SLOW_STATUS else 0.0
    done = cellbus_status(*args, "--timeout", f"{timeout:g}", program=program,
                          timeout=timeout + MARGIN + pause)
    took = time.monotonic() - start
    assert done.stdout == "", done.stdout
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("cellbus status: "), \
        done.stderr
    return done.returncode, done.stderr, took


def insecure_broker(chain: Chain) -> NodeProcess:
    """A broker on ``chain``'s endpoints whose TCP links are not encrypted."""
    broker = chain._start("broker", "--store", chain.store, "--insecure-bus",
                          "--gateway-bind", chain.gateway_ep, "--device-bind", chain.device_ep,
                          "--publish-bind", chain.publish_ep)
    broker.wait_for_log(r"broker started")
    return broker


def test_a_status_without_keys_whose_link_ended_before_it_sent_says_why(chain: Chain) -> None:
    """Tests a status with --insecure-bus at a broker that encrypts its links, paused (as a
    loaded machine pauses it) until ZeroMQ has ended the link: it says the broker wants CURVE
    keys within its timeout; before, its send waited forever for a peer that was gone."""
    chain.start_broker()
    status, said, _ = within(["--broker", chain.gateway_ep, "--key-file", chain.key_file,
                              "--insecure-bus"], program=SLOW_STATUS)
    assert status == 1 and "this node has no CURVE keys" in said, said


def test_a_status_with_keys_at_a_broker_without_them_says_why(chain: Chain) -> None:
    """Tests the reverse: a status with CURVE keys at a broker with --insecure-bus, paused
    until the link is ended, names the failed CURVE handshake (the broker may run without
    CURVE) within its timeout."""
    insecure_broker(chain)
    status, said, _ = within(["--broker", chain.gateway_ep, "--key-file", chain.key_file,
                              *chain.cert_options("status", "gateway")], program=SLOW_STATUS)
    assert status == 1 and "runs without CURVE (--insecure-bus)" in said, said


def test_a_frozen_broker_is_waited_for_no_longer_than_the_timeout(chain: Chain) -> None:
    """Tests a status at a broker stopped with SIGSTOP (its port accepts, nothing answers):
    exit status 1 after about --timeout, in one line naming the endpoint."""
    broker = chain.start_broker()
    broker.proc.send_signal(signal.SIGSTOP)
    try:
        status, said, took = within(["--broker", chain.gateway_ep, "--key-file",
                                     chain.key_file, *chain.cert_options("status", "gateway")])
    finally:
        broker.proc.send_signal(signal.SIGCONT)
    assert status == 1 and f"the broker at {chain.gateway_ep} did not answer within 2 s" in said
    assert "its port accepts connections, but no handshake finished" in said, said
    assert took >= 2.0


@pytest.mark.parametrize("kind", ["curve", "insecure", "ipc"])
def test_nothing_listening_is_said_within_the_timeout(chain: Chain, kind: str,
                                                      tmp_path: Path) -> None:
    """Tests a status at an endpoint nothing listens on (a TCP port with keys and without,
    an ipc path with no socket, as a broker killed or never started leaves it): exit status
    1 within --timeout, in one line that says nothing listens there; before, it asked
    whether --key-file and --packer were the broker's, as for a broker that drops what the
    status signs."""
    nowhere = f"ipc://{tmp_path}/gw" if kind == "ipc" else f"tcp://127.0.0.1:{free_port()}"
    keys = chain.cert_options("status", "gateway") if kind == "curve" else ["--insecure-bus"]
    status, said, _ = within(["--broker", nowhere, "--key-file", chain.key_file, *keys])
    assert status == 1 and f"the broker at {nowhere} did not answer within 2 s" in said, said
    assert "(nothing listens there: is the broker running, and is this its --gateway-bind " \
           "endpoint?)" in said and "--key-file" not in said, said


@pytest.mark.parametrize("port", ["device", "publish"])
def test_a_status_at_another_port_of_the_broker_is_asked_about_its_endpoint(
        chain: Chain, port: str) -> None:
    """Tests a status given the broker's --device-bind or --publish-bind endpoint instead of
    its --gateway-bind one: its one line asks whether the endpoint is the --gateway-bind one;
    before, the device port's refusal of a gateway's key only said to make a certificate and
    put it in gateways/ (where it was already), and the publish port's only blamed the keys."""
    chain.start_broker()
    wrong = chain.device_ep if port == "device" else chain.publish_ep
    status, said, _ = within(["--broker", wrong, "--key-file", chain.key_file,
                              *chain.cert_options("status", "gateway")])
    assert status == 1 and f"is {wrong} the broker's --gateway-bind endpoint?" in said, said


def test_a_status_with_another_packer_is_pointed_at_it(chain: Chain) -> None:
    """Tests a status with --packer json at a broker speaking msgpack (which drops what it
    cannot decode): its one line names --packer beside the key; before, it asked only about
    the endpoint and the key."""
    chain.start_broker()
    status, said, _ = within(["--broker", chain.gateway_ep, "--key-file", chain.key_file,
                              *chain.cert_options("status", "gateway"), "--packer", "json"])
    assert status == 1 and "--packer" in said, said
    assert "its link is up, and the broker drops what this status signs" in said, said


def connected_to(port: int) -> bool:
    """Whether a TCP connection to 127.0.0.1:``port`` is established (the kernel accepts one
    for a frozen listener)."""
    shown = subprocess.run(["ss", "-Htn", "state", "established", f"( dport = :{port} )"],
                           capture_output=True, text=True, timeout=10, check=True)
    return bool(shown.stdout.strip())


def test_a_broker_killed_while_frozen_is_not_taken_for_a_wrong_key(chain: Chain) -> None:
    """Tests a status whose connection a frozen broker's kernel accepted, and which the
    broker's death then broke in mid-handshake (nothing listens after): it says the broker
    did not answer, not that --broker-key is wrong (one broken handshake is no wrong key:
    a wrong key fails at every reconnect)."""
    broker = chain.start_broker()
    broker.proc.send_signal(signal.SIGSTOP)
    port = int(chain.gateway_ep.rsplit(":", 1)[1])
    proc = subprocess.Popen([*CELLBUS, "status", "--broker", chain.gateway_ep, "--key-file",
                             chain.key_file, *chain.cert_options("status", "gateway"),
                             "--timeout", "3"], cwd=ROOT, text=True, env=node_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        until(lambda: connected_to(port), "the status's connection to the frozen broker")
        broker.proc.kill()
        _, said = proc.communicate(timeout=3 + MARGIN)
    finally:
        proc.kill()
    assert proc.returncode == 1 and "--broker-key is not" not in said, said
    assert f"the broker at {chain.gateway_ep} did not answer within 3 s" in said, said
