"""New-session and warm round trips per kernel, with each kernel's pool of ready workers on
and off, beside the built-in Python session.

Two real devices (sandbox on, as deployed) offer the same kernels behind a signed DEALER
standing in for the broker: one keeps ready workers (``--prefork 2 --kernel-prefork 2``),
the other none (``0``/``0``: every new session forks a worker and, for a Jupyter kernel,
starts the kernel). Times a cell that prints ``2`` -> its stream message, for a new session
and for a warm one, interleaved over kernels and devices; a pause between rounds lets the
pools refill, as they would between arrivals. The anchor rows send the same cell straight to
the kernel with jupyter_client, outside cellbus. With ``--write`` the table goes into
bench/RESULTS.md. Run: .venv/bin/python bench/kernel_start.py [trials] [--write]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import report  # noqa: E402
from session_start import first_output, running_devices  # noqa: E402

#: kernel -> a cell that prints 2
CELLS = {"python": "print(2)", "python3": "print(2)", "bash": "echo 2", "ir": "cat(2)"}
#: Seconds between rounds: a Jupyter kernel takes about 1-2 s to start in a refilled worker.
REFILL = 4.0
COMMAND = ".venv/bin/python bench/kernel_start.py [trials] --write"


def installed(names: list[str]) -> list[str]:
    from jupyter_client.kernelspec import KernelSpecManager
    specs = KernelSpecManager().find_kernel_specs()
    return [n for n in names if n == "python" or n in specs]


def direct(kernel: str, trials: int) -> list[float]:
    """The anchor: the same cell straight to the kernel with jupyter_client (no cellbus, no
    sandbox): seconds to its first stream message, in a warm kernel."""
    from jupyter_client.manager import start_new_kernel
    km, kc = start_new_kernel(kernel_name=kernel)
    times = []
    try:
        for _ in range(trials):
            started = time.perf_counter()
            msg_id = kc.execute(CELLS[kernel])
            elapsed = float("nan")
            while True:
                msg = kc.get_iopub_msg(timeout=30)
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "stream" and elapsed != elapsed:
                    elapsed = time.perf_counter() - started
                if msg["msg_type"] == "status" and \
                        msg["content"]["execution_state"] == "idle":
                    break
            times.append(elapsed)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return times


def main() -> None:
    numbers = [a for a in sys.argv[1:] if a.isdigit()]
    trials = int(numbers[0]) if numbers else 10
    kernels = installed(list(CELLS))
    modes = {"pool on": ["--prefork", "2", "--kernel-prefork", "2"],
             "pool off": ["--prefork", "0", "--kernel-prefork", "0"]}
    results: dict[str, list[float]] = {}
    offer = ["--kernels", ",".join(kernels)]
    with running_devices({m: offer + o for m, o in modes.items()},
                         trials * len(kernels)) as (bus, devices):
        for _, sock in devices.values():
            for kernel in kernels:
                first_output(bus, sock, f"warm-{kernel}", CELLS[kernel], kernel)
        time.sleep(REFILL)
        for _ in range(trials):
            for kernel in kernels:
                for mode, (_, sock) in devices.items():
                    results.setdefault(f"{kernel}: new session, {mode}", []).append(
                        first_output(bus, sock, uuid.uuid4().hex, CELLS[kernel], kernel))
                    results.setdefault(f"{kernel}: warm session, {mode}", []).append(
                        first_output(bus, sock, f"warm-{kernel}", CELLS[kernel], kernel))
            time.sleep(REFILL)
    for kernel in kernels[1:]:
        results[f"{kernel}: warm, jupyter_client direct (anchor)"] = direct(kernel, trials)
    lines = [f"{trials} trials each, interleaved; a cell printing 2 -> its first stream "
             f"message; sandbox on; {REFILL:g} s between rounds for the pools to refill; "
             f"nproc {os.cpu_count()}; {time.strftime('%Y-%m-%d %H:%M')}", "",
             "| | median | p90 |", "|---|---|---|"]
    for name in sorted(results, key=lambda n: (n.split(":")[0] != "python", n)):
        xs = sorted(results[name])
        lines.append(f"| {name} | {statistics.median(xs) * 1e3:.1f} ms | "
                     f"{report.p90(xs) * 1e3:.1f} ms |")
    print("\n".join(lines))
    if "--write" in sys.argv:
        report.keep_section(ROOT / "bench" / "RESULTS.md",
                            "Kernels: new session and warm round trip, pool on and off",
                            "\n".join(lines) + f"\n\nCommand: `{COMMAND}`")


if __name__ == "__main__":
    main()
