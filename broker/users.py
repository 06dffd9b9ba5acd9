"""``python -m broker.users`` (``bin/cellbus user``): the users of gateways with ``--auth token``.

::

    bin/cellbus user add NAME [--rotate]   a new token for NAME; printed alone on the last line
    bin/cellbus user remove NAME           revoke NAME's token
    bin/cellbus user list                  who has a token

It writes the broker's store directly (``--store``; by default the same SQLite file the broker
and ``bin/cellbus up`` use), and keeps only each token's SHA-256 (see :mod:`protocol.tokens`).
A store no broker has used (a typo in ``--store``: :mod:`broker.store.unused`) is refused
by ``list`` and ``remove``, and ``add`` there says it made a new store. Running gateways
ask the broker, which reads the store on every ask, so a change counts without a restart:
a removed token stops working once the gateways' short cache expires. A MongoDB server that
does not answer within ``--timeout`` (5 s) ends the command in one line, status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import time

from protocol.config import add_option, parse_args
from protocol.numbers import positive_seconds
from protocol.tokens import new_token, token_hash, valid_user_name

from .store import (ACCEPTED, CONNECT_TIMEOUT, Store, StoreError, UserRecord, default_sqlite_url,
                    open_store)
from .store.base import redact_url
from .store.unused import unused_store
from .store_owner import held_by_another_name

#: Seconds a gateway may go on accepting a removed token (its cache; see gateway/auth.py).
REVOKE_DELAY = 1


class UserError(Exception):
    """A user command that cannot be done; the message says what to do instead."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cellbus user",
        description="Manage the users of gateways started with --auth token. Each user has "
                    "one token; the store keeps only its SHA-256.")
    store = argparse.ArgumentParser(add_help=False)
    add_option(store, "--store", metavar="URL",
               help=f"the broker's store ({ACCEPTED}); default the SQLite file the broker "
                    "and `bin/cellbus up` use")
    store.add_argument("--timeout", type=positive_seconds, default=CONNECT_TIMEOUT,
                       metavar="S", help="seconds to wait for a MongoDB store's server to "
                       f"answer before giving up in one line (default {CONNECT_TIMEOUT:g}; "
                       "the URL's serverSelectionTimeoutMS when smaller)")
    commands = p.add_subparsers(dest="command", required=True, metavar="add|remove|list")
    add = commands.add_parser("add", parents=[store],
                              help="make a token for a user and print it (once)")
    add.add_argument("name", help="user name: letters, digits, _ . @ -; up to 64 characters")
    add.add_argument("--rotate", action="store_true",
                     help="the user exists: give them a new token (the old one stops working)")
    remove = commands.add_parser("remove", parents=[store], help="revoke a user's token")
    remove.add_argument("name")
    commands.add_parser("list", parents=[store], help="list the users")
    return p


async def add(store: Store, name: str, *, rotate: bool = False, store_flag: str = "") -> str:
    """Store a new token's hash for ``name``; return the token. ``store_flag`` is the
    ``--store`` the command was given, repeated in the command the refusal suggests."""
    if not valid_user_name(name):
        raise UserError(f"{name!r} cannot be a user name: use letters, digits and _ . @ - "
                        "(up to 64 characters, starting with a letter or digit)")
    if await store.get_user(name) is not None and not rotate:
        raise UserError(f"user {name} already has a token; `bin/cellbus user add {name} "
                        f"--rotate{store_flag}` replaces it (the old one stops working)")
    token = new_token()
    await store.put_user(UserRecord(name, token_hash(token), time.time()))
    return token


#: Where the broker says which store it uses, for the words on a store no broker has used.
BROKER_SAYS = ("the broker's start line names its store (\"broker store: SQLite file ...\" or "
               "\"broker store: MongoDB ...\"); give that store as --store")


async def run(args: argparse.Namespace) -> str:
    """Do the command on the store; return what to print."""
    url = args.store or default_sqlite_url()
    if (elsewhere := held_by_another_name(url)) is not None:
        raise StoreError(elsewhere)
    new = await unused_store(url, args.timeout)
    if new is not None and args.command != "add":
        raise StoreError(f"no store {new.where}: nothing to {args.command}{new.hint}. Is this "
                         f"the broker's --store? {BROKER_SAYS}")
    async with open_store(url, connect_timeout=args.timeout) as store:
        where = redact_url(url)
        if args.command == "add":
            again = f" --store {shlex.quote(where)}" if args.store else ""  # no password
            token = await add(store, args.name, rotate=args.rotate, store_flag=again)
            if new is not None:  # users may be added before the broker first starts
                print(f"cellbus user: note: made a new store {new.where}; no broker has used "
                      f"it yet{new.hint}. If a broker runs, this is not its store: "
                      f"{BROKER_SAYS}", file=sys.stderr)
            return (f"{'new token for' if args.rotate else 'added'} user {args.name} in {where}\n"
                    "give them this token; it is not shown again (the store keeps only its "
                    "SHA-256):\n" + token)
        if args.command == "remove":
            if not await store.remove_user(args.name):
                raise UserError(f"no user {args.name} in {where}")
            return (f"removed user {args.name}: their token stops working within "
                    f"{REVOKE_DELAY} s on every gateway")
        users = await store.users()
        lines = [f"{len(users)} user{'' if len(users) == 1 else 's'} in {where}"]
        lines += [f"{u.name}  (since {time.strftime('%Y-%m-%d %H:%M', time.localtime(u.created))})"
                  for u in users]
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(parser(), argv)
    try:
        print(asyncio.run(run(args)))
    except UserError as e:
        print(f"cellbus user: {e}", file=sys.stderr)
        return 1
    except StoreError as e:
        print(f"cellbus user: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
