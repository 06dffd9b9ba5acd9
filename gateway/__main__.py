"""``python -m gateway`` (``bin/cellbus gateway``): run the web gateway."""

from __future__ import annotations

import argparse
import sys

from protocol.config import add_common_options, add_option, load_key
from protocol.node import run_node, setup_logging
from protocol.wire import Session

from .node import MAX_INPUT, Gateway


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cellbus gateway",
        description="Run a gateway: the web server browsers and HTTP clients talk to.")
    add_option(p, "--host", default="127.0.0.1", node="gateway", help="address to listen on")
    add_option(p, "--port", type=int, default=8888, node="gateway", help="port to listen on")
    add_option(p, "--broker", default="tcp://127.0.0.1:5555", metavar="ENDPOINT",
               node="gateway", help="the broker's gateway endpoint")
    add_option(p, "--subscribe", default="tcp://127.0.0.1:5557", metavar="ENDPOINT",
               node="gateway", help="the broker's publish endpoint")
    add_option(p, "--max-input", type=int, default=MAX_INPUT, metavar="BYTES",
               help="largest code accepted; larger answers 413")
    add_common_options(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.log_level)

    def make() -> Gateway:
        return Gateway(Session(load_key(args.key_file), packer=args.packer), broker=args.broker,
                       subscribe=args.subscribe, host=args.host, port=args.port,
                       max_input=args.max_input)

    return run_node(make)


if __name__ == "__main__":
    sys.exit(main())
