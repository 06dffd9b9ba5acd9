"""``python -m device`` (``bin/cellbus device``): run one device on this machine."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from protocol.config import (add_common_options, add_curve_options, add_metrics_option,
                             add_option, endpoint, bus_session, parse_args, use_curve)
from protocol.kernels import DEFAULT_KERNEL
from protocol.numbers import (amount, count, positive_amount, positive_count, positive_seconds,
                              seconds)
from protocol.logfile import setup_logging
from protocol.program import run_node

from .overseer import OverseerConfig
from .outbox import DEFAULT_CAPACITY
from .draining import DRAIN_TIMEOUT
from .router import DeviceRouter, default_device_id
from .prompts import INPUT_TIMEOUT
from .launcher import LaunchSpec
from .fit import accounted, fit, unbind_file_max
from .limits import DEFAULT_MEMORY_BUDGET, Limits, memory_budget, within_hard
from .protections import MODES
from .uids import AUTO_SIZE, DEFAULT_UIDS, parse_uids

#: Seconds one execution may run by default: on a public service a `while True: pass` frees
#: its place within five minutes; a private one that runs longer computations gives 0 (no
#: limit), as `bin/cellbus up` without auth does.
EXEC_TIMEOUT = 300.0
#: Seconds an idle session keeps its worker (and its variables): long enough for a reader
#: who stops to think or read the output, short enough that a device's places come back
#: from worksheets left open (README: Using it).
IDLE_TIMEOUT = 900.0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cellbus device",
        description="Run a device: it takes requests from the broker and runs each session in "
                    "a worker process of its own on this machine.")
    add_option(p, "--connect", type=endpoint, metavar="ENDPOINT", node="device",
               help="the broker's device endpoint to connect to, e.g. tcp://broker:5556")
    add_option(p, "--bind", type=endpoint, metavar="ENDPOINT", node="device",
               help="bind instead of connecting (a test client standing in for the broker)")
    add_option(p, "--device-id", metavar="ID", help="this device's name on the bus; "
               "default HOST-PID")
    add_option(p, "--idle-timeout", type=positive_seconds, default=IDLE_TIMEOUT, metavar="S",
               help="seconds a session's worker may sit idle before it is closed")
    add_option(p, "--interact-timeout", type=positive_seconds, default=600.0, metavar="S",
               help="idle seconds a session with interacts lives, so its controls keep working")
    add_option(p, "--exec-timeout", type=seconds, default=EXEC_TIMEOUT, metavar="S",
               help="wall-clock seconds one execution may run before it is stopped (the "
                    "default suits a public service: a `while True: pass` frees its place "
                    "within minutes); 0: no limit")
    add_option(p, "--input-timeout", type=seconds, default=INPUT_TIMEOUT, metavar="S",
               help="seconds a prompt of input() or getpass() waits for its answer; then the "
                    "cell ends with an InputTimeout error (0: no limit); time spent waiting "
                    "for an answer does not count against --exec-timeout")
    add_option(p, "--drain-timeout", type=seconds, default=DRAIN_TIMEOUT, metavar="S",
               help="on SIGTERM, seconds running cells get to finish before they are stopped "
                    "(requests not started are handed back to the broker at once)")
    add_option(p, "--outbox-bytes", type=positive_count, default=DEFAULT_CAPACITY, metavar="BYTES",
               help="output kept until the broker confirms it stored it; when full, sessions "
                    "wait on their writes (backpressure), nothing is dropped")
    add_option(p, "--user-outbox", type=count, default=None, metavar="BYTES",
               help="of that output, bytes one user's sessions may hold before their writes "
                    "wait, so one user's flood does not delay other users' output (default "
                    "1 MiB, or a quarter of --outbox-bytes if less; 0: no share per user)")
    add_option(p, "--max-sessions", type=positive_count, default=16, metavar="N",
               help="sessions this device runs at once")
    add_option(p, "--prefork", type=count, default=2, metavar="N",
               help="workers of the built-in Python kernel kept forked and ready, so a new "
                    "session starts at once")
    add_option(p, "--kernels", default="", metavar="NAMES",
               help="comma-separated kernels this device offers: python (the built-in "
                    "session), a cellbus.backends entry point (sqlite) or an installed "
                    "Jupyter kernelspec (python3, ir, bash), or NAME=SPEC: the kernel NAME "
                    "run by the backend SPEC (calc=mymodule:Calc); default: python and "
                    "every kernelspec installed")
    add_option(p, "--kernel-prefork", type=count, default=1, metavar="N",
               help="workers kept started and ready per kernel other than python (each "
                    "holds its kernel process); 0: start one when a session needs it")
    add_option(p, "--preload", default="", metavar="MODULES",
               help="comma-separated modules the template imports once for every worker, "
                    "e.g. numpy,matplotlib.pyplot")
    d = Limits()
    add_option(p, "--max-cpu", type=positive_count, default=d.cpu_seconds, metavar="S",
               help="CPU seconds one session may use in all")
    add_option(p, "--max-memory", type=positive_count, default=d.memory_bytes, metavar="BYTES",
               help="address space of one session's worker")
    add_option(p, "--max-processes", type=positive_count, default=d.processes, metavar="N",
               help="processes per session (Linux does not apply this to root)")
    add_option(p, "--max-file-bytes", type=count, default=d.file_bytes, metavar="BYTES",
               help="largest file a session may write")
    add_option(p, "--max-output", type=positive_count, default=16 * 1024 * 1024, metavar="BYTES",
               help="output one execution may produce before it is cut and stopped")
    add_option(p, "--output-rate", type=positive_amount, default=2 * 1024 * 1024, metavar="BYTES/S",
               help="output pace of one session, so a flood delays no one else")
    add_option(p, "--max-cpu-cores", type=amount, default=d.cpu_cores, metavar="N",
               help="CPU cores one session may keep busy at once (cgroup quota; 0: no quota)")
    add_option(p, "--max-disk", type=count, default=d.disk_bytes, metavar="BYTES",
               help="bytes a sandboxed session may keep in its working directory (and again "
                    "in its /tmp)")
    add_option(p, "--memory-budget", default=DEFAULT_MEMORY_BUDGET, metavar="N%|BYTES",
               help="memory all sessions of this device may use together (a cgroup limit "
                    "over theirs), as a share of this machine's memory or in bytes; 0: none")
    add_option(p, "--sandbox", default="auto", choices=MODES,
               help="auto: every protection this machine allows (the start line and "
                    "`bin/cellbus status` say which are off); require: refuse to start "
                    "without all of them; off: none (trusted code only)")
    add_option(p, "--sandbox-uids", default=DEFAULT_UIDS, metavar="FIRST-LAST|auto",
               help="uids for session workers, one per live worker, from a range no real "
                    "account uses; auto: the first block of 1000 from 300000 that no other "
                    "device of this machine holds. A range that overlaps another device's "
                    "is refused")
    add_option(p, "--backend", metavar="MODULE:CLASS",
               help="session backend of the kernel 'python' (module:Class or a "
                    "cellbus.backends name); default the built-in Python session")
    add_metrics_option(p)
    add_curve_options(p, server=False)
    add_common_options(p)
    return p


def secrets_of(args: argparse.Namespace) -> tuple[str, ...]:
    """The secret files this device is given (its bus key, its CURVE certificate's secret),
    which the sandbox covers wherever a session could see them."""
    return tuple(os.path.abspath(p) for p in (args.key_file, args.curve_key) if p)


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = parse_args(p, argv, node="device")  # its errors below are one line too
    device_id = args.device_id or default_device_id()
    setup_logging(args.log_level, tag=device_id, file=args.log_file)  # devices share logs
    if not (args.connect or args.bind):
        p.error("give --connect ENDPOINT (or --bind ENDPOINT)")
    if args.backend:  # here, in one line: in the template it was two tracebacks, status 1
        from .template import backend_problem
        if problem := backend_problem(args.backend):
            p.error(problem)
    try:
        uids = range(AUTO_SIZE) if args.sandbox_uids == "auto" else parse_uids(args.sandbox_uids)
    except ValueError as e:
        p.error(f"--sandbox-uids: {e}")
    named = {n.strip() for n in args.kernels.split(",") if n.strip()} - {DEFAULT_KERNEL}
    # Without --kernels the template finds them: room for a few kernelspecs' pools.
    pools = args.prefork + args.kernel_prefork * (len(named) if args.kernels else 4)
    if args.sandbox != "off" and len(uids) < args.max_sessions + pools:
        p.error(f"--sandbox-uids {args.sandbox_uids} gives {len(uids)} uids, but "
                       f"--max-sessions {args.max_sessions}, --prefork {args.prefork} and "
                       f"--kernel-prefork {args.kernel_prefork} need up to "
                       f"{args.max_sessions + pools} (one per live worker): give a "
                       "larger range (FIRST-LAST) or lower --max-sessions")
    try:
        budget = memory_budget(args.memory_budget)
    except ValueError as e:
        p.error(f"--memory-budget: {e}")
    limits = Limits(cpu_seconds=args.max_cpu, memory_bytes=args.max_memory,
                    processes=args.max_processes, file_bytes=args.max_file_bytes,
                    cpu_cores=args.max_cpu_cores, disk_bytes=args.max_disk)
    said: list[str] = []
    if args.sandbox != "off":  # each session's share of the machine's pools (device/fit.py)
        files, said = unbind_file_max(accounted())
        limits, fitted = fit(limits, args.max_sessions + pools, budget, files)
        said += fitted
    limits, lowered = within_hard(limits)  # what this device may give its workers
    log = logging.getLogger("cellbus.device")
    for line in said + lowered:
        if line.startswith("WARNING: "):
            log.warning("device %s", line.removeprefix("WARNING: "))
        else:
            log.info("device %s", line)

    def make() -> DeviceRouter:
        config = OverseerConfig(
            idle_timeout=args.idle_timeout, interact_timeout=args.interact_timeout,
            exec_timeout=args.exec_timeout, input_timeout=args.input_timeout,
            max_sessions=args.max_sessions, prefork=args.prefork, max_output=args.max_output,
            kernel_prefork=args.kernel_prefork,
            output_rate=args.output_rate, output_burst=4 * args.output_rate,
            launch=LaunchSpec(backend=args.backend, preload=args.preload, limits=limits,
                              kernels=args.kernels,
                              sandbox=args.sandbox, sandbox_uids=args.sandbox_uids,
                              memory_budget=budget,
                              hide=secrets_of(args)))
        device = DeviceRouter(bus_session(args.key_file, packer=args.packer),
                              device_id=device_id,
                            connect=args.connect, bind=args.bind, config=config,
                            drain_timeout=args.drain_timeout, outbox_bytes=args.outbox_bytes,
                            user_outbox=args.user_outbox)
        device.metrics_port = args.metrics_port
        use_curve(device, args)
        return device

    return run_node(make)


if __name__ == "__main__":
    sys.exit(main())
