"""What ``bin/cellbus up`` starts: each node's command line (:func:`plan`), and the check,
before any node starts, that every node takes what it is given (:func:`node_refusal`).

The nodes read their CELLBUS_* variables themselves (that is how options `up` has no flag
for reach them, issue 25: ``CELLBUS_MAX_SESSIONS=200 bin/cellbus up``), so a value one of
them refuses was found only once it ran: the broker had started, the device exited with
status 2 and `up` stopped the broker again, in nine lines and status 1. Each node's parser
now reads the command line `up` will give it, with the same variables and ``--config`` file,
before anything starts, and the first refusal is `up`'s one line (status 2).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os

import broker.__main__
import device.__main__
import gateway.__main__
from broker.quotas import quota_argv
from device.limits import DEFAULT_MEMORY_BUDGET
from device.uids import parse_uids
from protocol.config import parse_args

#: The parser of each kind of node `up` starts, by its module.
PARSERS = {"broker": broker.__main__.parser, "device": device.__main__.parser,
           "gateway": gateway.__main__.parser}

Plan = list[tuple[str, str, list[str]]]


def access_argv(a: argparse.Namespace) -> list[str]:
    """The gateway's access options, as given to `up`."""
    argv = (["--rate", a.rate] if a.rate is not None else []) + (
        ["--auth", a.auth] if a.auth else [])
    argv += ["--allow-anonymous"] if a.allow_anonymous else []
    argv += ["--log-requests"] if a.log_requests else []
    for origin in a.allow_origin or []:
        argv += ["--allow-origin", origin]
    for host in a.allow_host or []:
        argv += ["--allow-host", host]
    for proxy in a.trusted_proxy or []:
        argv += ["--trusted-proxy", proxy]
    for option, value in (("--tls-cert", a.tls_cert), ("--tls-key", a.tls_key)):
        argv += [option, value] if value else []
    return argv


def device_budget(devices: int) -> list[str]:
    """Each device's share of the default memory budget of the machine's sessions; none
    when CELLBUS_MEMORY_BUDGET says what each device takes."""
    if "CELLBUS_MEMORY_BUDGET" in os.environ:
        return []
    return ["--memory-budget", f"{float(DEFAULT_MEMORY_BUDGET.rstrip('%')) / devices:g}%"]


def device_uids(devices: int) -> list[list[str]]:
    """Each device's share of a CELLBUS_SANDBOX_UIDS range (a block of its own), as the
    memory budget is shared: each device read the whole range before, and the second was
    refused for overlapping the first. Nothing to pass for ``auto``, one device, or a value
    the devices will refuse themselves, saying why."""
    text = os.environ.get("CELLBUS_SANDBOX_UIDS", "").strip()
    try:
        uids = parse_uids(text) if devices > 1 and text != "auto" else range(0)
    except ValueError:
        uids = range(0)
    size = len(uids) // devices
    if not size:
        return [[] for _ in range(devices)]
    return [["--sandbox-uids", f"{uids[i * size]}-{uids[i * size] + size - 1}"]
            for i in range(devices)]


def metrics_ports(a: argparse.Namespace) -> dict[str, int]:
    """Each node's --metrics-port, by node name: one port each, in a row from `up`'s. Passed
    on as flags: each node read CELLBUS_METRICS_PORT itself before, so every device found the
    port the broker had taken and `up` stopped. Empty with --metrics-port 0."""
    if not a.metrics_port:
        return {}
    names = ["broker", *(f"device{i}" for i in range(a.devices))]
    return {name: a.metrics_port + i for i, name in enumerate(names)}


def plan(a: argparse.Namespace, ep: dict[str, str], *, token: bool) -> Plan:
    """Each node `up` starts, in order, as (name, module, options past ``--key-file`` and
    ``--log-level``); ``ep`` has the broker's endpoints (``gw``, ``dev``, ``pub``)."""
    broker_argv = ["--gateway-bind", ep["gw"], "--device-bind", ep["dev"],
                   "--publish-bind", ep["pub"], *quota_argv(a, token=token)]
    # One attempt at a store that does not answer (its bound, 5 s): `up`'s user waits at a
    # terminal, and is better told at once than shown a broker trying forever.
    store_argv = ["--store", a.store, "--store-wait", "0"] if a.store else []
    metrics = {name: ["--metrics-port", str(port)] for name, port in metrics_ports(a).items()}
    nodes: Plan = [("broker", "broker", [*broker_argv, *store_argv, "--retention",
                                         str(a.retention), *metrics.get("broker", [])])]
    timeout = [] if a.exec_timeout is None and token else [
        "--exec-timeout", str(a.exec_timeout or 0)]
    uids = device_uids(a.devices)
    for i in range(a.devices):
        nodes.append((f"device{i}", "device", [
            "--connect", ep["dev"], "--device-id", f"{os.uname().nodename}-{i}",
            *device_budget(a.devices), *uids[i], *timeout,
            "--idle-timeout", str(a.idle_timeout), "--drain-timeout", str(a.drain_timeout),
            *metrics.get(f"device{i}", [])]))
    nodes.append(("gateway", "gateway", ["--broker", ep["gw"], "--subscribe", ep["pub"],
                                         "--host", a.host, "--port", str(a.port),
                                         *access_argv(a)]))
    return nodes


def node_refusal(a: argparse.Namespace, *, token: bool) -> str | None:
    """The line the first node of :func:`plan` to refuse its options (a flag of `up`'s, a
    CELLBUS_* variable, a ``--config`` key) would exit with; None: each takes them. Only
    the parsing: what a node finds wrong once it runs (a uid range too small for its
    places, say) it still says itself."""
    ep = {name: f"ipc:///cellbus-up/{name}" for name in ("gw", "dev", "pub")}
    for name, module, argv in plan(a, ep, token=token):
        said = io.StringIO()
        try:
            with contextlib.redirect_stderr(said):
                parse_args(PARSERS[module](), ["--key-file", "bus.key", "--log-level",
                                               a.log_level, *argv], node=module)
        except SystemExit:
            return said.getvalue().strip() or f"cellbus up: {name} refuses its options"
    return None
