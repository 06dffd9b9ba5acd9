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
elif _argv[1:4] == ["-m", "cellbus", "up"] and os.environ.get("BENCH_CALLGRIND_NODES"):
    # `cellbus up` itself: its nodes start under valgrind, which on a loaded 2-core machine
    # takes longer than the 30 s `up` waits for a socket or the gateway's port (the twelfth
    # pass lost four runs to it). Give it 300 s; `up` is not counted, nothing else changes.
    import importlib.abc
    import importlib.machinery
    from types import ModuleType

    class _LongerWaits(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: object, target: object = None) -> object:
            if name != "cellbus.up":
                return None
            sys.meta_path.remove(self)
            spec = importlib.machinery.PathFinder.find_spec(name, path)  # type: ignore[arg-type]
            if spec is None or spec.loader is None:
                return spec
            run = spec.loader.exec_module

            def exec_module(module: ModuleType) -> None:
                run(module)
                for method in ("wait_for_socket", "wait_for_port"):
                    fn = getattr(module.Supervisor, method, None)
                    if fn is not None and fn.__defaults__:
                        fn.__defaults__ = (300.0,)

            spec.loader.exec_module = exec_module  # type: ignore[method-assign]
            return spec

    sys.meta_path.insert(0, _LongerWaits())
