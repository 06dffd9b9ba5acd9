"""A TCP relay between two nodes on loopback, as the network between two machines, that a
test can make misbehave: delay every chunk, cut every connection now and then, flip a byte,
record what went through (to replay it into a new connection), or move the client to a new
connection while the server's end of the old one stays open (:meth:`Relay.rebind`).

Each accepted connection gets its own upstream connection; each direction is pumped by a
thread that keeps the chunks' order (a delay holds a chunk, and the ones behind it, back).
"""

from __future__ import annotations

import queue
import socket
import struct
import threading
import time
from collections.abc import Callable


class Relay:
    """Listens on a free loopback port and relays to ``upstream`` (host, port).

    ``delay``: seconds each chunk is held back. ``mangle``: called with (direction, offset
    in the stream, chunk) for each chunk, returns the chunk to send ("up" is client to
    server). ``record``: keep the bytes each connection sent upstream in ``recorded``.
    """

    def __init__(self, upstream: tuple[str, int], *, delay: float = 0.0,
                 mangle: Callable[[str, int, bytes], bytes] | None = None,
                 record: bool = False) -> None:
        self.upstream, self.delay, self.mangle, self.record = upstream, delay, mangle, record
        self.recorded: list[bytearray] = []
        self.accepted = 0
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        #: Each open connection's client end, and the event that abandons its server end.
        self._clients: list[tuple[socket.socket, threading.Event]] = []
        self._closed = False
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            sent = bytearray()
            abandoned = threading.Event()
            with self._lock:
                self.accepted += 1
                self._conns += [client, server]
                self._clients.append((client, abandoned))
                if self.record:
                    self.recorded.append(sent)
            for src, dst, way in ((client, server, "up"), (server, client, "down")):
                threading.Thread(target=self._pump, args=(src, dst, way, sent, abandoned,
                                                          server), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, way: str,
              sent: bytearray, abandoned: threading.Event, server: socket.socket) -> None:
        """Read ``src``; a writer thread sends each chunk ``delay`` seconds after it came
        (chunks stay in order, and a delay is a latency, not a throughput limit)."""
        held: queue.Queue[tuple[float, bytes] | None] = queue.Queue()
        writer = threading.Thread(target=self._write, args=(held, src, dst, abandoned, server),
                                  daemon=True)
        writer.start()
        offset = 0
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                if abandoned.is_set():
                    continue  # the server's end, left open: read (TCP acks it), dropped
                if self.mangle is not None:
                    chunk = self.mangle(way, offset, chunk)
                offset += len(chunk)
                if self.record and way == "up":
                    sent += chunk
                held.put((time.monotonic() + self.delay, chunk))
        except OSError:
            pass
        held.put(None)

    @staticmethod
    def _write(held: queue.Queue[tuple[float, bytes] | None], src: socket.socket,
               dst: socket.socket, abandoned: threading.Event, server: socket.socket) -> None:
        try:
            while (item := held.get()) is not None:
                due, chunk = item
                if (wait := due - time.monotonic()) > 0:
                    time.sleep(wait)
                dst.sendall(chunk)
        except OSError:
            pass
        for s in (src, dst):  # one side closed: close both, as a TCP proxy does
            if s is server and abandoned.is_set():
                continue  # left open, silent (rebind)
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def cut(self) -> None:
        """Close every open connection (both ends), as a link that drops."""
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def rebind(self) -> None:
        """As a NAT that gave the client a new source port: each open connection's client
        gets a reset, and reconnects (through this relay, a new connection upstream), while
        the server's end of the old one stays open and hears nothing more, until the server
        gives up on it (ZeroMQ's heartbeat) or :meth:`close`."""
        with self._lock:
            clients, self._clients = self._clients, []
        for client, abandoned in clients:
            abandoned.set()
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            try:
                client.shutdown(socket.SHUT_RD)  # wakes its reader
            except OSError:
                pass
            client.close()  # a reset, with no linger

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.cut()


def port_of(endpoint: str) -> tuple[str, int]:
    """``tcp://127.0.0.1:PORT`` as (host, port)."""
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    return host, int(port)
