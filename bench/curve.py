"""What CurveZMQ costs on the bus: the same measurements with CURVE on and off.

    python bench/curve.py [--trials N] [--seconds S] [--work DIR]

Two parts, each run with CURVE and without (``--insecure-bus``), over TCP on 127.0.0.1:

- raw ZeroMQ, PUSH to PULL in one process: one 226-byte frame, and a Jupyter-shaped message
  of 6 frames (delimiter, signature, four dicts), as many as go through in ``--seconds``;
- the whole chain (broker on SQLite, one device, one gateway, as separate processes): the
  warm round trip of ``print(2)`` over HTTP (POST evaluate, then update until done), and the
  throughput of 8 worksheets running ``print(2)`` back to back.

Prints a table and appends it to bench/RESULTS.md. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import zmq
import zmq.auth

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.drivers import CellbusHttp, clock  # noqa: E402
from bench.procs import free_port  # noqa: E402
from protocol.curve import make_certificate  # noqa: E402

SESSIONS = 8


def raw_rate(frames: list[bytes], curve: bool, seconds: float) -> float:
    """Messages of ``frames`` per second from a PUSH to a PULL over TCP."""
    ctx = zmq.Context()
    pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    if curve:
        server_public, server_secret = zmq.curve_keypair()
        pull.curve_secretkey, pull.curve_publickey = server_secret, server_public
        pull.curve_server = True
        push.curve_publickey, push.curve_secretkey = zmq.curve_keypair()
        push.curve_serverkey = server_public
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push.connect(f"tcp://127.0.0.1:{port}")
    push.send_multipart(frames)
    pull.recv_multipart()  # connected (and handshaken)
    stop = threading.Event()

    push.sndtimeo = 100

    def pump() -> None:
        while not stop.is_set():
            try:
                push.send_multipart(frames)
            except zmq.Again:
                pass

    sender = threading.Thread(target=pump)
    sender.start()
    got, start = 0, clock()
    while clock() - start < seconds:
        if pull.poll(100):
            pull.recv_multipart()
            got += 1
    elapsed = clock() - start
    stop.set()
    sender.join()
    pull.close(0)
    push.close(0)
    ctx.term()
    return got / elapsed


class Chain:
    """Broker, device and gateway on TCP loopback ports, with or without CURVE."""

    def __init__(self, work: Path, curve: bool) -> None:
        self.work, self.curve = work, curve
        key_file = work / "key"
        key_file.write_text(os.urandom(32).hex())
        keys = work / "curve"
        if curve:
            make_certificate(keys, "broker", "broker")
            make_certificate(keys, "device", "device")
            make_certificate(keys, "gateway", "gateway")
        eps = [f"tcp://127.0.0.1:{free_port()}" for _ in range(3)]
        self.port = free_port()
        common = ["--key-file", str(key_file)]

        def client(name: str) -> list[str]:
            if not curve:
                return ["--insecure-bus"]
            return ["--curve-key", str(keys / f"{name}.key_secret"),
                    "--broker-key", str(keys / "broker.key")]

        broker_keys = ["--curve-dir", str(keys)] if curve else ["--insecure-bus"]
        self.procs = [
            self._start("broker", "--store", f"sqlite:///{work / 'cellbus.db'}",
                        "--gateway-bind", eps[0], "--device-bind", eps[1],
                        "--publish-bind", eps[2], *broker_keys, *common),
            self._start("device", "--connect", eps[1], "--device-id", "device",
                        *client("device"), *common),
            self._start("gateway", "--port", str(self.port), "--broker", eps[0],
                        "--subscribe", eps[2], *client("gateway"), *common),
        ]

    def _start(self, *argv: str) -> subprocess.Popen[bytes]:
        log = open(self.work / f"{argv[0]}.log", "wb")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        return subprocess.Popen([sys.executable, "-m", "cellbus", *argv], stdout=log,
                                stderr=subprocess.STDOUT, env=env, cwd=ROOT)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                client = CellbusHttp(self.port, "ready")
                client.execute("1")
                client.close()
                return
            except (OSError, RuntimeError):
                time.sleep(0.2)
        raise RuntimeError(f"the chain did not answer in {timeout} s; logs in {self.work}")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def warm_round_trip(port: int, trials: int) -> list[float]:
    client = CellbusHttp(port, "warm")
    client.execute("print(2)")
    times = [client.execute("print(2)")[0] for _ in range(trials)]
    client.close()
    return times


def throughput(port: int, seconds: float) -> float:
    clients = [CellbusHttp(port, f"tp{i}") for i in range(SESSIONS)]
    for c in clients:
        c.execute("print(2)")  # warm: each worksheet's session is open
    done = [0] * SESSIONS
    end = clock() + seconds

    def drive(i: int) -> None:
        while clock() < end:
            clients[i].execute("print(2)")
            done[i] += 1

    threads = [threading.Thread(target=drive, args=(i,)) for i in range(SESSIONS)]
    start = clock()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clients:
        c.close()
    return sum(done) / (clock() - start)


def ms(values: list[float]) -> str:
    return (f"{statistics.median(values) * 1000:.2f} ms "
            f"({statistics.quantiles(values, n=10)[-1] * 1000:.2f} ms)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=200, help="warm round trips per mode")
    p.add_argument("--seconds", type=float, default=5.0, help="each throughput window")
    p.add_argument("--rounds", type=int, default=4, help="interleaved rounds, off then on")
    p.add_argument("--work", type=Path, default=None, help="scratch folder (a temporary one)")
    args = p.parse_args()
    one = [os.urandom(113).hex().encode()]  # 226 bytes
    jupyter = [b"<IDS|MSG>", os.urandom(32).hex().encode(), os.urandom(120),
               os.urandom(90), os.urandom(20), os.urandom(200)]
    rows: dict[str, dict[bool, str]] = {}
    for curve in (False, True):
        rows.setdefault("raw ZeroMQ, one 226-byte frame, PUSH → PULL", {})[curve] = \
            f"{raw_rate(one, curve, args.seconds) / 1000:.1f}k msg/s"
        rows.setdefault("raw ZeroMQ, Jupyter-shaped message of 6 frames", {})[curve] = \
            f"{raw_rate(jupyter, curve, args.seconds) / 1000:.1f}k msg/s"
    chains = {curve: Chain(Path(tempfile.mkdtemp(prefix="cb-curve-", dir=args.work)), curve)
              for curve in (False, True)}
    trips: dict[bool, list[float]] = {False: [], True: []}
    rates: dict[bool, list[float]] = {False: [], True: []}
    try:
        for chain in chains.values():
            chain.wait_ready()
        for _ in range(args.rounds):  # interleaved, so the machine's noise hits both alike
            for curve, chain in chains.items():
                trips[curve] += warm_round_trip(chain.port, args.trials // args.rounds)
                rates[curve].append(throughput(chain.port, args.seconds))
    finally:
        for chain in chains.values():
            chain.stop()
    for curve in (False, True):
        rows.setdefault("chain: warm round trip, HTTP, print(2): median (p90)", {})[curve] = \
            ms(trips[curve])
        rows.setdefault(f"chain: throughput, {SESSIONS} worksheets, print(2) back to back "
                        f"(median of {args.rounds} windows of {args.seconds:g} s)", {})[curve] = \
            f"{statistics.median(rates[curve]):.0f}/s"
    table = ["| measurement | CURVE off (--insecure-bus) | CURVE on |", "|---|---|---|"]
    table += [f"| {what} | {by[False]} | {by[True]} |" for what, by in rows.items()]
    text = "\n".join(table)
    print(text)
    with open(ROOT / "bench" / "RESULTS.md", "a") as out:
        out.write(f"\n## CurveZMQ on the bus, on and off (bench/curve.py, "
                  f"{time.strftime('%Y-%m-%d')}, load average {os.getloadavg()[0]:.1f} "
                  f"on {os.cpu_count()} cores)\n\n{text}\n")


if __name__ == "__main__":
    main()
