"""First output of a new session against a warm round trip, on one device.

Starts a real device (as `bin/cellbus device` would) behind a signed DEALER standing in for
the broker, then times `print(2)` -> its stream message, for new sessions (each taking a
preforked worker) and for a warm session, with the session sandbox on and off (two devices),
interleaved so machine noise hits every row alike. Prints medians, p90 and the ratios; with
``--write`` also keeps them in bench/RESULTS.md (a section ``bin/cellbus bench`` keeps).
Run: .venv/bin/python bench/session_start.py [trials] [--write]
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import zmq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from protocol import Session  # noqa: E402
from protocol.config import generate_key  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
import report  # noqa: E402


def start_device(key_file: Path, bus: Session, ctx: zmq.Context, trials: int,
                 *options: str) -> tuple[subprocess.Popen[bytes], zmq.Socket]:
    sock = ctx.socket(zmq.DEALER)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    device = subprocess.Popen(
        [sys.executable, "-m", "device", "--insecure-bus", "--connect", f"tcp://127.0.0.1:{port}",
         "--key-file", str(key_file), "--max-sessions", str(trials + 4),
         "--prefork", os.environ.get("PREFORK", "2"), "--log-level", "WARNING", *options],
        cwd=ROOT)
    assert sock.poll(60_000), "device did not register"
    sock.recv_multipart()
    return device, sock


Devices = dict[str, tuple[subprocess.Popen[bytes], zmq.Socket]]


@contextlib.contextmanager
def running_devices(modes: dict[str, list[str]], trials: int) -> Iterator[tuple[Session, Devices]]:
    """One device per mode (its options), each behind its DEALER; all stopped at the end."""
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "key"
        bus = Session(generate_key(key_file))
        ctx = zmq.Context()
        devices: Devices = {}
        try:
            for mode, options in modes.items():
                devices[mode] = start_device(key_file, bus, ctx, trials, *options)
            yield bus, devices
        finally:
            for device, sock in devices.values():
                device.terminate()
                device.wait(30)
                sock.close(0)
            ctx.term()


def first_output(bus: Session, sock: zmq.Socket, session: str, code: str = "print(2)",
                 kernel: str | None = None) -> float:
    """Seconds from sending ``code`` (``print(2)``) to its stream message (waits for idle
    after); ``kernel``: the session's, if not the built-in one."""
    facts = {"session": session} if kernel is None else {"session": session, "kernel": kernel}
    msg = bus.msg("execute_request", {"code": code}, metadata={"cellbus": facts})
    started = time.perf_counter()
    elapsed = float("nan")
    sock.send_multipart(bus.serialize(msg))
    while True:
        assert sock.poll(30_000), "no output"
        _, got = bus.deserialize(sock.recv_multipart())
        if got["parent_header"].get("msg_id") != msg["msg_id"]:
            continue
        if got["msg_type"] == "stream":
            elapsed = time.perf_counter() - started
        if got["msg_type"] == "status" and got["content"]["execution_state"] == "idle":
            return elapsed


def main() -> None:
    numbers = [a for a in sys.argv[1:] if a.isdigit()]
    trials = int(numbers[0]) if numbers else 30
    modes = {"sandbox on": ["--sandbox", "auto", "--kernels", "python"],
             "sandbox off": ["--sandbox", "off", "--kernels", "python"]}
    results: dict[str, list[float]] = {}
    with running_devices(modes, trials) as (bus, devices):
        for _, sock in devices.values():
            first_output(bus, sock, "warm")
        for _ in range(trials):  # interleaved, so machine noise hits every row alike
            for mode, (_, sock) in devices.items():
                results.setdefault(f"new session, {mode}", []).append(
                    first_output(bus, sock, uuid.uuid4().hex))
                results.setdefault(f"warm session, {mode}", []).append(
                    first_output(bus, sock, "warm"))
            time.sleep(0.05)  # let the pools refill, as they would between arrivals

    def row(name: str, xs: list[float]) -> str:
        xs = sorted(xs)
        return f"| {name} | {statistics.median(xs) * 1e3:.2f} ms | " \
               f"{xs[int(len(xs) * 0.9) - 1] * 1e3:.2f} ms |"
    median = {name: statistics.median(xs) for name, xs in results.items()}
    lines = [f"{trials} trials each, interleaved; print(2) -> first stream message; one device "
             f"per row pair on this machine (nproc {os.cpu_count()}); "
             f"{time.strftime('%Y-%m-%d %H:%M')}", "",
             "| | median | p90 |", "|---|---|---|",
             *(row(name, xs) for name, xs in results.items()), "",
             f"- new / warm, sandbox on: "
             f"{median['new session, sandbox on'] / median['warm session, sandbox on']:.2f}",
             f"- new / warm, sandbox off: "
             f"{median['new session, sandbox off'] / median['warm session, sandbox off']:.2f}",
             f"- new session, sandbox on / off: "
             f"{median['new session, sandbox on'] / median['new session, sandbox off']:.2f}"]
    print("\n".join(lines))
    if "--write" in sys.argv:
        report.keep_section(ROOT / "bench" / "RESULTS.md", "session start: sandbox on and off",
                            "\n".join(lines) + f"\n\nCommand: `{COMMAND}`")


COMMAND = ".venv/bin/python bench/session_start.py [trials] --write"


if __name__ == "__main__":
    main()
