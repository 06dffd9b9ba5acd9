"""What a sandboxed session sees of the device's filesystem, and how much it may write.

Real devices and real sandboxed workers (root only, as tests/test_sandbox.py).
"""

from __future__ import annotations

import ast
import shutil
import uuid

from protocol.curve import make_certificate
from test_sandbox import REPO, out, pytestmark  # noqa: F401 (the same skip as there)

MIB = 1 << 20

FILL = '''
import errno, os
wrote = {}
for path in ("/tmp/a", "/home/session/b", "/dev/shm/c"):
    n = 0
    try:
        with open(path, "wb") as f:
            for _ in range(5):
                f.write(b"x" * (1 << 20))
                f.flush()
                n += 1
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
    wrote[path] = n
    os.remove(path)
print(wrote, oct(os.stat("/tmp").st_mode), oct(os.stat("/home/session").st_mode),
      os.stat("/home/session").st_uid == os.getuid())
'''


def test_max_disk_holds_for_tmp_home_and_shm_together(device_with_client) -> None:
    """--max-disk 8 MiB: 5 MiB into each of /tmp, the working directory and /dev/shm in
    turn (each removed after) all fit, but not 5 + 5 at once; each used to have 8 MiB."""
    client, _ = device_with_client("--max-disk", str(8 * MIB))
    assert out(client, FILL, "s").split(" 0o") == [
        "{'/tmp/a': 5, '/home/session/b': 5, '/dev/shm/c': 5}", "41777", "40700 True\n"]
    together = out(client, FILL.replace("    os.remove(path)\n", ""), "t")
    wrote = ast.literal_eval(together.split(" 0o")[0])
    assert wrote["/tmp/a"] == 5 and sum(wrote.values()) <= 8, wrote


def test_a_session_sees_cellbus_packages_not_the_checkout(device_with_client) -> None:
    """The checkout used to be bound whole (it is on sys.path): .git, tests, bench and any
    file kept there were readable from a cell. Now only the packages a worker loads are."""
    secret = REPO / f"secret-{uuid.uuid4().hex[:8]}.key"
    secret.write_text("top secret\n")
    try:
        client, _ = device_with_client()
        seen = out(client, "import os, session\n"
                   f"root = {str(REPO)!r}\n"
                   "print(sorted(os.listdir(root)) if os.path.isdir(root) else None)\n"
                   f"print([os.path.exists(root + '/' + p) for p in "
                   f"('.git', 'tests', 'bench', 'README.rst', {secret.name!r})])\n"
                   "print(session.__file__)\n", "s").splitlines()
    finally:
        secret.unlink()
    assert seen[1] == "[False, False, False, False, False]", seen
    assert ".git" not in seen[0] and "tests" not in seen[0] and "session" in seen[0]
    assert seen[2] == str(REPO / "session" / "__init__.py")


def test_the_devices_curve_certificate_is_hidden_like_its_key(device_with_client) -> None:
    """The device hid its bus key file from sessions, but not the secret of its CURVE
    certificate (--curve-key), with which whoever holds it passes the broker's CURVE check
    as that device: kept in a folder a session sees (/etc, /opt, cellbus's packages), it
    was read from a cell. Every secret file the device is given is covered now."""
    folder = REPO / "session" / f".test-curve-{uuid.uuid4().hex[:8]}"
    try:
        secret = make_certificate(folder, "dev", "device")
        make_certificate(folder, "broker", "broker")
        folder.chmod(0o755)
        (folder / "broker.key").chmod(0o644)
        secret.chmod(0o644)  # even readable by everyone, it must stay out of sight
        client, _ = device_with_client("--curve-key", str(secret),
                                       "--broker-key", str(folder / "broker.key"))
        seen = out(client, f"print(repr(open({str(secret)!r}, 'rb').read()))", "s")
        assert seen == "b''\n"
        assert out(client, f"print(len(open({str(folder / 'broker.key')!r}).read()) > 0)",
                   "s") == "True\n"  # the broker's public key is no secret: it stays
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_session_sees_no_host_cgroup_path(device_with_client) -> None:
    """/proc/self/cgroup named the host's cgroups of the session (the device's own cgroup,
    a container's id, the template's pid: '/process_api/<id>', '/cellbus-<pid>/w1'); in a
    cgroup namespace of its own, each line says '/'."""
    client, _ = device_with_client()
    lines = out(client, "print(open('/proc/self/cgroup').read(), end='')", "s").splitlines()
    assert lines and all(line.endswith(":/") for line in lines), lines
