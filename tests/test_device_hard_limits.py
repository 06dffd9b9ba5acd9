"""A device started under hard resource limits lower than its sessions' (a systemd unit's
LimitNOFILE=, LimitFSIZE=, a container's ulimits): a worker, forked without the privilege to
raise a hard limit, cannot be given more than the device has. Each worker died setting its
limits ("ValueError: not allowed to raise maximum limit" in the device's log), and every
cell ended with "the session's worker process exited with code 1"."""

from __future__ import annotations

from harness import Chain

OPEN_FILES = 64
FILE_BYTES = 8 * 1024 * 1024
CODE = ("import resource\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE), "
        "resource.getrlimit(resource.RLIMIT_FSIZE))\n")


def test_sessions_of_a_device_under_lower_hard_limits_get_those(chain: Chain) -> None:
    """Tests that a device whose hard limits of open files and file size are below its
    sessions' runs cells, each session held to the device's hard limits, and that its log
    says, for each, what a session gets and how to give it more."""
    chain.start_broker()
    device = chain.start_device(wrap=["prlimit", f"--nofile={OPEN_FILES}",
                                      f"--fsize={FILE_BYTES}", "--"])
    chain.start_gateway()
    assert chain.evaluate("u/ws/1", CODE)[0] == 202
    doc = chain.wait_done("u/ws/1")
    assert doc["status"] == "done", doc
    assert doc["output"]["stdout_0"]["content"] == \
        f"({OPEN_FILES}, {OPEN_FILES}) ({FILE_BYTES}, {FILE_BYTES})\n", doc
    device.wait_for_log(rf"WARNING device open files of each session process: {OPEN_FILES} "
                        r"\(.*hard limit.*LimitNOFILE=")
    device.wait_for_log(r"WARNING device largest file a session may write: 8 MiB "
                        r"\(--max-file-bytes 1 GiB .*hard limit.*LimitFSIZE=")
