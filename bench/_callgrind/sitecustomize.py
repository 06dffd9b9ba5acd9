"""Only on the PYTHONPATH of nodes that bench/callgrind.py starts: re-executes the nodes named
in ``BENCH_CALLGRIND_NODES`` (``python -m broker`` and so on) under callgrind, with
instrumentation off until bench/callgrind.py switches it on."""

from __future__ import annotations

import os
import sys

_argv = getattr(sys, "orig_argv", sys.argv)
_nodes = os.environ.get("BENCH_CALLGRIND_NODES", "").split(",")
if ("-m" in _argv[:-1] and _argv[_argv.index("-m") + 1] in _nodes
        and not os.environ.get("BENCH_CALLGRIND_ACTIVE")):
    _name = _argv[_argv.index("-m") + 1]
    os.environ["BENCH_CALLGRIND_ACTIVE"] = "1"  # its own children run as usual
    _out = os.environ.get("BENCH_CALLGRIND_OUT", ".")
    os.execvp("valgrind", ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                           f"--callgrind-out-file={_out}/{_name}.%p.out",
                           sys.executable, *_argv[1:]])
