"""The processes the comparison runs: cellbus (as ``bin/cellbus up``) and Jupyter Kernel Gateway.

Everything listens on 127.0.0.1 on a free port, runs in its own process group, logs into the
bench's work folder and is stopped in ``stop()`` (SIGTERM to the top process, which stops its
own children gracefully; then SIGKILL to the group and to every descendant seen while it ran).
Also: the Kernel Gateway's own venv, and /proc readings (CPU ticks per node, PSS).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: What the Kernel Gateway side installs; the anchors were measured with these.
JKG_PACKAGES = ["jupyter-kernel-gateway==3.0.1", "ipykernel==7.4.0"]

#: Started through this instead of ``python -m kernel_gateway`` for the TCP_NODELAY variant.
#: The installed gateway is not touched: the launcher patches tornado in memory first.
NODELAY_LAUNCHER = '''\
"""Written by bench/compare.py: Jupyter Kernel Gateway with TCP_NODELAY on every TCP socket."""
import socket
import sys

import tornado.iostream as iostream

_init = iostream.IOStream.__init__
_set_nodelay = iostream.IOStream.set_nodelay


def __init__(self, sock, *args, **kwargs):
    _init(self, sock, *args, **kwargs)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


def set_nodelay(self, value):  # tornado turns it off again after each HTTP response
    _set_nodelay(self, True)


iostream.IOStream.__init__ = __init__
iostream.IOStream.set_nodelay = set_nodelay

from kernel_gateway.gatewayapp import launch_instance  # noqa: E402

sys.exit(launch_instance())
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- /proc readings

def _stat(pid: int) -> tuple[int, int, int] | None:
    """(ppid, utime + stime in ticks, start time) of a live process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[19])


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            children.setdefault(st[0], []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_ticks(pids: dict[int, str]) -> dict[str, int]:
    """CPU ticks (user + system) used so far, summed per label."""
    out: dict[str, int] = {}
    for pid, label in pids.items():
        st = _stat(pid)
        if st is not None:
            out[label] = out.get(label, 0) + st[1]
    return out


def pids_of_uid(uid: int) -> list[int]:
    """Host pids of the processes running as ``uid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            uids = next((line.split()[1:] for line in status.splitlines()
                         if line.startswith("Uid:")), [])
            if uids and int(uids[0]) == uid:
                found.append(int(entry.name))
    return found


def smaps_total(pids: list[int]) -> dict[str, int]:
    """:func:`smaps_rollup` summed over ``pids`` (a session's processes)."""
    total = {"pss": 0, "rss": 0, "uss": 0}
    for pid in pids:
        for k, v in smaps_rollup(pid).items():
            total[k] += v
    return total


def smaps_rollup(pid: int) -> dict[str, int]:
    """Pss, Rss, and Uss (private clean + dirty) of a process, in bytes."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[-1] == "kB":
            values[name] = int(parts[0]) * 1024
    return {"pss": values["Pss"], "rss": values["Rss"],
            "uss": values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)}


# --------------------------------------------------------------------------- servers

class Server:
    """One system under test: its top process, log file and the pids seen under it."""

    name = "server"

    def __init__(self, work: Path, port: int) -> None:
        self.work, self.port = work, port
        self.proc: subprocess.Popen[bytes] | None = None
        self.seen: dict[int, int] = {}  # pid -> its start time, so a reused pid is left alone
        self.log_path = work / f"{self.name}.log"

    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items()
                if not k.startswith("CELLBUS_") and k not in ("VIRTUAL_ENV", "PYTHONPATH")}

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=self.env(),
                                         cwd=self.work, start_new_session=True)

    def check(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with status {self.proc.returncode}; "
                               f"the end of {self.log_path}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def processes(self) -> dict[int, str]:
        """pid -> label of the top process and every descendant alive now."""
        assert self.proc is not None
        pids = [self.proc.pid, *descendants(self.proc.pid)]
        for pid in pids:
            if (st := _stat(pid)) is not None:
                self.seen.setdefault(pid, st[2])
        return {pid: self.label(pid) for pid in pids}

    def label(self, pid: int) -> str:
        return self.name

    def stop(self, grace: float = 20.0) -> None:
        if self.proc is None:
            return
        try:
            self.processes()
        except Exception:
            pass
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        deadline = time.monotonic() + 5
        for pid, started in self.seen.items():  # kernels and workers in sessions of their own
            if pid == self.proc.pid:
                continue
            while (st := _stat(pid)) is not None and st[2] == started and \
                    time.monotonic() < deadline:
                time.sleep(0.05)
            if (st := _stat(pid)) is not None and st[2] == started:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class Cellbus(Server):
    """``bin/cellbus up`` with the embedded store in the work folder."""

    name = "cellbus"

    def __init__(self, work: Path, port: int) -> None:
        super().__init__(work, port)
        self.db = work / "bench.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.db}{suffix}").unlink(missing_ok=True)

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "cellbus", "up", "--port", str(self.port),
                "--store", f"sqlite:///{self.db}"]

    def env(self) -> dict[str, str]:
        # A state file of its own: an `up` already running here would refuse it as a second.
        return {**super().env(), "XDG_RUNTIME_DIR": str(self.work)}

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while "cellbus is up" not in self.log_path.read_text(errors="replace"):
            self.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"cellbus was not up in {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.05)

    def label(self, pid: int) -> str:
        assert self.proc is not None
        if pid == self.proc.pid:
            return "up.py"
        st = _stat(pid)
        if st is not None and st[0] == self.proc.pid:
            argv = cmdline(pid)
            return argv[argv.index("-m") + 1] if "-m" in argv[:-1] else "node"
        return "workers"  # forked by the device: its template and session workers


class KernelGateway(Server):
    """Jupyter Kernel Gateway from the bench's own venv; ``nodelay`` forces TCP_NODELAY."""

    def __init__(self, work: Path, port: int, venv: Path, nodelay: bool) -> None:
        self.name = "jkg-nodelay" if nodelay else "jkg"
        super().__init__(work, port)
        self.venv, self.nodelay = venv, nodelay

    def argv(self) -> list[str]:
        py = str(self.venv / "bin" / "python")
        if self.nodelay:
            launcher = self.work / "jkg_nodelay.py"
            launcher.write_text(NODELAY_LAUNCHER)
            head = [py, str(launcher)]
        else:
            head = [py, "-m", "kernel_gateway"]
        return [*head, "--KernelGatewayApp.ip=127.0.0.1", f"--KernelGatewayApp.port={self.port}",
                "--KernelGatewayApp.port_retries=0", "--KernelGatewayApp.auth_token="]

    def env(self) -> dict[str, str]:
        env = super().env()
        for var, sub in (("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTER_DATA_DIR", "data"),
                         ("JUPYTER_CONFIG_DIR", "config"), ("IPYTHONDIR", "ipython")):
            env[var] = str(self.work / "jkg-home" / sub)
        env["PATH"] = f"{self.venv / 'bin'}:{env.get('PATH', '')}"
        env["JUPYTER_PLATFORM_DIRS"] = "1"
        return env

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api", timeout=2) as r:
                    json.load(r)
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not answer in {timeout:.0f} s:\n"
                                       f"{self.log_tail()}") from None
                time.sleep(0.1)

    def label(self, pid: int) -> str:
        assert self.proc is not None
        return "gateway" if pid == self.proc.pid else "kernels"


# --------------------------------------------------------------------------- the JKG venv

def jkg_venv(work: Path, log=print) -> tuple[Path, dict[str, str]]:
    """Create (once) ``work/jkg-venv`` holding JKG_PACKAGES; returns it and its versions."""
    venv = work / "jkg-venv"
    stamp = venv / ".bench-installed"
    spec = " ".join(JKG_PACKAGES)
    py = venv / "bin" / "python"
    if not (stamp.exists() and stamp.read_text() == spec and py.exists()):
        log(f"bench: installing {spec} into {venv} (first run only; about a minute)")
        started = time.monotonic()
        subprocess.run([_base_python(), "-m", "venv",
                        "--clear", str(venv)], check=True)
        pip = [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        done = subprocess.run([*pip, *JKG_PACKAGES])
        if done.returncode != 0:
            log("bench: the pinned versions did not install; trying the newest ones")
            subprocess.run([*pip, *(p.split("==")[0] for p in JKG_PACKAGES)], check=True)
        stamp.write_text(spec)
        log(f"bench: installed in {time.monotonic() - started:.0f} s")
    probe = ("import json, importlib.metadata as m, sys; "
             "print(json.dumps({n: m.version(n) for n in ('jupyter-kernel-gateway', "
             "'ipykernel', 'jupyter_server', 'tornado', 'pyzmq')} | "
             "{'python': sys.version.split()[0]}))")
    versions = json.loads(subprocess.run([str(py), "-c", probe], check=True, capture_output=True,
                                         text=True).stdout)
    return venv, versions


def _base_python() -> str:
    """The interpreter the cellbus venv was made from (a venv of a venv works too)."""
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return str(base) if base.exists() else sys.executable
