"""``bin/cellbus up``: the whole system on this machine, each node its own process.

Starts a broker (embedded SQLite store unless --store says otherwise), N devices and a
gateway, all signed with a freshly generated key (mode 0600) in a private runtime directory
whose ipc endpoints only this user can open. Prints the URL. Ctrl-C or SIGTERM stops the
gateway, then the devices, then the broker, each gracefully; if any node dies, the rest are
stopped too and the exit status says so. While it runs, its endpoints and key file are in a
state file (mode 0600) that ``bin/cellbus status`` reads: ``$XDG_RUNTIME_DIR/cellbus/up.json``,
else ``/tmp/cellbus-$UID/up.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from broker.status import remove_state, write_state  # noqa: E402
from protocol.config import add_option, generate_key  # noqa: E402
from protocol.errors import ConfigError  # noqa: E402

STOP_GRACE = 15.0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cellbus up", description=__doc__.split("\n\n")[1])
    add_option(p, "--host", default="127.0.0.1", node="gateway", help="address the gateway listens on")
    add_option(p, "--port", type=int, default=8888, node="gateway", help="the gateway's port")
    add_option(p, "--store", metavar="URL",
               help="store URL; default a SQLite file in your data directory")
    add_option(p, "--devices", type=int, default=1, metavar="N", help="devices to start")
    add_option(p, "--exec-timeout", type=float, default=0.0, metavar="S",
               help="wall-clock seconds one execution may run; 0: no limit")
    add_option(p, "--idle-timeout", type=float, default=60.0, metavar="S",
               help="seconds an idle session worker lives")
    add_option(p, "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
               help="log verbosity of every node")
    return p


class Supervisor:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.run_dir = Path(tempfile.mkdtemp(prefix="cellbus-up-"))
        self.key_file = self.run_dir / "bus.key"
        generate_key(self.key_file)
        self.ep = {name: f"ipc://{self.run_dir / name}" for name in ("gw", "dev", "pub")}
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.stopping = False

    def start(self, name: str, module: str, *argv: str) -> None:
        cmd = [sys.executable, "-m", module, "--key-file", str(self.key_file),
               "--log-level", self.args.log_level, *argv]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CELLBUS_")}
        self.procs.append((name, subprocess.Popen(cmd, stdin=subprocess.DEVNULL, env=env)))

    def wait_for_socket(self, name: str, timeout: float = 30.0) -> None:
        path = self.run_dir / name
        deadline = time.monotonic() + timeout
        while not path.exists():
            self.check()
            if time.monotonic() > deadline:
                raise SystemExit(f"cellbus up: the broker did not open {path} in {timeout:.0f} s")
            time.sleep(0.02)

    def wait_for_port(self, host: str, port: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection((host if host not in ("0.0.0.0", "::") else "127.0.0.1",
                                          port), timeout=1).close()
                return
            except OSError:
                self.check()
                if time.monotonic() > deadline:
                    raise SystemExit(f"cellbus up: the gateway is not listening on port {port}")
                time.sleep(0.05)

    def check(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None and not self.stopping:
                raise SystemExit(f"cellbus up: {name} exited with status {proc.returncode}; "
                                 "stopping the rest")

    def run(self) -> int:
        a = self.args
        broker = ["--gateway-bind", self.ep["gw"], "--device-bind", self.ep["dev"],
                  "--publish-bind", self.ep["pub"]]
        self.start("broker", "broker", *broker, *(["--store", a.store] if a.store else []))
        for name in ("gw", "dev", "pub"):
            self.wait_for_socket(name)
        for i in range(a.devices):
            self.start(f"device{i}", "device", "--connect", self.ep["dev"],
                       "--device-id", f"{os.uname().nodename}-{i}",
                       "--exec-timeout", str(a.exec_timeout), "--idle-timeout", str(a.idle_timeout))
        self.start("gateway", "gateway", "--broker", self.ep["gw"], "--subscribe", self.ep["pub"],
                   "--host", a.host, "--port", str(a.port))
        self.wait_for_port(a.host, a.port)
        host = f"[{a.host}]" if ":" in a.host else a.host
        url = f"http://{host}:{a.port}/"
        try:
            write_state({"url": url, "broker": self.ep["gw"], "subscribe": self.ep["pub"],
                         "device_bind": self.ep["dev"], "key_file": str(self.key_file)})
        except (OSError, ConfigError) as e:
            print(f"cellbus up: `bin/cellbus status` will need --broker and --key-file: {e}",
                  file=sys.stderr, flush=True)
        print(f"cellbus is up: {url}  (Ctrl-C stops it)", flush=True)
        while True:
            self.check()
            time.sleep(0.2)

    def stop(self) -> None:
        """Gateway first (no new work), then devices, then the broker (which drains)."""
        self.stopping = True
        remove_state()
        for group in ("gateway", "device", "broker"):
            procs = [p for name, p in self.procs if name.startswith(group)]
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(STOP_GRACE)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        shutil.rmtree(self.run_dir, ignore_errors=True)


def main() -> int:
    args = parser().parse_args()
    supervisor = Supervisor(args)

    def on_signal(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    status = 0
    try:
        supervisor.run()
    except KeyboardInterrupt:
        print("cellbus up: stopping", file=sys.stderr, flush=True)
    except SystemExit as e:
        print(e, file=sys.stderr, flush=True)
        status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not orphan nodes
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        supervisor.stop()
    return status


if __name__ == "__main__":
    sys.exit(main())
