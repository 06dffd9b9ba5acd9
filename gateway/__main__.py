"""``python -m gateway`` (``bin/cellbus gateway``): run the web gateway."""

from __future__ import annotations

import argparse
import sys

from protocol.config import add_common_options, add_option, load_key, parse_args
from protocol.node import run_node, setup_logging
from protocol.wire import Session

from .access import TOKEN_RATE, make_policy
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
    add_access_options(p)
    add_common_options(p)
    return p


def add_access_options(p: argparse.ArgumentParser) -> None:
    """--auth, --allow-anonymous, --allow-origin, --allow-host, --rate (also for `up`)."""
    add_option(p, "--auth", choices=["token", "none"], node="gateway",
               help="token: every API request needs a user's token (`bin/cellbus user add`); "
                    "none: anyone who reaches the gateway. Default none on a loopback "
                    "--host, else token")
    add_option(p, "--allow-anonymous", action="store_true", node="gateway",
               help="let --auth none serve a non-loopback address (a public service)")
    add_option(p, "--allow-origin", action="append", metavar="ORIGIN", node="gateway",
               help="pages of this origin (https://example.org) may embed cells: CORS and "
                    "WebSocket; repeatable; * for any (the env variable takes several, "
                    "space-separated)")
    add_option(p, "--allow-host", action="append", metavar="NAME", node="gateway",
               help="a loopback gateway also answers to this Host name (a proxy in front); "
                    "repeatable")
    add_option(p, "--rate", metavar="N/min", node="gateway",
               help="requests that run code (evaluate, interact, restart) per user, or per "
                    "address without auth; beyond it 429 with Retry-After. 0: no limit "
                    f"(default: {TOKEN_RATE} with --auth token, else no limit)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(parser(), argv, node="gateway")
    setup_logging(args.log_level)

    def make() -> Gateway:
        access = make_policy(host=args.host, port=args.port, auth=args.auth,
                             allow_anonymous=args.allow_anonymous, origins=args.allow_origin,
                             hosts=args.allow_host, rate=args.rate)
        return Gateway(Session(load_key(args.key_file), packer=args.packer), broker=args.broker,
                       subscribe=args.subscribe, host=args.host, port=args.port,
                       max_input=args.max_input, access=access)

    return run_node(make)


if __name__ == "__main__":
    sys.exit(main())
