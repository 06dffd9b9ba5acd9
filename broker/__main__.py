"""``python -m broker`` (``bin/cellbus broker``): run the broker and its store."""

from __future__ import annotations

import argparse
import sys

from protocol.config import (add_common_options, add_curve_options, add_metrics_option,
                             add_option, endpoint, bus_session, parse_args, use_curve)
from protocol.errors import ConfigError
from protocol.msgtypes import FEED_HWM
from protocol.numbers import count
from protocol.logfile import setup_logging
from protocol.program import run_node

from .node import Broker
from .quotas import add_quota_options, quota_config
from .retention import DEFAULT_TEXT, parse_duration
from .store import ACCEPTED, CONNECT_TIMEOUT, UnknownStore, default_sqlite_url, open_store
from .store_owner import StoreHold, hold_store
from .storewait import FOREVER, RETRY_EVERY, store_wait


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cellbus broker",
        description="Run the broker: it persists every request and output in its store and "
                    "passes work from gateways to devices.")
    add_option(p, "--gateway-bind", type=endpoint, default="tcp://127.0.0.1:5555",
               metavar="ENDPOINT", node="broker", help="where gateways connect")
    add_option(p, "--device-bind", type=endpoint, default="tcp://127.0.0.1:5556",
               metavar="ENDPOINT", node="broker", help="where devices connect")
    add_option(p, "--publish-bind", type=endpoint, default="tcp://127.0.0.1:5557",
               metavar="ENDPOINT", node="broker", help="where gateways subscribe to output")
    add_option(p, "--store", metavar="URL",
               help=f"store URL ({ACCEPTED}); default a SQLite file in your data directory")
    add_option(p, "--store-wait", type=store_wait, default=FOREVER, metavar="SECONDS",
               node="broker", help="at start, how long to go on trying a store whose server "
               f"does not answer (each attempt waits up to {CONNECT_TIMEOUT:g} s, then a "
               f"warning and another try {RETRY_EVERY:g} s later); then exit, status 2. "
               "'forever' or seconds; 0: one attempt")
    add_metrics_option(p)
    add_curve_options(p, server=True)
    add_option(p, "--feed-hwm", type=count, default=FEED_HWM, metavar="N",
               help="output messages queued for a slow gateway before the feed drops some "
                    "(gateways fetch dropped ones from the store)")
    add_option(p, "--retention", type=parse_duration, default=DEFAULT_TEXT, metavar="DURATION",
               node="broker", help="how long after a session finished its messages stay whole; "
               "then they are compacted to each cell's final output (e.g. 45s, 12h, 7d; 0 or "
               "off: never)")
    add_quota_options(p)
    add_common_options(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parse_args(parser(), argv, node="broker")
    setup_logging(args.log_level, file=args.log_file)

    held: list[StoreHold | None] = []

    def make() -> Broker:
        url = args.store or default_sqlite_url()
        try:
            store = open_store(url)
        except UnknownStore as e:
            raise ConfigError(str(e)) from None
        hold = hold_store(url)  # before anything is read: one broker per SQLite file
        held.append(hold)
        broker = Broker(bus_session(args.key_file, packer=args.packer), store,
                      gateway_bind=args.gateway_bind, device_bind=args.device_bind,
                      publish_bind=args.publish_bind, feed_hwm=args.feed_hwm,
                      retention_period=args.retention, quotas=quota_config(args))
        broker.metrics_port = args.metrics_port
        broker.store_wait = args.store_wait
        broker.store_file = hold.path if hold is not None else None
        use_curve(broker, args)
        return broker

    try:
        return run_node(make)
    finally:
        for hold in held:
            if hold is not None:
                hold.release()


if __name__ == "__main__":
    sys.exit(main())
