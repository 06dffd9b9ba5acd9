"""Rotating a device's or gateway's CURVE key under the same name: ``bin/cellbus cert
--revoke NAME``, then ``bin/cellbus cert NAME --role ROLE`` again. Before, the second step
was refused with "exists already; revoke it first", after the key was revoked, so a key
could not be rotated without removing files by hand."""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness import CELLBUS, ROOT, Chain, node_env


def cert(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CELLBUS, "cert", *args], cwd=ROOT, env=node_env(),
                          capture_output=True, text=True, timeout=60)


def test_a_revoked_name_gets_a_new_key_and_an_accepted_one_does_not(tmp_path: Path) -> None:
    """Tests that making a certificate again for a name the broker still accepts is refused,
    saying how to rotate it, and that once revoked the name gets a new key pair, accepted in
    its role's folder, while the old public key stays out."""
    keys = str(tmp_path / "keys")
    assert cert("gpu1", "--role", "device", "--dir", keys).returncode == 0
    old = (tmp_path / "keys" / "gpu1.key").read_text()
    again = cert("gpu1", "--role", "device", "--dir", keys)
    assert again.returncode == 2
    assert "--revoke gpu1" in again.stderr, again.stderr
    assert cert("--revoke", "gpu1", "--dir", keys).returncode == 0
    new = cert("gpu1", "--role", "device", "--dir", keys)
    assert new.returncode == 0, new.stderr
    fresh = (tmp_path / "keys" / "gpu1.key").read_text()
    assert fresh != old
    assert (tmp_path / "keys" / "devices" / "gpu1.key").read_text() == fresh
    listed = cert("--list", "--dir", keys)
    assert listed.stdout.split() == ["device", "gpu1"], listed.stdout


def test_a_rotated_device_key_works_and_the_old_one_is_refused(chain: Chain) -> None:
    """Tests the rotation end to end: a device with the new key registers and runs a cell;
    one with the old (revoked) key is refused by the broker."""
    chain.start_broker()
    old_secret = chain.keys_dir.parent / "old.key_secret"
    chain.cert_options("d1", "device")
    old_secret.write_bytes((chain.keys_dir / "d1.key_secret").read_bytes())
    assert cert("--revoke", "d1", "--dir", str(chain.keys_dir)).returncode == 0
    made = cert("d1", "--role", "device", "--dir", str(chain.keys_dir))
    assert made.returncode == 0, made.stderr
    chain.start_device("--prefork", "0", "--kernels", "python", name="d1")
    chain.start_gateway()
    assert chain.evaluate("u/ws/1", "print(6*7)")[0] == 202
    assert chain.wait_done("u/ws/1")["output"]["stdout_0"]["content"] == "42\n"
    stale = chain._start("device", "--connect", chain.device_ep, "--device-id", "d2",
                         "--prefork", "0", "--kernels", "python", "--curve-key",
                         str(old_secret), "--broker-key", str(chain.keys_dir / "broker.key"))
    stale.wait_for_log(r"refused this node's CURVE key")
