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


#: Options for a device of at most 3 workers at once (2 sessions and 1 ready), one kernel.
THREE_WORKERS = ("--max-sessions", "2", "--prefork", "1", "--kernels", "python")
#: Run in a cell: four child processes hold 130 MiB each at once (each one smaller than the
#: other session's worker), then the exit statuses of the four.
SPREAD = """
import os, time
pids = []
for i in range(4):
    pid = os.fork()
    if pid == 0:
        x = b'x' * (130 * 2**20)
        time.sleep(3)
        os._exit(0)
    pids.append(pid)
print([os.waitpid(pid, 0)[1] for pid in pids])
"""


def test_a_session_within_its_limit_is_not_stopped_for_anothers_memory(
        device_with_client) -> None:
    """Each worker's cgroup gets the budget split among the device's workers, so their limits
    together never pass it: before, with a 640 MiB budget and 1 GiB a session, session a held
    150 MiB, well within its own limit, and session b's four processes of 130 MiB each took
    the budget past its limit; the kernel stopped the biggest process of the budget, a's
    worker. Now b's processes hit b's own limit, and a keeps its memory."""
    budget = 640 * MiB
    client, device = device_with_client("--memory-budget", str(budget),
                                        "--max-memory", str(1024 * MiB), *THREE_WORKERS)
    device.wait_for_log(r"each session's memory: 213\.333 MiB \(--max-memory 1 GiB for "
                        r"each of up to 3 workers is more than --memory-budget 640 MiB")
    try:
        out(client, "x = b'x' * (150 * 2**20)\nimport os\nprint(os.getpid())", "a")
        client.run(SPREAD, "b", timeout=60)  # its processes are stopped, or b is
        assert out(client, "print(len(x))", "a") == f"{150 * MiB}\n"
    except AssertionError as e:  # what the kernel stopped, and what the device did
        raise AssertionError(f"{e}\n-- the device's log --\n{device.log}") from e


def test_the_sessions_limits_add_up_to_the_budget_at_most(device_with_client) -> None:
    """Each worker's cgroup limit (the session's and the ready one's), times the device's
    most workers, is within the budget: 4 GiB each before."""
    budget = 900 * MiB
    client, device = device_with_client("--memory-budget", str(budget), *THREE_WORKERS)
    out(client, "print(1)", "a")
    template = template_pid(device)
    groups = budget_file(template).parent
    limits = [int((g / budget_file(template).name).read_text()) for g in groups.iterdir()
              if g.is_dir() and g.name.startswith("w")]
    assert limits and all(limit == 300 * MiB for limit in limits), limits


def test_a_budget_too_small_for_the_workers_says_it_is_oversold() -> None:
    """A budget that leaves a worker less than 128 MiB gives each that much, and says that
    the bound then cannot hold (a device of 1,100 places on a small machine still starts)."""
    from device.fit import MIN_SESSION_MEMORY, fit
    from device.limits import Limits
    limits, said = fit(Limits(), 22, 1024 * MiB, 0)
    assert limits.session_memory == MIN_SESSION_MEMORY and said[0].startswith(
        "WARNING: --memory-budget 1 GiB leaves each of up to 22 workers")
    assert "a session may then be stopped for another's memory" in said[0]
    limits, said = fit(Limits(), 4, 64 * 2**30, 0)
    assert limits == Limits() and said == []  # 16 GiB each: --max-memory's 4 GiB holds
    limits, said = fit(Limits(memory_bytes=64 * MiB), 22, 1024 * MiB, 0)  # 46.5 MiB each
    assert limits.session_memory == 64 * MiB and "each gets 64 MiB" in said[0]


def test_the_budget_option_takes_a_share_or_bytes() -> None:
    from device.limits import memory_budget
    assert memory_budget("25%") == machine_memory() // 4
    assert memory_budget(" 1073741824 ") == 2**30 and memory_budget("0") == 0
    for wrong in ("abc", "150%", "0%", "-1", "1.5G"):
        with pytest.raises(ValueError, match=re.escape(repr(wrong.strip()))):
            memory_budget(wrong)
