"""The broker alone at its ceiling: executions per second when it is the bottleneck.

    .venv/bin/python bench/broker_ceiling.py [--seconds S] [--rounds R] [--worksheets K]
                                             [--inflight N]

Starts a real broker (``python -m broker``: a SQLite store in a fresh folder, ``ipc://``
endpoints, a fresh key) and drives it from this process as a gateway and a device would,
over its real sockets: signed ``execute_request`` messages on its gateway port, as the
gateway's ``BrokerLink.request`` sends them, for K worksheets; and, as one device with
room for every session, for each request the burst a worker's ``print(2)`` makes (status
busy, execute_input, stream, execute_reply, status idle), numbered for the outbox receipts
and sent as one ``records`` bundle, as ``device/outbox.py`` does. Up to N executions are kept
in flight, counted done when the broker's ``output_ack`` says their burst is stored. No
gateway, device or worker processes run, so what is measured is the broker's own work per
execution: storing the request and the five outputs, placing, handing out, publishing.

Per round: S seconds of load, then executions per second and the broker's CPU per execution
by thread (main, the store's writer, ZeroMQ's I/O), read from ``/proc/PID/task``. The driver
runs on the same 2 cores; its own CPU per execution is printed too, so a reader sees how
much of the machine the broker had.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from protocol import msgtypes as mt  # noqa: E402
from protocol import records  # noqa: E402
from protocol.config import generate_key  # noqa: E402
from protocol.version import VERSION  # noqa: E402
from protocol.wire import Session  # noqa: E402

DEVICE = "bench-device"
TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of ``pid``'s main thread, ZeroMQ's threads, and the rest (the store's
    writer and readers: Python names no thread for the OS)."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        label = "main" if task.name == str(pid) else (
            "zmq I/O" if name.startswith("ZMQbg/") else "store")
        out[label] = out.get(label, 0.0) + (int(fields[11]) + int(fields[12])) / TICK
    return out


class Driver:
    """A gateway's requests and a device's answers on one event loop (module docstring)."""

    def __init__(self, key: bytes, run: Path, worksheets: int, inflight: int) -> None:
        self.wire = Session(key)
        self.ctx = zmq.asyncio.Context()
        self.gateway = self.ctx.socket(zmq.DEALER)
        self.gateway.connect(f"ipc://{run / 'gw'}")
        self.device = self.ctx.socket(zmq.DEALER)
        self.device.routing_id = DEVICE.encode()
        self.device.connect(f"ipc://{run / 'dev'}")
        self.worksheets, self.inflight = worksheets, inflight
        self.epoch, self.numbered = uuid.uuid4().hex, 0
        self.sessions: set[str] = set()
        self.sent = self.stored = 0
        self.room = asyncio.Event()

    def status(self) -> dict[str, Any]:
        return {"device": DEVICE, "capacity": 100_000, "load": len(self.sessions),
                "sessions": sorted(self.sessions), "requests": [], "draining": False,
                "outbox": 0, "rejected": 0, "version": VERSION}

    async def control(self, msg_type: str) -> None:
        await self.device.send_multipart(self.wire.serialize(self.wire.msg(
            msg_type, self.status(), metadata={"cellbus": {"device": DEVICE}})))

    async def heartbeats(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            await self.control(mt.DEVICE_HEARTBEAT)

    async def answer(self) -> None:
        """The device: each request gets its worker's burst in one bundle."""
        while True:
            _, msg = self.wire.deserialize(await self.device.recv_multipart())
            if msg["msg_type"] == mt.OUTPUT_ACK:
                self.stored = msg["content"]["stored"] // 5
                self.room.set()
                continue
            if msg["msg_type"] != mt.EXECUTE_REQUEST:
                continue
            facts = msg["metadata"]["cellbus"]
            self.sessions.add(facts["session"])
            burst = [(mt.STATUS, {"execution_state": "busy"}),
                     (mt.EXECUTE_INPUT, {"code": msg["content"].get("code", ""),
                                         "execution_count": 1}),
                     (mt.STREAM, {"name": "stdout", "text": "2\n"}),
                     (mt.EXECUTE_REPLY, {"status": "ok", "execution_count": 1}),
                     (mt.STATUS, {"execution_state": "idle"})]
            frames = []
            for msg_type, content in burst:
                self.numbered += 1
                header = self.wire.msg_header(msg_type)
                header["session"] = facts["session"]
                frames.append(self.wire.serialize(self.wire.msg(
                    msg_type, content, parent=msg, header=header,
                    metadata={"cellbus": {**facts, "device": DEVICE,
                                          "out": [self.epoch, self.numbered]}})))
            await self.device.send_multipart(records.bundle(self.wire, frames))

    async def requests(self) -> None:
        """The gateway: execute_requests round-robin over the worksheets, N in flight."""
        replies = asyncio.ensure_future(self._replies())
        try:
            while True:
                while self.sent - self.stored >= self.inflight:
                    self.room.clear()
                    await self.room.wait()
                n = self.sent
                self.sent += 1
                msg = self.wire.msg(mt.EXECUTE_REQUEST, {
                    "code": "print(2)", "silent": False, "store_history": True,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
                    metadata={"cellbus": {"user": "bench", "worksheet": f"w{n % self.worksheets}",
                                          "cell_id": str(n), "auth": "none"}})
                await self.gateway.send_multipart(self.wire.serialize(msg))
        finally:
            replies.cancel()

    async def _replies(self) -> None:
        while True:
            self.wire.deserialize(await self.gateway.recv_multipart())

    def close(self) -> None:
        self.gateway.close(0)
        self.device.close(0)
        self.ctx.term()


async def measure(driver: Driver, broker: int, seconds: float, rounds: int) -> None:
    loops = [asyncio.ensure_future(c) for c in (driver.heartbeats(), driver.answer(),
                                                driver.requests())]
    await driver.control(mt.DEVICE_REGISTER)
    await asyncio.sleep(3)  # sessions placed, caches warm
    me = os.getpid()
    rates: list[float] = []
    print("| round | exec/s | broker ms/exec: main, store threads, ZeroMQ I/O, all "
          "| driver ms/exec |")
    print("|---|---|---|---|")
    try:
        for r in range(rounds):
            done0, t0 = driver.stored, time.monotonic()
            cpu0, mine0 = thread_cpu(broker), thread_cpu(me)
            await asyncio.sleep(seconds)
            done, took = driver.stored - done0, time.monotonic() - t0
            cpu1, mine1 = thread_cpu(broker), thread_cpu(me)
            per = {k: (cpu1.get(k, 0) - cpu0.get(k, 0)) / max(done, 1) * 1e3 for k in cpu1}
            mine = (sum(mine1.values()) - sum(mine0.values())) / max(done, 1) * 1e3
            rates.append(done / took)
            print(f"| {r + 1} | {done / took:.0f} | {per.get('main', 0):.2f}, "
                  f"{per.get('store', 0):.2f}, {per.get('zmq I/O', 0):.2f}, "
                  f"{sum(per.values()):.2f} | {mine:.2f} |", flush=True)
    finally:
        for loop in loops:
            loop.cancel()
    print(f"\nmedian {statistics.median(rates):.0f} exec/s; load average "
          f"{Path('/proc/loadavg').read_text().split()[0]}")


def stop(broker: subprocess.Popen[bytes]) -> None:
    if broker.poll() is None:
        broker.send_signal(signal.SIGTERM)
        try:
            broker.wait(20)
        except subprocess.TimeoutExpired:
            broker.kill()


def main() -> int:
    p = argparse.ArgumentParser(prog="bench/broker_ceiling.py",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=5.0, help="length of one round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--worksheets", type=int, default=32, help="sessions the load spreads over")
    p.add_argument("--inflight", type=int, default=64, help="executions in flight at most")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="cellbus-ceiling-") as tmp:
        run = Path(tmp)
        generate_key(run / "bus.key")
        broker = subprocess.Popen(
            [sys.executable, "-m", "broker", "--key-file", str(run / "bus.key"),
             "--log-level", "WARNING", "--store", f"sqlite:///{run / 'store.db'}",
             "--gateway-bind", f"ipc://{run / 'gw'}", "--device-bind", f"ipc://{run / 'dev'}",
             "--publish-bind", f"ipc://{run / 'pub'}"],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            deadline = time.monotonic() + 30
            while not (run / "pub").exists():
                if broker.poll() is not None or time.monotonic() > deadline:
                    print("the broker did not start", file=sys.stderr)
                    return 1
                time.sleep(0.05)
            print(f"broker alone, {args.worksheets} worksheets, {args.inflight} executions "
                  f"in flight, {args.rounds} x {args.seconds:g} s\n")
            driver = Driver((run / "bus.key").read_bytes().strip(), run, args.worksheets,
                            args.inflight)
            try:
                asyncio.run(measure(driver, broker.pid, args.seconds, args.rounds))
            finally:
                stop(broker)  # first: the device leaving now would make it log warnings
                driver.close()
        finally:
            stop(broker)
    return 0


if __name__ == "__main__":
    sys.exit(main())
