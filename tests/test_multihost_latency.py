"""High latency between a device and the broker (tests/netbed.py; this kernel has no netem,
so a relay in the test process holds every byte for :data:`DELAY` seconds each way): the
device stays registered, cells run, each output once."""

from __future__ import annotations

import heapq
import re
import socket
import threading
import time

from harness import NodeProcess
from netbed import NetChain
from test_multihost import bed, output_text, run, start

__all__ = ["bed"]  # the fixture

#: Seconds each byte is held, each way: a round trip of 3 s, past the device's heartbeat
#: interval and half its liveness.
DELAY = 1.5
#: The device's line for output sent again for want of a receipt.
RESENT = r"sending \d+ unacknowledged records again .*no receipt from the broker"


def test_a_device_three_seconds_of_round_trip_away(bed: NetChain) -> None:
    """Tests a device whose every byte to and from the broker takes 1.5 s: it registers, is
    never taken for lost, and runs cells one after another (a worksheet's variables kept),
    each output once; a cell printing over several seconds streams all its lines once; and
    once its first receipts came, it sends no output again for want of one (before, every
    record went twice: receipts came after the fixed 2 s wait)."""
    start(bed, devices=0)
    assert bed.broker is not None
    relay = _DelayRelay(bed.bed.client, (bed.bed.address("broker"), NetChain.DEVICE_PORT))
    try:
        cert = bed.cert_options("far", "device")
        node = NodeProcess("device", "--connect", f"tcp://{bed.bed.client}:{relay.port}",
                           "--device-id", "far", *cert, "--key-file", bed.key_file,
                           wrap=bed.bed.wrap("dev1"))
        bed.nodes.append(node)
        bed.broker.wait_for_log(r"device far registered", timeout=30)
        assert output_text(run(bed, "u/ws/1", "x = 6\nprint(x)")) == "6\n"
        assert output_text(run(bed, "u/ws/2", "print(x * 7)")) == "42\n"
        code = "import time\nfor i in range(8):\n    print(i, flush=True)\n    time.sleep(0.5)"
        assert output_text(run(bed, "u/ws/3", code)) == "".join(f"{i}\n" for i in range(8))
        assert "is lost" not in bed.broker.log, bed.broker.log[-3000:]
        # once, at most: before its first receipts timed the trip
        assert len(re.findall(RESENT, node.log)) <= 1, node.log[-3000:]
        node.stop(timeout=20)
    finally:
        relay.close()


class _DelayRelay:
    """A TCP relay on ``address`` (a free port) to ``target`` that holds every chunk for
    :data:`DELAY` seconds in each direction, in order."""

    def __init__(self, address: str, target: tuple[str, int]) -> None:
        self.listener = socket.create_server((address, 0))
        self.port = self.listener.getsockname()[1]
        self.target = target
        self._socks: list[socket.socket] = [self.listener]
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
                server = socket.create_connection(self.target, 10)
            except OSError:
                return
            self._socks += [client, server]
            for src, dst in ((client, server), (server, client)):
                held: list[tuple[float, int, bytes]] = []
                ready = threading.Condition()
                threading.Thread(target=self._read, args=(src, held, ready), daemon=True).start()
                threading.Thread(target=self._write, args=(dst, held, ready), daemon=True).start()

    def _read(self, src: socket.socket, held: list[tuple[float, int, bytes]],
              ready: threading.Condition) -> None:
        n = 0
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            with ready:
                n += 1
                heapq.heappush(held, (time.monotonic() + DELAY, n, data))
                ready.notify()
            if not data:
                return

    def _write(self, dst: socket.socket, held: list[tuple[float, int, bytes]],
               ready: threading.Condition) -> None:
        while True:
            with ready:
                while not held:
                    ready.wait()
                due, _, data = held[0]
                wait = due - time.monotonic()
                if wait > 0:
                    ready.wait(wait)
                    continue
                heapq.heappop(held)
            try:
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self._closed.set()
        for sock in self._socks:
            sock.close()


