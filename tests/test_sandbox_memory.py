"""What session code can read of its own process memory: nothing of the device's.

A worker is a fork of the template process, so it holds what the template was started with:
its command line and the environment block the kernel copied onto its stack at ``exec``.
Clearing ``os.environ`` (which the sandbox does) changes neither: the strings stay where
they were, and a cell reads them with a ``write()`` of that memory into a pipe (no
``/proc`` needed). So the template must be started with nothing secret in its environment.
Real devices and workers; the checks run from inside cells, as root (CI runs as root).
"""

from __future__ import annotations

import json
import os

import pytest

from harness import of_type, stdout_of

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
pytestmark = pytest.mark.skipif(os.geteuid() != 0 and not IN_CI, reason="the sandbox needs "
                                "root (CI runs as root); these tests did not run")

#: A value only the device's environment holds.
CANARY = "device-only-secret-7f3a"

#: Run in a cell: the strings at the top of the stack (argv, then the environment block the
#: process was exec'd with), read from libc's ``program_invocation_name`` (argv[0]) up to
#: the end of the mapping: ``write()`` of unmapped memory fails with EFAULT, never crashes.
READ_EXEC_BLOCK = """
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
at = ctypes.c_void_p.in_dll(libc, "program_invocation_name").value
r, w = os.pipe()
block = b""
while len(block) < 1 << 20:
    n = min(4096, ((at | 0xfff) + 1) - at)
    wrote = libc.write(w, ctypes.c_void_p(at), n)
    if wrote <= 0:
        break
    block += os.read(r, wrote)
    at += wrote
print(json.dumps([s.decode("utf-8", "replace") for s in block.split(b"\\0") if s]))
"""


def test_session_memory_holds_nothing_of_the_device_environment(device_with_client) -> None:
    """The device's whole environment (cloud credentials, tokens, anything its operator
    exported) was readable by session code in the worker's own memory, though os.environ
    was cleared: the template was started with all of it but CELLBUS_* variables."""
    client, _ = device_with_client(env={"AUDIT_CANARY": CANARY, "AWS_SECRET_ACCESS_KEY": CANARY,
                                        "JUPYTER_TOKEN": CANARY})
    msgs = client.run(READ_EXEC_BLOCK, "s")
    assert not of_type(msgs, "error"), of_type(msgs, "error")[0]["content"]
    strings = json.loads(stdout_of(msgs))
    assert "device.template" in strings  # the block was read: argv is in it
    leaked = [s for s in strings if CANARY in s or s.startswith(("AUDIT_CANARY=", "AWS_"))]
    assert not leaked, leaked
    names = sorted(s.partition("=")[0] for s in strings if "=" in s and s[0].isupper())
    assert "PATH" in names and "PYTHONPATH" in names, names  # what the template needs stays
