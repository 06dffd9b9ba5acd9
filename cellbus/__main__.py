"""cellbus launcher (``cellbus`` once installed, ``bin/cellbus`` from a checkout):

  cellbus up           the whole system on this machine; prints the URL
  cellbus broker ...   the broker and its store              (--help for options)
  cellbus device ...   one device on this machine            (--help for options)
  cellbus gateway ...  one web gateway                       (--help for options)
  cellbus key PATH     write a fresh deployment key (mode 0600)
  cellbus key --next|--switch|--retire PATH   rotate it, step by step (README)
  cellbus status       devices, their load and sessions, requests waiting (--help)
  cellbus user add|remove|list NAME   tokens for gateways with --auth token (--help)
  cellbus cert NAME --role ROLE       CURVE certificates for TCP bus links (--help)
  cellbus bench        cellbus against Jupyter Kernel Gateway; writes bench/RESULTS.md
  cellbus bench --scale   how cost grows: 1-1000 sessions, 1-4 devices, 10^3-10^6 stored
  cellbus --version    the installed version
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

#: Each command's module; its ``main(argv)`` runs it, in this process.
COMMANDS = {"up": "cellbus.up", "broker": "broker.__main__", "device": "device.__main__",
            "gateway": "gateway.__main__", "status": "broker.status", "user": "broker.users",
            "cert": "protocol.certs"}


KEY_USAGE = ("usage: cellbus key PATH   (a fresh deployment key, mode 0600, its folder made if "
             "missing; never overwrites)\n"
             "       cellbus key --next PATH     (rotation, 1: a new key accepted too)\n"
             "       cellbus key --switch PATH   (2: the new key signs, the old one is accepted)\n"
             "       cellbus key --retire PATH   (3: the old key is refused)\n"
             "after each step copy PATH to every node and send each SIGHUP")
ROTATION_STEPS = ("--next", "--switch", "--retire")


def key(argv: list[str]) -> int:
    """``cellbus key PATH``: write a fresh deployment key, mode 0600. A path is never taken
    for an option: ``key --help`` must not write a file named ``--help``."""
    from protocol.config import generate_key
    if argv[:1] in (["-h"], ["--help"]):
        print(KEY_USAGE)
        return 0
    if argv[:1] == ["--"]:
        argv = argv[1:]
    elif argv[:1] and argv[0] in ROTATION_STEPS:
        if len(argv) != 2:
            print(KEY_USAGE, file=sys.stderr)
            return 2
        return rotate_key(argv[0].removeprefix("--"), argv[1])
    elif argv and argv[0].startswith("-"):
        print(f"cellbus key: unknown option {argv[0]!r} (for a file of that name: "
              f"./{argv[0]})", file=sys.stderr)
        return 2
    if len(argv) != 1:
        print(KEY_USAGE, file=sys.stderr)
        return 2
    if os.path.lexists(argv[0]):
        print(f"cellbus key: {argv[0]} exists; a key is never overwritten", file=sys.stderr)
        return 1
    try:
        generate_key(argv[0])  # and its folder, private (README's /etc/cellbus/bus.key)
    except OSError as e:
        print(f"cellbus key: cannot write {argv[0]}: {e.strerror}", file=sys.stderr)
        return 1
    print(argv[0])
    return 0


def rotate_key(step: str, path: str) -> int:
    """``cellbus key --next|--switch|--retire PATH``: one step of a bus key's rotation."""
    from protocol.errors import ConfigError
    from protocol.rekey import rotate
    try:
        print(rotate(path, step))
    except ConfigError as e:
        print(f"cellbus key --{step}: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"cellbus key --{step}: cannot rewrite {path}: {e.strerror}", file=sys.stderr)
        return 1
    return 0


def bench(argv: list[str]) -> int:
    """``cellbus bench``: the comparison in bench/, which only a checkout has."""
    name = "scale.py" if "--scale" in argv else "compare.py"
    argv = [a for a in argv if a != "--scale"]
    script = Path(__file__).resolve().parent.parent / "bench" / name
    if not script.is_file():
        print("cellbus bench: the benchmarks live in a checkout of cellbus; run bin/cellbus "
              "bench there", file=sys.stderr)
        return 2
    os.environ["CELLBUS_BENCH_COMMAND"] = " ".join(["bin/cellbus bench", *argv])
    os.execv(sys.executable, [sys.executable, str(script), *argv])


def usage(argv: list[str]) -> int:
    from protocol.config import plain
    print(plain((__doc__ or "").strip()))
    return 0


def version(argv: list[str]) -> int:
    from protocol.version import VERSION
    print(f"cellbus {VERSION}")
    return 0


LOCAL: dict[str, Callable[[list[str]], int]] = {
    "key": key, "bench": bench, "help": usage, "-h": usage, "--help": usage,
    "--version": version}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if command in LOCAL:
        return LOCAL[command](rest)
    if command not in COMMANDS:
        print(f"cellbus: unknown command {command!r} (try cellbus help)", file=sys.stderr)
        return 2
    run: Callable[[list[str]], int] = importlib.import_module(COMMANDS[command]).main
    return run(rest)


if __name__ == "__main__":
    sys.exit(main())
