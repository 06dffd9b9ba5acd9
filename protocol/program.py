"""Running one node as a program: its event loop, the signals it answers, its exit status.

SIGTERM and SIGINT ask the node to stop and it stops gracefully (a node drains in
:meth:`~protocol.node.Node.shutdown`); Ctrl-C prints one log line, not a traceback. SIGHUP
asks it to reload, as daemons do (systemd's ``ExecReload``, logrotate's ``postrotate``): it
reopens its ``--log-file``, reads its key files again (:mod:`protocol.rekey`), and goes on.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from .errors import ConfigError, StoppedBeforeStart
from .logfile import reopen_log_file
from .node import Node


def run_node(make: Callable[[], Node | Awaitable[Node]]) -> int:
    """Run the node built by ``make`` until SIGTERM/SIGINT; the exit status for ``sys.exit``."""

    async def main() -> int:
        made = make()
        node = await made if asyncio.iscoroutine(made) else made
        assert isinstance(node, Node)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, _on_signal, node, sig)
        loop.add_signal_handler(signal.SIGHUP, _on_hangup, node)
        await node.run()
        return 1 if node.crashed else 0  # a supervisor restarts a node that failed

    try:
        return _event_loop_runner()(main())
    except ConfigError as e:
        logging.getLogger("cellbus").error("%s", e)
        return 2
    except StoppedBeforeStart as e:
        logging.getLogger("cellbus").info("%s", e)
        return 0
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        return 130


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, int]], int]:
    """uvloop's ``run`` where it is installed (setup.cfg asks for it wherever it builds), else
    ``asyncio.run``. A good share of every node's CPU goes to the event loop's own machinery
    (futures, callbacks, polling: 9-14 % of each node's main thread in cProfile); on libuv
    the chain used about 10 % less CPU per execution (bench/RESULTS.md, "Profiling and
    fixes")."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def _on_hangup(node: Node) -> None:
    """SIGHUP: reopen the log file, then reload the key files (README's "Rotating keys and
    certificates"), saying each; the node goes on. One meaning whether the node logs to a
    file, its journal or a terminal: a rotation step must never stop a node it reaches."""
    if (path := reopen_log_file()) is not None:
        node.log.info("%s got SIGHUP: reopened its log file %s; going on (a file moved away "
                      "is followed without it)", node.name, path)
    if node.key_files is not None:
        node.key_files.reload(node)


def _on_signal(node: Node, sig: signal.Signals) -> None:
    if node.stop_said:  # a second Ctrl-C or SIGTERM (or one after a crash or a revocation)
        node.log.info("%s got %s: it is stopping already, gracefully (a device lets "
                      "its running cells finish first)", node.name, sig.name)
        return
    node.log.info("%s got %s, stopping gracefully", node.name, sig.name)
    node.request_stop(said=True)
