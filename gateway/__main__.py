"""``python -m gateway`` (``bin/cellbus gateway``): run the web gateway."""

from __future__ import annotations

import argparse
import sys

from protocol.config import (add_common_options, add_curve_options, add_option, endpoint,
                             bus_session, parse_args, tcp_port, use_curve)
from protocol.numbers import count, positive_count, positive_seconds
from protocol.logfile import setup_logging
from protocol.program import run_node
from protocol.wire import FROM_BROKER_MAX_VALUES

from .access import CLIENT_REQUESTS, TOKEN_RATE, make_policy
from .connections import BODY_TIMEOUT, IDLE_TIMEOUT, PER_ADDRESS, ConnectionLimits
from .node import MAX_INPUT, Gateway
from .outbox import CLIENT_BUFFER, CLIENT_STALL, TOO_SLOW
from .tls import server_context


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cellbus gateway",
        description="Run a gateway: the web server browsers and HTTP clients talk to.")
    add_option(p, "--host", default="127.0.0.1", node="gateway", help="address to listen on")
    add_option(p, "--port", type=tcp_port, default=8888, node="gateway",
               help="port to listen on (0: a free one, said in the log)")
    add_option(p, "--broker", type=endpoint, default="tcp://127.0.0.1:5555", metavar="ENDPOINT",
               node="gateway", help="the broker's gateway endpoint")
    add_option(p, "--subscribe", type=endpoint, default="tcp://127.0.0.1:5557", metavar="ENDPOINT",
               node="gateway", help="the broker's publish endpoint")
    add_option(p, "--max-input", type=positive_count, default=MAX_INPUT, metavar="BYTES",
               help="largest code accepted; larger answers 413")
    add_option(p, "--client-buffer", type=positive_count, default=CLIENT_BUFFER, metavar="BYTES",
               node="gateway",
               help="output a client may leave unread: past it the gateway closes its "
                    f"WebSocket with code {TOO_SLOW} (cellbus.js resumes from the store) "
                    "and drops its long-poll (the client asks again)")
    add_option(p, "--client-stall", type=positive_seconds, default=CLIENT_STALL, metavar="SECONDS",
               node="gateway",
               help="a long-poll whose client takes none of its answer for this long is "
                    "dropped (the client asks again)")
    add_option(p, "--idle-timeout", type=positive_seconds, default=IDLE_TIMEOUT, metavar="SECONDS",
               node="gateway",
               help="a connection must send a request's headers within this long of opening "
                    "(or of its previous request), else it is closed")
    add_option(p, "--body-timeout", type=positive_seconds, default=BODY_TIMEOUT, metavar="SECONDS",
               node="gateway", help="a request's body must arrive within this long")
    add_option(p, "--max-per-address", type=count, default=PER_ADDRESS, metavar="N",
               node="gateway",
               help="connections (WebSockets included) one client address may hold open; "
                    "past it a new one gets 503 and is closed. 0: no cap")
    add_option(p, "--legacy-buffers", action="store_true", node="gateway",
               help="send a Jupyter channels client that speaks JSON (no v1 subprotocol) "
                    "a message with buffers (a widget's bytes) as jupyter_server sends it: "
                    "one binary frame. Off, such a message goes as JSON text without its "
                    "buffers: jupyter_server's GatewayClient (jupyter lab --gateway-url) "
                    "cannot read a binary frame and stops relaying the kernel's messages "
                    "at the first")
    add_access_options(p)
    add_curve_options(p, server=False)
    add_common_options(p)
    return p


def add_access_options(p: argparse.ArgumentParser) -> None:
    """--auth, --allow-anonymous, --allow-origin, --allow-host, --trusted-proxy, --rate,
    --tls-cert, --tls-key, --log-requests (also for `up`)."""
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
    add_option(p, "--trusted-proxy", action="append", metavar="ADDRESS", node="gateway",
               help="a reverse proxy in front of the gateway (an address, or a network such "
                    "as 10.0.0.0/8; repeatable): a request it forwards counts as coming from "
                    "the client its X-Forwarded-For names, for --rate, the sessions of "
                    "anonymous visitors and the access log. The gateway then serves the "
                    "public: --auth none needs --allow-anonymous")
    add_option(p, "--rate", metavar="N/min", node="gateway",
               help="requests that run code (evaluate, interact, restart) or add to the "
                    "store (permalinks, new worksheets' layouts) per user, or per "
                    "address without auth; beyond it 429 with Retry-After. 0: no limit "
                    f"(default: {TOKEN_RATE} with --auth token, else no limit)")
    add_option(p, "--client-requests", metavar="N/s", node="gateway",
               help="requests of any kind per user, or per address without auth (a flood "
                    "of small reads, or of refused ones, costs the gateway's loop as much); "
                    "beyond it 429 with Retry-After, held a second before it is written. "
                    f"0: no limit (default: {CLIENT_REQUESTS} with --auth token or on a "
                    "public gateway, else no limit)")
    add_option(p, "--tls-cert", metavar="FILE", node="gateway",
               help="serve HTTPS and WSS with this certificate (PEM, its chain after it) "
                    "where nothing in front of the gateway ends TLS; with --tls-key")
    add_option(p, "--tls-key", metavar="FILE", node="gateway",
               help="the private key (PEM) of --tls-cert")
    add_option(p, "--log-requests", action="store_true", node="gateway",
               help="log every request at INFO; without it only redirects and refused or "
                    "failed requests are (the rest at DEBUG: --log-level DEBUG shows them)")


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = parse_args(p, argv, node="gateway")  # numbers checked there (protocol.numbers)
    setup_logging(args.log_level, file=args.log_file)

    def make() -> Gateway:
        access = make_policy(host=args.host, port=args.port, auth=args.auth,
                             allow_anonymous=args.allow_anonymous, origins=args.allow_origin,
                             hosts=args.allow_host, rate=args.rate,
                             log_requests=args.log_requests, proxies=args.trusted_proxy,
                             requests=args.client_requests)
        bus = bus_session(args.key_file, packer=args.packer,
                      max_values=FROM_BROKER_MAX_VALUES)  # it hears only the broker
        gateway = Gateway(bus,
                          broker=args.broker, subscribe=args.subscribe, host=args.host,
                          port=args.port, max_input=args.max_input, access=access,
                          client_buffer=args.client_buffer, client_stall=args.client_stall,
                          legacy_buffers=args.legacy_buffers,
                          limits=ConnectionLimits(args.idle_timeout, args.body_timeout,
                                                  args.max_per_address),
                          tls=server_context(args.tls_cert, args.tls_key))
        use_curve(gateway, args)
        return gateway

    return run_node(make)


if __name__ == "__main__":
    sys.exit(main())
