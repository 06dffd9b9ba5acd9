"""Sessions against the machine: one memory budget for all of them, and the OOM killer's order.

Real devices and workers (issue 19, item 4, the device's side). They need root and cgroups
(CI runs as root); elsewhere they are skipped and say why.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from harness import NodeProcess, of_type, stdout_of

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
pytestmark = pytest.mark.skipif(os.geteuid() != 0 and not IN_CI, reason="the sandbox needs "
                                "root (CI runs as root); these tests did not run")
MiB = 2**20


def template_pid(device: NodeProcess) -> int:
    """The device's template process (its child that forks the workers)."""
    for task in Path(f"/proc/{device.proc.pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if b"device.template" in Path(f"/proc/{child}/cmdline").read_bytes():
                return int(child)
    raise AssertionError("the device has no template process")


def budget_file(pid: int) -> Path:
    """The memory limit file of the template's cgroup folder (``cellbus-<pid>`` under the
    device's own cgroup), on cgroup v2 or v1."""
    own = dict(line.split(":", 2)[1:] for line in
               Path(f"/proc/{pid}/cgroup").read_text().splitlines())
    if "" in own and Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return Path("/sys/fs/cgroup", own[""].lstrip("/"), f"cellbus-{pid}", "memory.max")
    memory = next(path for names, path in own.items() if "memory" in names.split(","))
    return Path("/sys/fs/cgroup/memory", memory.lstrip("/"), f"cellbus-{pid}",
                "memory.limit_in_bytes")


def machine_memory() -> int:
    meminfo = Path("/proc/meminfo").read_text()
    return int(re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.MULTILINE).group(1)) * 1024


def out(client, code: str, session: str) -> str:
    msgs = client.run(code, session)
    errors = of_type(msgs, "error")
    assert not errors, errors[0]["content"]
    return stdout_of(msgs)


def test_session_processes_are_the_oom_killers_first_choice(device_with_client) -> None:
    """A worker and what it starts have oom_score_adj 1000; the device and its template
    keep the score they were started with (the broker ranked above a worker before)."""
    client, device = device_with_client()
    code = ("import subprocess\nprint(open('/proc/self/oom_score_adj').read().strip(), "
            "subprocess.run(['cat', '/proc/self/oom_score_adj'], capture_output=True, "
            "text=True).stdout.strip())")
    assert out(client, code, "s") == "1000 1000\n"
    ours = Path("/proc/self/oom_score_adj").read_text()
    for pid in (device.proc.pid, template_pid(device)):
        assert Path(f"/proc/{pid}/oom_score_adj").read_text() == ours


def test_the_default_budget_is_half_the_machine(device_with_client) -> None:
    _, device = device_with_client()
    device.wait_for_log(r"memory budget of all sessions together: [\d.]+ GiB")
    page = os.sysconf("SC_PAGE_SIZE")
    limit = int(budget_file(template_pid(device)).read_text())
    assert limit == machine_memory() // 2 // page * page


def test_sessions_together_cannot_pass_the_budget(device_with_client) -> None:
    """Two sessions, each well under its own --max-memory, hold more together than the
    device's budget: the OOM killer stops one of them, and the device goes on."""
    budget = 640 * MiB
    client, device = device_with_client("--memory-budget", str(budget),
                                        "--max-memory", str(1024 * MiB))
    assert int(budget_file(template_pid(device)).read_text()) == budget
    try:
        hold = "x = b'x' * (400 * 2**20)\nprint(len(x))"
        out(client, hold, "a")
        # This one or the first is stopped (which, the kernel chooses; now and then both).
        errors = of_type(client.run(hold, "b"), "error")
        assert not errors or errors[0]["content"]["ename"] == "MemoryLimitExceeded", errors
        after = {s: client.run("print(len(x))", s) for s in ("a", "b")}
        alive = [s for s, msgs in after.items() if stdout_of(msgs) == f"{400 * MiB}\n"]
        assert len(alive) < 2, "both sessions hold 400 MiB under a 640 MiB budget"
        for session in {"a", "b"} - set(alive):  # each stopped one says why in its next cell:
            said = stdout_of(after[session], "stderr")  # stopped before it, or while it ran
            died = [e["content"]["ename"] for e in of_type(after[session], "error")]
            assert "previous one ran out of memory" in said or died == ["MemoryLimitExceeded"], (
                session, said, died)
        assert out(client, "print('fresh')", "c") == "fresh\n"
    except AssertionError as e:  # which worker the kernel stopped, and what the device did
        raise AssertionError(f"{e}\n-- the device's log --\n{device.log}") from e


def test_the_budget_option_takes_a_share_or_bytes() -> None:
    from device.limits import memory_budget
    assert memory_budget("25%") == machine_memory() // 4
    assert memory_budget(" 1073741824 ") == 2**30 and memory_budget("0") == 0
    for wrong in ("abc", "150%", "0%", "-1", "1.5G"):
        with pytest.raises(ValueError, match=re.escape(repr(wrong.strip()))):
            memory_budget(wrong)
