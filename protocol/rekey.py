"""Rotating the bus key and a node's CURVE certificate on a running deployment, with no
restart (README's "Rotating keys and certificates").

**The bus key** (``--key-file``). A key file holds the key messages are signed with and,
while a rotation runs, keys that are accepted too, each on a line of its own after
``accept ``. A rotation is three steps, each a rewrite of the file (``cellbus key --next``,
``--switch``, ``--retire``), copied to every node and reloaded there (SIGHUP) before the next
step starts::

    --next     OLD / accept NEW     every node accepts NEW; all still sign with OLD
    --switch   NEW / accept OLD     nodes sign with NEW; OLD, from one not reloaded yet, counts
    --retire   NEW                  OLD is refused, and named so in the log

so at every moment each node accepts what any other signs, and nothing is dropped. (Two
steps, the new key signing at once, would have the nodes not reloaded yet drop what the
reloaded ones sign until they are.)

**A device's or gateway's certificate** (``--curve-key``). On SIGHUP the node reads it and
``--broker-key`` again; if they changed, it makes its links to the broker again with the
new pair: a reconnect, after which a device's outbox sends again what the broker had not
acknowledged and the broker reconciles what it handed out (README's "When a link fails").
Meanwhile the broker accepts the old and the new key under the node's name (``cellbus cert
--rotate``, :mod:`protocol.curve`), and takes the device's messages under its new key
(:class:`broker.senders.Senders`); ``cellbus cert --retire`` then shuts the old one out.

**The broker's certificate.** A client's handshake that fails as a wrong ``--broker-key``
fails makes it look for ``broker.next.key`` beside that file, and connect with the key there
(:func:`next_broker_key`): the broker's new public key is copied there first, then the
broker is restarted with its new pair (``cellbus cert --rotate broker``).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import zmq

from .config import ACCEPT, load_keys
from .curve import ClientKeys, load_server_key
from .errors import ConfigError

if TYPE_CHECKING:
    from .node import Node


def fingerprint(key: bytes) -> str:
    """What log lines call a bus key: the start of its SHA-256, never the key itself."""
    return hashlib.sha256(key).hexdigest()[:8]


def _write(path: Path, key: bytes, accept: tuple[bytes, ...]) -> None:
    """Replace the key file at once (a node reloading meanwhile reads the old or the new
    one whole), mode 0600 as :func:`generate_key` makes it."""
    text = key + b"\n" + b"".join(ACCEPT + k + b"\n" for k in accept)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def rotate(path: str | os.PathLike[str], step: str) -> str:
    """Take the key file at ``path`` one ``step`` (``next``, ``switch`` or ``retire``, see
    the module docstring) on; returns what it holds now, in words. A step out of order is
    refused (ConfigError) and leaves the file as it was."""
    where = Path(path)
    key, accept = load_keys(where)
    if step == "next":
        if accept:
            raise ConfigError(f"{where} accepts another key already: a rotation is under way "
                              "(finish it with --switch, then --retire)")
        new = secrets.token_hex(32).encode()  # as generate_key makes one
        _write(where, key, (new,))
        return (f"{where}: signs with {fingerprint(key)}, accepts {fingerprint(new)} too; "
                "copy it to every node, send each SIGHUP, then run --switch")
    if step == "switch":
        if len(accept) != 1:
            raise ConfigError(f"{where} accepts {len(accept)} other keys: --switch takes the "
                              "one --next added; run --next first")
        _write(where, accept[0], (key,))
        return (f"{where}: signs with {fingerprint(accept[0])}, accepts {fingerprint(key)} "
                "too; copy it to every node, send each SIGHUP, then run --retire")
    if step == "retire":
        if not accept:
            raise ConfigError(f"{where} accepts no other key: nothing to retire")
        _write(where, key, ())
        return (f"{where}: signs with and accepts {fingerprint(key)} only; copy it to every "
                "node and send each SIGHUP: messages signed with "
                f"{', '.join(map(fingerprint, accept))} are refused from then on")
    raise ConfigError(f"unknown step {step!r}: --next, --switch or --retire")


class KeyFiles:
    """The key files a node was started with, which it reads again on SIGHUP."""

    def __init__(self, key_file: str, curve_key: str | None = None,
                 broker_key: str | None = None) -> None:
        self.key_file, self.curve_key, self.broker_key = key_file, curve_key, broker_key

    def reload(self, node: Node) -> None:
        """Read the bus key and this node's certificate again; use what changed. A file that
        cannot be read is logged and changes nothing: the node keeps the keys it has."""
        try:
            key, accept = load_keys(self.key_file)
            fresh = (ClientKeys(self.curve_key, self.broker_key)
                     if self.curve_key and self.broker_key else None)
        except ConfigError as e:
            node.log.error("%s got SIGHUP but keeps its keys: %s", node.name, e)
            return
        session = node.session
        if (key, accept) != (session.key, session.accepted):
            session.rekey(key, accept)
            also = f", also accepts {', '.join(map(fingerprint, accept))}" if accept else ""
            node.log.info("%s reloaded its --key-file %s: signs with bus key %s%s", node.name,
                             self.key_file, fingerprint(key), also)
        else:
            node.log.info("%s got SIGHUP: its --key-file %s is unchanged (bus key %s)",
                          node.name, self.key_file, fingerprint(key))
        old = node.keys
        if fresh is None or not isinstance(old, ClientKeys):
            return
        if old.server != fresh.server and old.server == _next_key(self.broker_key):
            fresh.server = old.server  # the rotated broker's, in use since it restarted
        if (fresh.public, fresh.secret, fresh.server) == (old.public, old.secret, old.server):
            return
        node.keys = fresh
        _connect_again(node, fresh)
        node.log.info("%s reloaded its CURVE certificate %s (public key %s...): its links "
                         "to the broker connect again with it", node.name, self.curve_key,
                         fresh.public.decode()[:12])


#: Seconds between two changes of the broker key a node tries: the failures of connections
#: made with the key it just left still come in for a moment, and must not flip it back.
FLIP_EVERY = 1.0
#: Seconds before a node tries again a broker key it left after a failed handshake: two
#: wrong keys are not taken in turn each second, with a line each time.
TRY_AGAIN = 60.0


def next_broker_key(node: Node) -> bool:
    """A handshake with the broker failed as a wrong ``--broker-key`` fails: if the file
    ``NAME.next.key`` beside it (the broker's rotated certificate, copied there before the
    broker restarts with it) or ``--broker-key`` itself holds another key than the one in
    use, connect to the broker with that one (README's "The broker's certificate").

    Returns whether the failure is taken for a rotation's (the node connects with another
    key, or has just done so and this failure is the left key's): the caller then says no
    wrong-key error, as this says the switch."""
    keys, files = node.keys, node.key_files
    if not isinstance(keys, ClientKeys) or files is None or not files.broker_key:
        return False
    now = time.monotonic()
    if now - keys.flipped < FLIP_EVERY:
        return keys.flipped > 0
    # A file missing, or not yet whole, is looked at again at the next failure.
    for path in (_next_path(files.broker_key), Path(files.broker_key)):
        server = _server_key(path)
        if (server is not None and server != keys.server
                and now - keys.left.get(server, -TRY_AGAIN) >= TRY_AGAIN):
            break
    else:
        return False
    keys.left[keys.server] = now
    keys.server, keys.flipped = server, now
    _connect_again(node, keys)
    node.log.warning("%s: the broker did not take the key it was connecting with; trying "
                     "the one in %s (a rotated broker certificate)", node.name, path)
    return True


def _next_path(broker_key: str | None) -> Path:
    """Where the rotated broker's public key goes beside ``--broker-key``: broker.next.key."""
    given = Path(broker_key or "broker.key")
    return given.with_name(f"{given.stem}.next{given.suffix}")


def _server_key(path: Path) -> bytes | None:
    try:
        return load_server_key(path)
    except ConfigError:
        return None


def _next_key(broker_key: str | None) -> bytes | None:
    """The key in ``broker.next.key`` beside ``--broker-key``, if there is one."""
    return _server_key(_next_path(broker_key)) if broker_key else None


def _connect_again(node: Node, keys: ClientKeys) -> None:
    """Drop the connections of each of ``node``'s CURVE links and make them anew with
    ``keys`` (options a connect takes from its socket)."""
    for sock, endpoint in node.curve_links:
        keys.connect_with(sock)
        try:
            sock.disconnect(endpoint)
        except zmq.ZMQError:
            pass  # not connected any more
        sock.connect(endpoint)
