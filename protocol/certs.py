"""``bin/cellbus cert``: make, list, revoke and rotate the CURVE certificates of a
deployment's bus (protocol/curve.py describes the key folder).

To rotate a device's or gateway's key with no cell lost, ``--rotate NAME`` makes a new
pair while the broker goes on accepting the old key too; give the node its new secret and
send it SIGHUP (it reconnects with it), then ``--retire NAME`` stops accepting the old key.
Revoking a key, then making it again, also replaces it, at once: the node is cut off.

For example::

    bin/cellbus cert broker --role broker --dir keys     # once, on the broker's host
    bin/cellbus cert dev1 --role device --dir keys       # copy keys/dev1.key_secret to dev1
    bin/cellbus cert --list --dir keys
    bin/cellbus cert --revoke dev1 --dir keys            # refused at once, dropped in ~1 s
    bin/cellbus cert dev1 --role device --dir keys       # its new key (a rotation)
    bin/cellbus cert --rotate dev1 --dir keys            # new pair; the old one still works
    bin/cellbus cert --retire dev1 --dir keys            # once dev1 reloaded (SIGHUP)
"""

from __future__ import annotations

import argparse
import os
import sys

from .config import add_option, parse_args, plain
from .curve import (BROKER, ROLES, listing, make_certificate, retire_previous, revoke,
                    rotate_certificate)
from .errors import ConfigError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cellbus cert",
                                description=plain(" ".join(__doc__.split("\n\n")[:2])))
    p.add_argument("name", nargs="?", help="the node the certificate is for")
    p.add_argument("--role", choices=[BROKER, *ROLES], help="what the node is")
    add_option(p, "--dir", metavar="DIR", default="keys",
               help="the key folder (the broker's --curve-dir)")
    p.add_argument("--list", action="store_true", help="list the keys the broker accepts")
    p.add_argument("--revoke", metavar="NAME", help="stop accepting NAME's key")
    p.add_argument("--rotate", metavar="NAME",
                   help="a new key pair for NAME; its old key is accepted too until --retire")
    p.add_argument("--retire", metavar="NAME",
                   help="stop accepting the key NAME had before --rotate")
    return p


def show_listing(directory: str) -> None:
    """Print the keys the broker of ``directory`` accepts, one a line. A folder that is not
    there (a typo in --dir, or the default ``keys`` of another working directory) and one that
    accepts no key are said so: an empty listing looked the same for both."""
    if not os.path.isdir(directory):
        raise ConfigError(f"no key folder {directory}: give the broker's --curve-dir as --dir")
    keys = listing(directory)
    for role, name in keys:
        print(f"{role:8} {name}")
    if not keys:
        print(f"{directory} accepts no device or gateway key (make one with cellbus cert NAME "
              f"--role {'|'.join(ROLES)} --dir {directory})")


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = parse_args(p, argv)
    try:
        if args.list:
            show_listing(args.dir)
        elif args.revoke:
            removed = revoke(args.dir, args.revoke)
            if not removed:
                p.error(f"no accepted key named {args.revoke!r} in {args.dir}")
            print(f"revoked {args.revoke}: {', '.join(map(str, removed))}")
        elif args.rotate:
            secret = rotate_certificate(args.dir, args.rotate)
            if args.rotate == BROKER:
                print(f"{secret}  (new: copy {secret.with_suffix('.key')} to every device's "
                      "and gateway's host as broker.next.key, beside their --broker-key, "
                      "then restart the broker)")
            else:
                print(f"{secret}  (new secret: copy it to {args.rotate}'s host, over its old "
                      f"one, and send that node SIGHUP; then: cellbus cert --retire "
                      f"{args.rotate} --dir {args.dir})")
        elif args.retire:
            if not retire_previous(args.dir, args.retire):
                p.error(f"{args.retire!r} has no previous key in {args.dir} (--rotate first)")
            print(f"retired the previous key of {args.retire}: a node still using it is cut "
                  "off within a second")
        elif args.name and args.role:
            secret = make_certificate(args.dir, args.name, args.role)
            public = secret.with_suffix(".key")
            print(f"{secret}  (secret: on {args.name}'s host only)\n{public}  (public)")
        else:
            p.error("give NAME --role ROLE, --list, --revoke NAME, --rotate NAME or "
                    "--retire NAME")
    except ConfigError as e:
        print(f"cellbus cert: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
