"""``bin/cellbus up``: the whole system on this machine, each node its own process.

Starts a broker (embedded SQLite store unless --store says otherwise), N devices and a
gateway, all signed with a freshly generated key (mode 0600) in a private runtime directory
whose ipc endpoints only this user can open. Prints the URL. Ctrl-C, SIGTERM or a closed
terminal (SIGHUP) stops the gateway, then the devices (draining), then the broker, each
gracefully; if any node dies, the rest are stopped too and the exit status says so. The
nodes run in process groups of their own, so a terminal's Ctrl-C reaches `up` alone (not
every node at once, the broker first among them), and each node dies with `up` (so ``kill
-9`` of `up` or of its group takes them all, as a crash of the machine would). While it
runs, its endpoints and key file are in a state file (mode 0600) that ``bin/cellbus status``
reads: ``$XDG_RUNTIME_DIR/cellbus/up.json``, else ``/tmp/cellbus-$UID/up.json``.

Restarts. The store (``--store``, else the default file in the data directory) is the same
for every run, and ``--key-file PATH`` keeps the key too: after any stop, even ``kill -9`` of
the whole process group, ``up`` started again on the same store finishes what was accepted
(requests that were running end with a ``DeviceLost`` error, waiting ones run) and goes on.
"""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from broker.status import ask, remove_state, running_up, write_state
from gateway.__main__ import add_access_options
from gateway.access import make_policy
from broker.quotas import add_quota_options
from broker.retention import DEFAULT_TEXT, parse_duration
from broker.store import CONNECT_TIMEOUT
from device.__main__ import EXEC_TIMEOUT, IDLE_TIMEOUT
from device.linux import PR_SET_PDEATHSIG, prctl
from device.draining import DRAIN_TIMEOUT
from protocol.config import (LOG_LEVELS, add_option, generate_key, load_key, log_level, parse_args,
                             plain, tcp_port)
from protocol.errors import ConfigError, address_in_use
from protocol.numbers import count, positive_seconds, seconds

from .upplan import metrics_ports, node_refusal, plan

STOP_GRACE = 15.0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cellbus up", description=plain(__doc__.split("\n\n")[1]),
        epilog="Every node it starts also reads its options from CELLBUS_* variables, which "
               "is how to give them one `up` has no flag for (`bin/cellbus device --help` "
               "lists a device's): a session backend of your own, say, as "
               "CELLBUS_KERNELS=python,calc=mymodule:Calc PYTHONPATH=DIR bin/cellbus up.")
    add_option(p, "--host", default="127.0.0.1", node="gateway",
               help="address the gateway listens on")
    add_option(p, "--port", type=tcp_port, default=8888, node="gateway",
               help="the gateway's port (0: a free one, named in the URL)")
    add_option(p, "--store", metavar="URL",
               help="store URL; default a SQLite file in your data directory. A MongoDB "
                    f"server that gives no answer within {CONNECT_TIMEOUT:g} s stops `up` "
                    "(the broker tries once: its --store-wait 0)")
    add_option(p, "--devices", type=count, default=1, metavar="N", help="devices to start")
    add_option(p, "--exec-timeout", type=seconds, metavar="S",
               help="wall-clock seconds one execution may run; 0: no limit (default: "
                    f"{EXEC_TIMEOUT:g} with --auth token, else no limit)")
    add_option(p, "--idle-timeout", type=positive_seconds, default=IDLE_TIMEOUT, metavar="S",
               help="seconds an idle session worker lives")
    add_option(p, "--log-level", default="INFO", type=log_level, choices=LOG_LEVELS,
               help="log verbosity of every node (any case)")
    add_option(p, "--key-file", metavar="PATH",
               help="deployment key to sign the bus with, created (mode 0600) if missing, so "
                    "a restarted `up` and nodes started by hand share it; default a fresh key "
                    "for each run, removed when it stops")
    add_option(p, "--retention", type=parse_duration, default=DEFAULT_TEXT, node="broker",
               metavar="DURATION", help="as for the broker: how long finished sessions' "
               "messages stay whole before they are compacted (0 or off: never)")
    add_option(p, "--drain-timeout", type=seconds, default=DRAIN_TIMEOUT, metavar="S",
               help="as for devices: on stop, seconds running cells get to finish")
    add_option(p, "--metrics-port", type=tcp_port, default=0, metavar="PORT",
               help="serve the broker's Prometheus metrics on http://127.0.0.1:PORT/metrics "
                    "and device N's (from 0) on PORT+1+N; the gateway's are at its own "
                    "/metrics. 0: off")
    add_quota_options(p, by_auth=True)
    add_access_options(p)
    return p


def bind_error(host: str, port: int) -> OSError | None:
    """What binding the gateway's address (or a metrics port) would fail with now (None:
    nothing): found out before any node starts, so the answer is one line, not a node that
    dies and a supervisor that explains it."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        return None  # the gateway says what is wrong with the host
    for family, kind, proto, _, addr in infos:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as tornado binds
            try:
                s.bind(addr)
            except OSError as e:
                return e
    return None


def free_port(host: str) -> int:
    """A port free on ``host`` now, for ``--port 0``: the gateway is started on it and the
    URL names it (a node started on its own with ``--port 0`` says its port in its log)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def refusal(args: argparse.Namespace) -> str | None:
    """The line `up` stops with before it starts anything: another `up` runs (its state file
    would be replaced, and removed when this one stops), or the gateway's port is taken.
    None: it may start."""
    other = running_up()
    if other is not None:
        return (f"cellbus up: another `up` (pid {other['pid']}) runs, at {other.get('url')}; "
                "stop it first, or give this one a state directory, a port and a store of its "
                "own (XDG_RUNTIME_DIR=DIR bin/cellbus up --port 8889 --store "
                "sqlite:///DIR/cellbus.db; `bin/cellbus status --state DIR/cellbus/up.json` "
                "then reads it)")
    error = bind_error(args.host, args.port)
    if error is not None and error.errno == errno.EADDRINUSE:
        return str(address_in_use("cellbus up", f"port {args.port} on {args.host}", "--port"))
    if error is not None:
        return (f"cellbus up: the gateway cannot listen on {args.host} port {args.port}: "
                f"{error.strerror or error} (--host names an address of this machine)")
    for name, port in metrics_ports(args).items():
        if port > 65535:
            return (f"cellbus up: --metrics-port {args.metrics_port} leaves no port for the "
                    f"metrics of {name} ({port}); choose a lower one")
        error = bind_error("127.0.0.1", port)
        if port == args.port or (error is not None and error.errno == errno.EADDRINUSE):
            return str(address_in_use("cellbus up", f"port {port} (the metrics of {name})",
                                      "--metrics-port"))
        if error is not None:
            return (f"cellbus up: the metrics of {name} cannot be served on port {port}: "
                    f"{error.strerror or error} (--metrics-port)")
    return None


def node_child_setup(up: int) -> None:
    """Run in each node's process before it execs: a process group of its own, out of the
    terminal's reach (its signals are for `up`, which stops the nodes in order), and SIGKILL
    when `up` dies."""
    os.setpgid(0, 0)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != up:  # `up` died before the line above: nobody would stop this node
        os._exit(1)


class Supervisor:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.run_dir = Path(tempfile.mkdtemp(prefix="cellbus-up-"))
        self.key_file = (Path(args.key_file).absolute() if args.key_file
                         else self.run_dir / "bus.key")
        if not self.key_file.exists():
            generate_key(self.key_file)
        self.ep = {name: f"ipc://{self.run_dir / name}" for name in ("gw", "dev", "pub")}
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.stopping = False

    def start(self, name: str, module: str, *argv: str) -> None:
        cmd = [sys.executable, "-m", module, "--key-file", str(self.key_file),
               "--log-level", self.args.log_level, *argv]
        # CELLBUS_* variables reach the nodes: that is how options `up` does not have (a
        # device's --max-sessions, say) are set. What `up` passes on the command line wins.
        up = os.getpid()
        self.procs.append((name, subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                                  preexec_fn=lambda: node_child_setup(up))))

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
                    raise SystemExit(
                        f"cellbus up: the gateway is not listening on port {port}") from None
                time.sleep(0.05)

    def wait_for_devices(self, timeout: float = 60.0) -> None:
        """Until every device has registered with the broker (their start-up lines are then
        printed, and the URL that follows is the last line), or ``timeout``."""
        names = {f"{os.uname().nodename}-{i}" for i in range(self.args.devices)}
        key = load_key(self.key_file)  # its first line during a rotation
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            try:
                status = ask(self.ep["gw"], key, timeout=2)
            except (ConnectionError, OSError):
                continue
            if names <= {d["device"] for d in status.get("devices") or [] if d.get("alive")}:
                return
            time.sleep(0.1)
        say(f"cellbus up: not every device registered in {timeout:.0f} s; starting anyway")

    def check(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None and not self.stopping:
                raise SystemExit(f"cellbus up: {name} exited with status {proc.returncode}; "
                                 "stopping the rest")

    def run(self) -> int:
        a = self.args
        token = make_policy(host=a.host, port=a.port, auth=a.auth,
                            allow_anonymous=a.allow_anonymous).auth == "token"
        for name, module, argv in plan(a, self.ep, token=token):
            self.start(name, module, *argv)
            if name == "broker":  # the other nodes connect to its sockets
                for socket_name in ("gw", "dev", "pub"):
                    self.wait_for_socket(socket_name)
        self.wait_for_port(a.host, a.port)
        self.wait_for_devices()
        host = f"[{a.host}]" if ":" in a.host else a.host
        url = f"{'https' if a.tls_cert else 'http'}://{host}:{a.port}/"
        try:
            write_state({"url": url, "broker": self.ep["gw"], "subscribe": self.ep["pub"],
                         "device_bind": self.ep["dev"], "key_file": str(self.key_file)})
        except (OSError, ConfigError) as e:
            print(f"cellbus up: `bin/cellbus status` will need --broker and --key-file: {e}",
                  file=sys.stderr, flush=True)
        print(f"\n    cellbus is up: {url}  (Ctrl-C stops it)\n", flush=True)
        if token:
            store = f" --store {a.store}" if a.store else ""
            print(f"it needs tokens: `bin/cellbus user add NAME{store}` makes one; open "
                  f"{url}?token=TOKEN once in a browser", flush=True)
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
                try:  # devices get their drain timeout on top
                    proc.wait(STOP_GRACE + (self.args.drain_timeout if group == "device" else 0))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        shutil.rmtree(self.run_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(parser(), argv)
    try:  # the gateway would refuse these; say so before starting anything
        make_policy(host=args.host, port=args.port, auth=args.auth,
                    allow_anonymous=args.allow_anonymous, origins=args.allow_origin,
                    hosts=args.allow_host, rate=args.rate, proxies=args.trusted_proxy)
    except ConfigError as e:
        print(f"cellbus up: {e}", file=sys.stderr, flush=True)
        return 2
    if args.store:  # the broker would refuse it: say so before starting anything
        from broker.store import UnknownStore, open_store
        try:
            open_store(args.store)
        except UnknownStore as e:
            print(f"cellbus up: --store: {e}", file=sys.stderr, flush=True)
            return 2
    token = make_policy(host=args.host, port=args.port, auth=args.auth,
                        allow_anonymous=args.allow_anonymous).auth == "token"
    if (why := node_refusal(args, token=token) or refusal(args)) is not None:
        print(why, file=sys.stderr, flush=True)
        return 2
    if args.port == 0:
        args.port = free_port(args.host)
    supervisor = Supervisor(args)

    def on_signal(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # SIGINT too: a background job of a script, nohup and some supervisors start `up` with
    # SIGINT ignored, and Python then never turns it into KeyboardInterrupt.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    status = 0
    try:
        supervisor.run()
    except KeyboardInterrupt:
        say("cellbus up: stopping the gateway, then the devices (cells running get "
            f"{args.drain_timeout:g} s to finish), then the broker")
    except SystemExit as e:
        say(str(e))
        status = 1
    finally:
        said: list[int] = []

        def stopping(signum: int, frame: object) -> None:
            """A second Ctrl-C must not orphan nodes; it was ignored without a word, and
            `up` seemed stuck for the drain's seconds."""
            if not said:
                said.append(signum)
                say(f"cellbus up: still stopping, in order (cells running get up to "
                    f"{args.drain_timeout:g} s to finish); Ctrl-C again does not hurry it")

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, stopping)
        supervisor.stop()
    return status


def say(line: str) -> None:
    """Print to stderr, which may be a terminal already closed (SIGHUP): stopping goes on."""
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
