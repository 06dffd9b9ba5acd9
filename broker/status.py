"""``python -m broker.status`` (``bin/cellbus status``): what the broker knows right now.

Prints each device the broker knows (alive, capacity, load, free places, sessions) and the
requests waiting. It asks over the broker's gateway endpoint with a signed
``broker_status_request``, so it needs that endpoint and the key file. Without them it reads
the state file ``bin/cellbus up`` writes while it runs: ``$XDG_RUNTIME_DIR/cellbus/up.json``,
else ``/tmp/cellbus-$UID/up.json`` (mode 0600, in a directory only this user can enter).
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import time
from pathlib import Path
from typing import Any

import zmq

from protocol import linkwatch, msgtypes as mt
from protocol.processes import is_running
from protocol.config import add_curve_options, add_option, endpoint, load_key, parse_args
from protocol.curve import ClientKeys, needs_keys
from protocol.endpoints import wants_ipv6
from protocol.errors import ConfigError, ProtocolError
from protocol.numbers import positive_seconds, times
from protocol.wire import Session

#: Seconds to wait for the broker's answer.
TIMEOUT = 5.0
#: The exit status when the broker answered but is not ready (no live device, store failing).
NOT_READY = 3
STATE_NAME = "up.json"


# -- the state file of `bin/cellbus up` -------------------------------------------------------

def state_dir() -> Path:
    """``$XDG_RUNTIME_DIR/cellbus`` if that is set, else ``/tmp/cellbus-$UID``."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(runtime) and os.path.isdir(runtime):
        return Path(runtime) / "cellbus"
    return Path("/tmp") / f"cellbus-{os.getuid()}"


def state_path() -> Path:
    return state_dir() / STATE_NAME


def _private_dir(path: Path, *, create: bool) -> None:
    """Make sure ``path`` is a directory of ours that nobody else can enter, not a symlink."""
    if create:
        try:
            path.mkdir(mode=0o700, parents=False)
        except FileExistsError:
            pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise ConfigError(f"{path} is not a private directory of this user (mode 0700); "
                          "remove it or set XDG_RUNTIME_DIR")


def write_state(state: dict[str, Any]) -> Path:
    """Write ``state`` (with this pid) to the state file, mode 0600; returns its path."""
    path = state_path()
    _private_dir(path.parent, create=True)
    tmp = path.with_name(f".{STATE_NAME}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({**state, "pid": os.getpid()}, f)
    os.replace(tmp, path)
    return path


def remove_state() -> None:
    """Remove the state file if this process wrote it (another `up` may have replaced it)."""
    path = state_path()
    try:
        if read_state(path).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ConfigError, ValueError):
        pass


def read_state(path: Path) -> dict[str, Any]:
    _private_dir(path.parent, create=False)
    with open(path, encoding="utf-8") as f:
        state = json.load(f)
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return state


def running_up() -> dict[str, Any] | None:
    """The state of the `up` whose state file is there, if that process still runs (and is
    an `up`: after ``kill -9`` its pid may have gone to another program)."""
    try:
        state = read_state(state_path())
    except (OSError, ValueError, ConfigError):
        return None
    return state if up_runs(state) else None


def up_runs(state: dict[str, Any]) -> bool:
    """Whether the `up` that wrote ``state`` still runs: its pid runs, and is an `up` (after
    ``kill -9`` its pid may have gone to another program, or be a zombie not yet reaped)."""
    try:
        cmdline = Path(f"/proc/{state.get('pid')}/cmdline").read_bytes()
    except OSError:
        return False
    return is_running(state.get("pid")) and _is_up(cmdline)


def _is_up(cmdline: bytes) -> bool:
    """Whether a process's command line is `up`'s: ``cellbus up`` (the console script, or
    ``python -m cellbus up``), or an older checkout's ``bin/up.py``."""
    argv = cmdline.split(b"\0")
    return any(a.endswith(b"up.py") for a in argv) or (
        b"up" in argv and any(a == b"cellbus" or a.endswith(b"/cellbus") for a in argv))


# -- asking the broker ------------------------------------------------------------------------

def _silence(seen: set[int]) -> str:
    """What a broker's silence means, by how far the link got (its monitor's events): one
    line asked about the key for all three, where only the last is about it."""
    if zmq.EVENT_HANDSHAKE_SUCCEEDED in seen:
        return ("its link is up, and the broker drops what this status signs: are --key-file "
                "and --packer the broker's?")
    if zmq.EVENT_CONNECTED in seen:
        return ("its port accepts connections, but no handshake finished: is the broker "
                "frozen (SIGSTOP) or overloaded?")
    return "nothing listens there: is the broker running, and is this its --gateway-bind " \
           "endpoint?"


def ask(endpoint: str, key: bytes, *, packer: str = "msgpack", timeout: float = TIMEOUT,
        keys: ClientKeys | None = None, insecure: bool = False) -> dict[str, Any]:
    """The broker's ``broker_status_reply`` content; raises ConnectionError if it is silent.
    A TCP endpoint needs ``keys`` (CURVE, as a gateway), or ``insecure``."""
    if needs_keys(endpoint) and keys is None and not insecure:
        raise ConfigError(f"{endpoint} is a TCP endpoint: give --curve-key and --broker-key "
                          "(a gateway's certificate), or --insecure-bus")
    session = Session(key, packer=packer)  # type: ignore[arg-type]
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.ipv6 = wants_ipv6(endpoint, bind=False)  # a broker at tcp://[fd00::5]:5555
    if keys is not None:
        keys.connect_with(sock)
    monitor = sock.get_monitor_socket(linkwatch.EVENTS)
    deadline = time.monotonic() + timeout
    try:
        sock.connect(endpoint)
        request = session.msg(mt.BROKER_STATUS_REQUEST, {})
        if _send(sock, session.serialize(request), deadline):
            while (left := deadline - time.monotonic()) > 0 and sock.poll(_ms(left)):
                try:
                    _, reply = session.deserialize(sock.recv_multipart())
                except ProtocolError:
                    continue
                if reply["parent_header"].get("msg_id") == request["msg_id"]:
                    return reply["content"]
        seen: set[int] = set()
        problem = linkwatch.pending_problem(monitor, endpoint, "gateway",
                                            curve=keys is not None, seen=seen)
        if problem and keys is not None:  # the broker's device or publish port refuses too
            problem += f" (is {endpoint} the broker's --gateway-bind endpoint? status asks " \
                       "there)"
        raise ConnectionError(problem or f"the broker at {endpoint} did not answer within "
                              f"{timeout:g} s ({_silence(seen)})")
    finally:
        sock.disable_monitor()
        monitor.close(0)
        sock.close(0)
        ctx.term()


def _send(sock: zmq.Socket[bytes], frames: list[bytes], deadline: float) -> bool:
    """Send ``frames`` if ``sock`` can before ``deadline``; whether it did. A broker that
    ends the link at once (its CURVE and this client's do not match: a protocol error, which
    ZeroMQ does not reconnect after) can take the DEALER's only peer away between connect
    and send, when this process is slow to get there (a loaded machine): a blocking send
    then waited forever for a peer that never comes."""
    try:
        if sock.poll(_ms(deadline - time.monotonic()), zmq.POLLOUT):
            sock.send_multipart(frames, zmq.NOBLOCK)
            return True
    except zmq.Again:  # the peer went between the poll and the send
        pass
    return False


def _ms(seconds: float) -> int:
    """``seconds`` as a poll's timeout: whole milliseconds, at least 0 (never -1: forever)."""
    return max(0, int(seconds * 1000))


def render(status: dict[str, Any], *, endpoint: str, sessions: bool = False) -> str:
    """The human-readable status: one line per device, then the requests waiting."""
    lines = [f"broker {endpoint}"]
    rows = [("DEVICE", "ALIVE", "CAPACITY", "LOAD", "FREE", "SESSIONS", "REJECTED")]
    devices = status.get("devices") or []
    for d in devices:
        draining = d["alive"] and d.get("draining") is True  # it takes no new work
        rows.append((d["device"], "draining" if draining else "yes" if d["alive"]
                     else f"no ({d['silent']:g} s silent)",
                     str(d["capacity"]), str(d["load"]), "0" if draining else str(d["free"]),
                     str(d["session_count"]), str(d.get("rejected", 0))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if j < 2 else c.rjust(w)
                               for j, (c, w) in enumerate(zip(row, widths))).rstrip())
        if i > 0 and devices[i - 1].get("sandbox"):
            lines.append(f"    {devices[i - 1]['sandbox']}")
        if i > 0 and devices[i - 1].get("version", "") != status.get("version", ""):
            lines.append(f"    runs cellbus {devices[i - 1].get('version') or 'unknown'} "
                         f"(the broker {status.get('version') or 'unknown'})")
        if sessions and i > 0:
            for s in devices[i - 1]["sessions"]:
                where = f"{s['user']}/{s['worksheet']}" if s["user"] else "(unknown worksheet)"
                lines.append(f"    {s['session']}  {where}{'  starting' if s['starting'] else ''}")
    if not devices:
        lines.append("(no device has registered)")
    for g in status.get("gateways") or []:
        lines.append(f"gateway {g['gateway']}: " + (
            "alive" if g["alive"] else f"stopped {g['silent']:g} s ago" if g.get("stopped")
            else f"not alive ({g['silent']:g} s silent)") + (
            ", NO OUTPUT FEED (its --subscribe link to the broker is down: its WebSockets get "
            "no output)" if g["alive"] and g.get("feed") is False else "") + (
            f", runs cellbus {g.get('version') or 'unknown'}"
            if g.get("version") != status.get("version") else ""))
    if status.get("gateways") == []:
        lines.append("(no gateway has been heard)")
    lines.append(f"requests waiting (needs_work): {status.get('needs_work', 0)}; "
                 f"not yet given to a device: {status.get('not_sent', 0)}; "
                 f"sessions waiting for a free place: {status.get('waiting_for_room', 0)}")
    for refused in status.get("refused") or []:
        lines.append(f"REFUSED on the {refused['port']} port: {refused['who']} "
                     f"({times(refused['count'])}, the last {refused['ago']:g} s ago)")
    if status.get("store_writable") is False:
        lines.append("STORE CANNOT WRITE (disk full or failing): new work is refused with 507")
    problems = verdict(status)
    lines.append("ready: " + (f"no ({', '.join(problems)})" if problems else "yes"))
    return "\n".join(lines)


def verdict(status: dict[str, Any]) -> list[str]:
    """What keeps the broker of ``status`` from being ready (as the gateway's /ready)."""
    live = [d for d in status.get("devices") or [] if d.get("alive")]
    taking = any(d.get("draining") is not True for d in live)  # draining: stopping
    gateways = status.get("gateways")  # None: not known (a broker just started, or older)
    up = [g for g in gateways or [] if g.get("alive")]
    door = gateways is None or any(g.get("feed") is not False for g in up)
    closed = ["no live gateway" if not up else "no gateway with its output feed"]
    return (([] if taking else ["every live device is draining"] if live
             else ["no live device"]) + ([] if door else closed) +
            ([] if status.get("store_writable") is not False else ["store cannot write"]))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cellbus status",
        description="Show the broker's devices (alive, capacity, load, free places, sessions) "
                    "and the requests waiting. With no --broker/--key-file, asks the system "
                    f"`bin/cellbus up` runs (its state file {state_path()}). Exit status: 0 "
                    f"ready, {NOT_READY} answered but not ready, 1 no answer, 2 bad options.")
    add_option(p, "--broker", type=endpoint, metavar="ENDPOINT", node="gateway",
               help="the broker's gateway endpoint, e.g. tcp://hub:5555")
    add_option(p, "--key-file", metavar="PATH", help="file holding the deployment key")
    add_option(p, "--packer", default="msgpack", choices=["msgpack", "json"],
               help="bus encoding of the broker")
    add_curve_options(p, server=False)
    p.add_argument("--state", metavar="PATH", type=Path,
                   help=f"state file of a running `bin/cellbus up` (default {state_path()})")
    p.add_argument("--timeout", type=positive_seconds, default=TIMEOUT, metavar="S",
                   help=f"seconds to wait for the broker (default {TIMEOUT:g})")
    p.add_argument("-s", "--sessions", action="store_true", help="list each device's sessions")
    p.add_argument("--json", action="store_true", help="print the broker's reply as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parse_args(parser(), argv)
    endpoint, key_file = args.broker, args.key_file
    try:
        if not (endpoint and key_file) or args.state:
            path = args.state or state_path()
            try:
                state = read_state(path)
            except FileNotFoundError:
                raise ConfigError(f"no --broker and --key-file given, and no `bin/cellbus up` "
                                  f"is running (no {path})") from None
            except (OSError, ValueError) as e:
                raise ConfigError(f"cannot read {path}: {e}") from None
            if not up_runs(state):
                raise ConfigError(f"the `bin/cellbus up` that wrote {path} (pid "
                                  f"{state.get('pid')}) is gone; remove the file")
            endpoint, key_file = endpoint or state.get("broker"), key_file or state.get("key_file")
        keys = ClientKeys(args.curve_key, args.broker_key) if args.curve_key else None
        status = ask(str(endpoint), load_key(key_file), packer=args.packer, timeout=args.timeout,
                     keys=keys, insecure=args.insecure_bus)
    except ConfigError as e:
        print(f"cellbus status: {e}", file=sys.stderr)
        return 2
    except (ConnectionError, zmq.ZMQError) as e:
        print(f"cellbus status: {e}", file=sys.stderr)
        return 1
    if not status.get("ok"):
        print(f"cellbus status: the broker refused: {status.get('error')}", file=sys.stderr)
        return 1
    problems = verdict(status)
    print(json.dumps({**status, "ready": not problems, "problems": problems}, indent=2)
          if args.json else render(status, endpoint=str(endpoint), sessions=args.sessions))
    return NOT_READY if problems else 0


if __name__ == "__main__":
    sys.exit(main())
