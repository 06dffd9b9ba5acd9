"""Mistakes a newcomer makes starting nodes by hand, and what the nodes say: another
deployment key than the broker's (the wrong --key-file: both ends say what to check, instead
of a device that only reports silence and a broker that only counts bad signatures), and a
device given only kernels it cannot run (it stops, instead of serving nothing)."""

from __future__ import annotations

from pathlib import Path

from harness import Chain, NodeProcess, ipc_endpoint
from protocol.config import generate_key


def test_a_device_with_another_key_is_told_to_check_the_key_file(
        chain: Chain, nodes: list[NodeProcess], tmp_path: Path) -> None:
    """Tests that a device signing with a key other than the broker's gets, in its own log,
    a line naming --key-file, and the broker's line about the bad signatures names it too,
    and the device by its --device-id (it named it in hex, 'from peer 77726f6e67')."""
    broker = chain.start_broker()
    other = tmp_path / "other.key"
    generate_key(other)
    device = NodeProcess("device", "--connect", chain.device_ep, "--device-id", "wrong",
                         *chain.cert_options("wrong", "device"), "--key-file", str(other))
    nodes.append(device)
    device.wait_for_log(r"no word from the broker .*--key-file")
    broker.wait_for_log(r"dropped a message: signature.*--key-file; from peer 'wrong'")
    assert "device wrong registered" not in broker.log


def test_a_device_that_can_offer_no_kernel_stops_in_one_line(
        key_file: Path, nodes: list[NodeProcess]) -> None:
    """Tests that a device whose --kernels names only kernels it cannot run exits with
    status 2 and a line naming --kernels (it ran on, offering no kernel at all)."""
    device = NodeProcess("device", "--kernels", "julia", "--connect", ipc_endpoint("broker"),
                         "--key-file", str(key_file))
    nodes.append(device)
    assert device.proc.wait(30) == 2, device.log
    device.wait_for_log(r"cannot offer the kernel 'julia'")  # (its log is read by a thread)
    device.wait_for_log(r"can offer none of the kernels julia .*--kernels")
    assert "Traceback" not in device.log


def test_a_kernelspec_whose_program_is_missing_is_not_offered(
        key_file: Path, nodes: list[NodeProcess], tmp_path: Path) -> None:
    """Tests that a kernelspec whose argv names a program that is not there (a kernel.json
    written by hand, a kernel uninstalled without its spec) is logged as a kernel the
    device cannot offer, naming the program, and is not offered; before, it was offered,
    and each session of it ended with "WorkerDied: ... exited with code 1" and a
    jupyter_client traceback in the device's log."""
    spec = tmp_path / "kernels" / "broken"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        '{"argv": ["/nonexistent/bin/kern", "-f", "{connection_file}"], '
        '"display_name": "Broken", "language": "x"}')
    device = NodeProcess("device", "--kernels", "python,broken", "--prefork", "0",
                         "--connect", ipc_endpoint("broker"), "--key-file", str(key_file),
                         env={"JUPYTER_PATH": str(tmp_path)})
    nodes.append(device)
    device.wait_for_log(r"cannot offer the kernel 'broken': .*/nonexistent/bin/kern")
    device.wait_for_log(r"offers the kernels python \(")
    assert "Traceback" not in device.log


def test_a_key_file_that_cannot_be_read_is_named_by_its_option(
        nodes: list[NodeProcess], tmp_path: Path) -> None:
    """Tests that each node given a --key-file that is not there, or is empty, stops with
    status 2 and a line naming --key-file and how to make one (before: "cannot read key file
    PATH", naming no option, on a node given several files)."""
    empty = tmp_path / "empty.key"
    empty.write_bytes(b"")
    for path, why in ((tmp_path / "nokey", "cannot read the --key-file .*nokey: No such file"),
                      (empty, "the --key-file .*empty.key is empty")):
        for role, options in (("broker", ["--store", f"sqlite:///{tmp_path}/s.db"]),
                              ("device", ["--connect", ipc_endpoint("broker")]),
                              ("gateway", ["--broker", ipc_endpoint("broker"), "--port", "0"])):
            node = NodeProcess(role, *options, "--key-file", str(path))
            nodes.append(node)
            assert node.proc.wait(30) == 2, node.log
            node.wait_for_log(why + r".*bin/cellbus key PATH")


def test_a_curve_file_given_wrong_is_named_by_its_option(
        chain: Chain, nodes: list[NodeProcess], tmp_path: Path) -> None:
    """Tests that a device given a --curve-key that is not there, its public .key instead of
    the .key_secret, or the deployment key, a --broker-key that is not there, and a broker
    whose --curve-dir has no broker key, each stop with status 2 and a line naming the
    option and what to give (before: "cannot read the CURVE certificate PATH: Invalid
    certificate file: PATH" for a file that does not exist, naming no option)."""
    own, broker_key = chain.cert_options("d1", "device")[1::2]
    public = own.removesuffix("_secret")
    for options, line in (
            (["--curve-key", str(tmp_path / "nope"), "--broker-key", broker_key],
             r"--curve-key .*nope: no such file"),
            (["--curve-key", public, "--broker-key", broker_key],
             r"--curve-key .*d1\.key holds no secret key: give the \.key_secret file"),
            (["--curve-key", chain.key_file, "--broker-key", broker_key],
             r"--curve-key .* is not a CURVE certificate \(.*\): bin/cellbus cert makes them"),
            (["--curve-key", own, "--broker-key", str(tmp_path / "nope")],
             r"--broker-key .*nope: no such file")):
        node = NodeProcess("device", "--connect", "tcp://127.0.0.1:9", "--key-file",
                           chain.key_file, *options)
        nodes.append(node)
        assert node.proc.wait(30) == 2, node.log
        node.wait_for_log(line)
    empty = tmp_path / "keys"
    empty.mkdir()
    broker = NodeProcess("broker", "--key-file", chain.key_file, "--store", chain.store,
                         "--curve-dir", str(empty), "--gateway-bind", "tcp://127.0.0.1:0",
                         "--device-bind", "tcp://127.0.0.1:0", "--publish-bind",
                         "tcp://127.0.0.1:0")
    nodes.append(broker)
    assert broker.proc.wait(30) == 2, broker.log
    broker.wait_for_log(r"--curve-dir .*keys: no such file .*broker\.key_secret.*"
                        r"bin/cellbus cert broker --role broker --dir")


def test_ready_says_when_the_gateway_and_the_broker_hold_different_keys(
        chain: Chain, nodes: list[NodeProcess], tmp_path: Path) -> None:
    """Tests that /ready of a gateway whose --key-file is not the broker's names --key-file
    in its problem (the broker's beacons fail the gateway's check while it waits); before,
    it said only 'the broker did not answer within 3 s', as for a broker that is down."""
    chain.start_broker()
    other = tmp_path / "other.key"
    generate_key(other)
    gateway = NodeProcess("gateway", "--port", str(chain.port), "--broker", chain.gateway_ep,
                          "--subscribe", chain.publish_ep,
                          *chain.cert_options("gateway", "gateway"), "--key-file", str(other))
    nodes.append(gateway)
    gateway.wait_for_log(r"gateway dropped a message: signature")
    status, body = chain.http("GET", "/ready")
    assert status == 503, body
    assert body["problems"][0].startswith("broker: the broker did not answer within 3 s "
                                          "(this gateway dropped "), body
    assert body["problems"][0].endswith("every node needs the same --key-file)"), body
