"""First output of a new session against a warm round trip, on one device.

Starts a real device (as `bin/cellbus device` would) behind a signed DEALER standing in for
the broker, then times `print(2)` -> its stream message, for new sessions (each taking a
preforked worker) and for a warm session, interleaved so machine noise hits both alike.
Prints medians, p90 and the ratio. Run: .venv/bin/python bench/session_start.py [trials]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import zmq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from protocol import Session  # noqa: E402
from protocol.config import generate_key  # noqa: E402


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "key"
        key = generate_key(key_file)
        bus = Session(key)
        ctx = zmq.Context()
        sock = ctx.socket(zmq.DEALER)
        port = sock.bind_to_random_port("tcp://127.0.0.1")
        device = subprocess.Popen(
            [sys.executable, "-m", "device", "--connect", f"tcp://127.0.0.1:{port}",
             "--key-file", str(key_file), "--max-sessions", str(trials + 4),
             "--prefork", os.environ.get("PREFORK", "2"), "--log-level", "WARNING"],
            cwd=ROOT)
        try:
            assert sock.poll(30_000), "device did not register"
            sock.recv_multipart()

            def first_output(session: str) -> float:
                msg = bus.msg("execute_request", {"code": "print(2)"},
                              metadata={"cellbus": {"session": session}})
                started = time.perf_counter()
                sock.send_multipart(bus.serialize(msg))
                while True:
                    assert sock.poll(30_000), "no output"
                    _, got = bus.deserialize(sock.recv_multipart())
                    if got["msg_type"] == "stream" and got["parent_header"]["msg_id"] == msg["msg_id"]:
                        elapsed = time.perf_counter() - started
                    if got["msg_type"] == "status" and got["content"]["execution_state"] == "idle" \
                            and got["parent_header"]["msg_id"] == msg["msg_id"]:
                        return elapsed

            first_output("warm")
            new, warm = [], []
            for _ in range(trials):
                new.append(first_output(uuid.uuid4().hex))
                warm.append(first_output("warm"))
                time.sleep(0.05)  # let the pool refill, as it would between arrivals
        finally:
            device.terminate()
            device.wait(15)
            sock.close(0)
            ctx.term()

    def row(name: str, xs: list[float]) -> str:
        xs = sorted(xs)
        return f"{name:<28} median {statistics.median(xs) * 1e3:7.2f} ms   p90 " \
               f"{xs[int(len(xs) * 0.9) - 1] * 1e3:7.2f} ms"
    print(f"{trials} trials, print(2) -> first stream message, nproc {os.cpu_count()}")
    print(row("new session (preforked)", new))
    print(row("warm session", warm))
    print(f"ratio new / warm: {statistics.median(new) / statistics.median(warm):.2f}")


if __name__ == "__main__":
    main()
