"""Another user's poll latency while one user re-reads a big cell in a loop.

    .venv/bin/python bench/read_hammer.py [--loops 10] [--seconds 10] [--mb 7] [--rate 120/min]
                                          [--mode update|ws|file|notebook] [--heed]

Starts a chain (broker on a fresh SQLite file, a device, a gateway with ``--auth token`` and
``--rate``), runs a cell of user ``hammer`` that prints ``--mb`` MB, and a small cell of user
``victim``. Then ``--loops`` threads of ``hammer`` (in a process of their own) repeat
``GET .../update?since=0`` of the big cell (taking the whole answer each time, ignoring any
Retry-After) while ``victim`` polls its own cell's ``/update?since=0`` one request after
another. Other ``--mode``: ``ws``, a WebSocket subscription's replay of the worksheet from
seq 0, taken whole, then closed; ``file``, ``GET`` of a file of ``--mb`` MB the cell wrote;
``notebook``, the worksheet's ``notebook.ipynb``; ``small``, ``/update`` of the big cell
since its last seq (a small answer, never counted: a flood of requests that cost little
each). Prints the victim's median and max latency
idle and under the hammering, and per 2-s slice of the hammering the big answers the hammer
got and the victim's latencies (the burst a full ``--rate`` bucket lets through, then the
pace it refills at), the statuses the hammer got, and the CPU the gateway and the broker
used meanwhile per big answer sent (the machine's other load moves the latencies; this much
less). With ``--heed`` the hammer waits each refusal's Retry-After, as a well-behaved client.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from access_util import add_user  # noqa: E402
from harness import Chain, NodeProcess, stop_nodes  # noqa: E402
from protocol.config import generate_key  # noqa: E402


def get(port: int, path: str, token: str, method: str = "GET",
        body: bytes | None = None, heeded: list[float] | None = None) -> tuple[int, bytes]:
    """One request; with ``heeded``, the answer's Retry-After seconds (0 if none) are
    appended to it."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        headers = {"Authorization": f"Bearer {token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        if heeded is not None:
            heeded.append(float(resp.headers.get("Retry-After") or 0))
        return resp.status, resp.read()
    finally:
        conn.close()


def run_cell(port: int, token: str, path: str, code: str) -> int:
    """Evaluate ``code`` in the cell at ``path``; the size of its finished document."""
    status, _ = get(port, f"{path}/evaluate", token, "POST",
                    json.dumps({"input": code}).encode())
    assert status == 202, status
    while True:
        status, raw = get(port, f"{path}/update?since=0&wait=60&until=done", token)
        assert status == 200, (status, raw[:200])
        if json.loads(raw)["status"] in ("done", "error"):
            return len(raw)


#: Polls a second the victim makes at most: below the gateway's --client-requests (100/s
#: with --auth token), which a victim polling without pause (800 a second idle) went past.
VICTIM_PACE = 50


def poll_latencies(port: int, token: str, path: str, seconds: float,
                   when: list[float] | None = None) -> list[float]:
    """The latencies of polls one after another (at most :data:`VICTIM_PACE` a second) for
    ``seconds``; with ``when``, the
    (monotonic) time each began is added to it."""
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        began = time.perf_counter()
        if when is not None:
            when.append(time.monotonic())
        status, _ = get(port, f"{path}/update?since=0", token)
        out.append(time.perf_counter() - began)
        assert status == 200, status
        time.sleep(max(0.0, began + 1 / VICTIM_PACE - time.perf_counter()))
    return out


def hammering(port: int, token: str, path: str, loops: int, stop: Any, out: Any,
              mode: str = "update", heed: bool = False) -> None:
    """``loops`` threads (in a process of their own, so that the victim's client shares no
    GIL with them) repeat ``GET path/update?since=0`` until ``stop``; their statuses counted
    to ``out``, then the (monotonic) times their 200 answers ended. With ``heed``, a
    thread waits the Retry-After of a refusal before it asks again (a client that is
    told, as cellbus.js)."""
    statuses: Counter[int] = Counter()
    served: list[float] = []

    def loop() -> None:
        url = {"update": f"{path}/update?since=0",
               "notebook": path.rsplit("/", 1)[0] + "/notebook.ipynb"}.get(
                   mode, f"{path}/files/{mode}/big.bin")
        if mode.startswith("small:"):  # nothing after the cell's last seq: a small answer
            url = f"{path}/update?since={mode.split(':')[1]}"
        while not stop.is_set():
            retry: list[float] = []
            status, _ = get(port, url, token, heeded=retry)
            statuses[status] += 1
            if status == 200:
                served.append(time.monotonic())
            elif heed and retry[0]:
                stop.wait(retry[0])

    if mode == "ws":
        asyncio.run(ws_loops(port, token, path, loops, stop, statuses, served))
        out.put(statuses)
        out.put(served)
        return
    threads = [threading.Thread(target=loop, daemon=True) for _ in range(loops)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(statuses)
    out.put(served)


async def ws_loops(port: int, token: str, path: str, loops: int, stop: Any,
                   statuses: Counter[int], served: list[float]) -> None:
    """``loops`` WebSockets that each subscribe to the worksheet of ``path`` from seq 0,
    take the replay to its ``subscribe_reply``, close, and again (status 200 counted per
    replay taken whole; -1 for one that ended otherwise)."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect
    user, worksheet = path.split("/")[2:4]
    subscribe = json.dumps({"header": {"msg_type": "subscribe_request"}, "content": {
        "user": user, "worksheet": worksheet, "since": 0}})

    async def one() -> None:
        while not stop.is_set():
            ws = await websocket_connect(HTTPRequest(
                f"ws://127.0.0.1:{port}/ws", headers={"Authorization": f"Bearer {token}"}),
                max_message_size=256 * 2**20)
            await ws.write_message(subscribe)
            while True:
                text = await ws.read_message()
                if text is None or json.loads(text)["msg_type"] == "subscribe_reply":
                    break
            statuses[200 if text is not None else -1] += 1
            if text is not None:
                served.append(time.monotonic())
            ws.close()

    await asyncio.gather(*(one() for _ in range(loops)))


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds process ``pid`` has used (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(name: str, seconds: list[float]) -> str:
    return (f"{name}: {len(seconds)} polls, median {statistics.median(seconds) * 1000:.1f} ms, "
            f"max {max(seconds) * 1000:.1f} ms")


def slices(began: float, when: list[float], busy: list[float], served: list[float],
           width: float = 2.0) -> list[str]:
    """Per ``width`` seconds from ``began`` (the hammer's start): the answers (200) the hammer
    got, and the victim's polls' median and max (the burst its ``--rate`` bucket lets
    through first, then the pace the rate refills it at)."""
    lines = []
    end = max(when, default=began)
    at = began
    while at <= end:
        polls = [s for t, s in zip(when, busy) if at <= t < at + width]
        got = sum(at <= t < at + width for t in served)
        lines.append(f"  {at - began:4.0f}-{at - began + width:.0f} s: {got:3d} answers; "
                     + (f"victim median {statistics.median(polls) * 1000:.1f} ms, max "
                        f"{max(polls) * 1000:.1f} ms ({len(polls)} polls)" if polls else
                        "no victim poll"))
        at += width
    if late := sum(t >= at for t in served):
        lines.append(f"  then {late} answers that were under way when the victim stopped")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--loops", type=int, default=10)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--mb", type=int, default=7)
    p.add_argument("--rate", default="120/min", help="the gateway's --rate")
    p.add_argument("--client-requests", default=None,
                   help="the gateway's --client-requests (its default if not given; 0: none)")
    p.add_argument("--mode", choices=("update", "ws", "file", "notebook", "small"),
                   default="update",
                   help="what the hammer repeats: GET /update?since=0, a WebSocket "
                        "subscription's replay from seq 0, GET of a file of --mb MB, the "
                        "worksheet's notebook download, or (small) GET /update since the big "
                        "cell's last seq, a small answer never counted")
    p.add_argument("--heed", action="store_true",
                   help="the hammer waits a refusal's Retry-After before it asks again "
                        "(HTTP modes): what the burst its --rate bucket lets through costs, "
                        "without the refusals a client that ignores them makes")
    args = p.parse_args()
    nodes: list[NodeProcess] = []
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "bus.key"
        generate_key(key_file)
        chain = Chain(key_file, f"sqlite:///{tmp}/cellbus.db", nodes)
        try:
            hammer, victim = add_user(chain, "hammer"), add_user(chain, "victim")
            chain.start_broker("--cell-output", str(64 * 2**20))
            chain.start_device("--max-output", str(64 * 2**20))
            chain.start_gateway("--auth", "token", "--rate", args.rate, *(
                ("--client-requests", args.client_requests) if args.client_requests else ()))
            big, small = "/home/hammer/w/1", "/home/victim/w/1"
            size = run_cell(chain.port, hammer, big,
                            f"for i in range({args.mb * 1000}):\n    print('x' * 999)"
                            if args.mode != "file" else
                            f"open('big.bin', 'wb').write(b'x' * {args.mb * 10**6})")
            run_cell(chain.port, victim, small, "print(2)")
            print(f"big cell's document: {size / 1e6:.1f} MB; load average "
                  f"{Path('/proc/loadavg').read_text().split()[0]}")
            print(summary("victim idle", poll_latencies(chain.port, victim, small, 2.0)))
            stop, counts = multiprocessing.Event(), multiprocessing.Queue()
            mode = args.mode
            if mode == "file":  # the file's seq, for its URL
                _, raw = get(chain.port, f"{big}/update?since=0", hammer)
                mode = str(json.loads(raw)["output"]["file_0"]["seq"])
            elif mode == "small":
                _, raw = get(chain.port, f"{big}/update?since=0", hammer)
                mode = f"small:{json.loads(raw)['seq']}"
            hammer_proc = multiprocessing.Process(target=hammering, args=(
                chain.port, hammer, big, args.loops, stop, counts, mode, args.heed))
            nodes_cpu = {n: cpu_seconds(p.proc.pid) for n, p in
                         (("gateway", chain.gateway), ("broker", chain.broker)) if p}
            began = time.monotonic()
            hammer_proc.start()
            time.sleep(1.0)  # every loop under way
            when: list[float] = []
            busy = poll_latencies(chain.port, victim, small, args.seconds, when)
            stop.set()
            statuses = counts.get(timeout=120)
            served_at = counts.get(timeout=120)
            hammer_proc.join(120)
            print(summary(f"victim with {args.loops} loops re-reading", busy))
            print("\n".join(slices(began, when, busy, served_at)))
            served = statuses.get(200, 0)
            for name, before in nodes_cpu.items():
                node = chain.gateway if name == "gateway" else chain.broker
                used = cpu_seconds(node.proc.pid) - before  # type: ignore[union-attr]
                print(f"{name} CPU meanwhile: {used:.2f} s, "
                      f"{used / max(served, 1) * 1000:.0f} ms per big answer sent")
            print(f"hammer's answers: {dict(sorted(statuses.items()))}")
        finally:
            stop_nodes(nodes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
