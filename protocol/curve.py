"""CurveZMQ on the bus's TCP links, with pyzmq's own ``zmq.auth``: encrypted, and open only
to the nodes whose public keys the broker holds, each for its role.

The broker is the CURVE server on each socket it binds; devices and gateways are clients
with key pairs of their own. A ZAP handler (``zmq.auth.ThreadAuthenticator``) lets a client
finish its handshake only if its public key is in the folder of the role the socket serves:
a device key opens the device port only, a gateway key the gateway and feed ports only.
The folder is read again whenever it changes, so revoking a key (deleting its file, or
``bin/cellbus cert --revoke``) refuses its next connection at once, with no restart; the
connections it has open are shut out by the broker within half a second
(:mod:`broker.revocation`).

A key folder (``bin/cellbus cert NAME --role ROLE --dir DIR``) holds::

    DIR/broker.key, DIR/broker.key_secret     the broker's pair (the secret stays on its host)
    DIR/NAME.key, DIR/NAME.key_secret         each device's or gateway's pair (the secret
                                              goes to that node's host only)
    DIR/devices/NAME.key                      public keys the broker accepts on the device port
    DIR/gateways/NAME.key                     ... on the gateway and feed ports
    DIR/devices/NAME.previous.key             NAME's key before ``cert --rotate NAME``,
                                              accepted too until ``cert --retire NAME``
    DIR/broker.previous.key(_secret)          the broker's pair before ``cert --rotate
                                              broker``; its clients find the new public key
                                              as ``broker.next.key`` (protocol/rekey.py)

``ipc://`` endpoints need none of this: ``bin/cellbus up`` puts them in a folder only its
user can enter. A node given a ``tcp://`` endpoint without keys refuses to start unless
``--insecure-bus`` says the network is trusted.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from .errors import ConfigError
from .refusals import REPEAT, Every, Refusals

#: Roles a client key may have, and the folder of the broker's key directory for each.
ROLES = {"device": "devices", "gateway": "gateways"}
BROKER = "broker"
#: What a node's key is filed as in its role's folder while a rotation keeps it accepted.
PREVIOUS = ".previous"

log = logging.getLogger("cellbus.curve")


def needs_keys(endpoint: str | None) -> bool:
    """Whether ``endpoint`` crosses a network (TCP and the like), so it must be encrypted."""
    return bool(endpoint) and not str(endpoint).startswith(("ipc://", "inproc://"))


def make_certificate(directory: str | os.PathLike[str], name: str, role: str) -> Path:
    """Create ``name``'s key pair in ``directory`` (the secret file mode 0600); a device's or
    gateway's public key is also put in the folder the broker accepts for that role.
    Returns the secret file's path."""
    if role not in (*ROLES, BROKER):
        raise ConfigError(f"unknown role {role!r}: one of broker, {', '.join(ROLES)}")
    if role == BROKER:
        name = BROKER
    if not name or "/" in name or name.startswith(".") or name.endswith(PREVIOUS):
        raise ConfigError(f"bad certificate name {name!r}")
    where = Path(directory)
    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    if (where / f"{name}.key_secret").exists():  # a revoked pair is replaced: a rotation
        if role == BROKER:
            raise ConfigError(f"{where / name}.key_secret exists already: the broker has a "
                              "key pair (a new one would need a new broker.key on every node)")
        if any((where / folder / f"{name}.key").exists() for folder in ROLES.values()):
            raise ConfigError(f"{where / name}.key_secret exists already and the broker "
                              f"accepts it; to rotate it, revoke it first (bin/cellbus cert "
                              f"--revoke {name} --dir {where}), then make it again; or "
                              "choose another name")
    old = os.umask(0o077)
    try:
        public, secret = zmq.auth.create_certificates(str(where), name)
    finally:
        os.umask(old)
    os.chmod(secret, 0o600)
    if role in ROLES:
        allowed = where / ROLES[role]
        allowed.mkdir(mode=0o700, exist_ok=True)
        shutil.copyfile(public, allowed / f"{name}.key")
    return Path(secret)


def revoke(directory: str | os.PathLike[str], name: str) -> list[Path]:
    """Take ``name``'s public key out of every role's folder, and its old one while it is
    rotated (``NAME.previous``, which stayed accepted before); returns the files removed."""
    removed = []
    for folder in ROLES.values():
        for path in (Path(directory) / folder / f"{name}.key",
                     Path(directory) / folder / f"{name}{PREVIOUS}.key"):
            if path.exists():
                path.unlink()
                removed.append(path)
    return removed


def rotate_certificate(directory: str | os.PathLike[str], name: str) -> Path:
    """Give ``name`` a new key pair, while the broker goes on accepting its old key too (as
    ``NAME.previous``) until :func:`retire_previous`: its node reloads the new one (SIGHUP)
    and reconnects, with no cell lost. Returns the new secret file's path."""
    where = Path(directory)
    if name == BROKER:
        return _rotate_broker(where)
    roles = [role for role, folder in ROLES.items() if (where / folder / f"{name}.key").exists()]
    if not roles:
        raise ConfigError(f"the broker of {where} accepts no key named {name!r}; "
                          f"bin/cellbus cert --list --dir {where} shows the keys it accepts")
    role = roles[0]
    accepted = where / ROLES[role] / f"{name}.key"
    if (where / ROLES[role] / f"{name}{PREVIOUS}.key").exists():
        raise ConfigError(f"{name} is being rotated already: once its node runs with the new "
                          f"key, retire the old one (bin/cellbus cert --retire {name} --dir "
                          f"{where}), then rotate it again")
    accepted.rename(accepted.with_name(f"{name}{PREVIOUS}.key"))
    public = where / f"{name}.key"
    if public.exists():  # kept beside the secrets, so a refusal can name it (_RoleKeys.who)
        public.rename(public.with_name(f"{name}{PREVIOUS}.key"))
    return make_certificate(where, name, role)


def _rotate_broker(where: Path) -> Path:
    """The broker's new pair; the old one is kept as ``broker.previous.key(_secret)``. The
    broker uses it from its next start; its clients find it as ``broker.next.key`` beside
    their ``--broker-key`` when their handshake with the old one fails
    (:func:`protocol.rekey.next_broker_key`)."""
    secret = where / f"{BROKER}.key_secret"
    if not secret.exists():
        raise ConfigError(f"{where} has no broker key pair to rotate: make it with "
                          f"bin/cellbus cert broker --role broker --dir {where}")
    if (where / f"{BROKER}{PREVIOUS}.key_secret").exists():
        raise ConfigError(f"the broker is being rotated already: once every node connects "
                          f"with its new key, bin/cellbus cert --retire broker --dir {where}, "
                          "then rotate it again")
    for suffix in (".key", ".key_secret"):
        path = where / f"{BROKER}{suffix}"
        path.rename(where / f"{BROKER}{PREVIOUS}{suffix}")
    return make_certificate(where, BROKER, BROKER)


def retire_previous(directory: str | os.PathLike[str], name: str) -> list[Path]:
    """Stop accepting the key ``name`` had before :func:`rotate_certificate`; the files
    removed (the broker then shuts its connections out, as for a revoked key). The broker's
    old secret, which it no longer uses once restarted, is removed."""
    if name == BROKER:
        old = Path(directory) / f"{BROKER}{PREVIOUS}.key_secret"
        if not old.exists():
            return []
        old.unlink()
        return [old]
    return revoke(directory, f"{name}{PREVIOUS}")


def listing(directory: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """``(role, name)`` of every key the broker accepts."""
    out = []
    for role, folder in ROLES.items():
        for path in sorted((Path(directory) / folder).glob("*.key")):
            out.append((role, path.stem))
    return out


def _load(path: str | os.PathLike[str], *, secret: bool,
          option: str) -> tuple[bytes, bytes | None]:
    """The key pair in the certificate ``path`` that ``option`` gave; ``ConfigError`` naming
    the option and what to give (pyzmq says "Invalid certificate file" of a missing one)."""
    if not Path(path).exists():
        raise ConfigError(f"{option} {path}: no such file")
    try:
        public, private = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as e:
        raise ConfigError(f"{option} {path} is not a CURVE certificate ({e}): bin/cellbus "
                          "cert makes them") from None
    if secret and private is None:
        raise ConfigError(f"{option} {path} holds no secret key: give the .key_secret file")
    return public, private


class _RoleKeys:
    """ZAP credentials provider: is this public key in the folder of this socket's role?
    The folder is listed at each look (a few files); its certificates are read again when
    a file's name, size or time changed. (Not the folder's own time: it can stay the same
    across a file made just after the folder, and a key would go unseen.)"""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        #: Clients refused, for ``bin/cellbus status`` (and the link watch's handshakes).
        self.refusals = Refusals()
        self._said = Every(REPEAT)
        self._lock = threading.Lock()
        self._named: dict[Path, tuple[frozenset[tuple[str, int, int]], dict[bytes, str]]] = {}
        self._seen: dict[str, tuple[frozenset[tuple[str, int, int]], frozenset[bytes]]] = {}

    def keys(self, role: str) -> frozenset[bytes]:
        folder = self.directory / ROLES[role]
        try:
            stamp = frozenset((e.name, e.stat().st_mtime_ns, e.stat().st_size)
                              for e in os.scandir(folder) if e.name.endswith(".key"))
        except OSError:
            return frozenset()
        with self._lock:
            seen = self._seen.get(role)
            if seen is None or seen[0] != stamp:
                try:
                    loaded = zmq.auth.load_certificates(str(folder))
                except (OSError, ValueError) as e:
                    log.error("cannot read the %s keys in %s: %s", role, folder, e)
                    loaded = {}
                seen = self._seen[role] = (stamp, frozenset(loaded))
            return seen[1]

    def callback(self, domain: str, key: bytes) -> bool:
        allowed = domain in ROLES and key in self.keys(domain)
        if not allowed:
            who = self.who(key)
            self.refusals.note(domain, who)
            if self._said.due((domain, who)):
                log.warning("refused a CURVE client on the %s port: %s", domain, who)
        return allowed

    def who(self, key: bytes) -> str:
        """Whose ``key`` (z85) it is, as far as the key folder knows: another role's key,
        a revoked one (its public file is still beside the secrets made here), or none."""
        for role, folder in ROLES.items():
            if (name := self._names(self.directory / folder).get(key)) is not None:
                opens = "device port" if role == "device" else "gateway and feed ports"
                return f"the key of {role} {name}, which opens the {opens} only"
        if (name := self._names(self.directory).get(key)) is not None:
            if name.endswith(PREVIOUS):
                return (f"the previous key of {name.removesuffix(PREVIOUS)}, retired (cert "
                        "--retire): that node still runs with it; give it its new "
                        ".key_secret and send it SIGHUP")
            return (f"the key of {name}, revoked (bin/cellbus cert --list shows the keys "
                    "allowed)")
        return (f"key {key.decode(errors='replace')[:12]}..., which the --curve-dir does not "
                "hold (a stranger's)")

    def holder(self, role: str, key: str) -> str | None:
        """The name of the node whose key (z85) ``key`` is in ``role``'s folder, its old key
        during a rotation (``NAME.previous``) counted as NAME's; None if it is not there."""
        name = self._names(self.directory / ROLES[role]).get(key.encode())
        return None if name is None else name.removesuffix(PREVIOUS)

    def _names(self, folder: Path) -> dict[bytes, str]:
        """The public keys of ``folder``'s ``*.key`` files, by key: read again only when a
        file's name, size or time changed (a stranger retrying its handshake every 100 ms
        must not have the broker parse every key file each time)."""
        try:
            stamp = frozenset((e.name, e.stat().st_mtime_ns, e.stat().st_size)
                              for e in os.scandir(folder) if e.name.endswith(".key"))
        except OSError:
            return {}
        with self._lock:
            cached = self._named.get(folder)
            if cached is not None and cached[0] == stamp:
                return cached[1]
        names: dict[bytes, str] = {}
        for name, _, _ in sorted(stamp):
            try:
                public, _ = zmq.auth.load_certificate(str(folder / name))
            except (OSError, ValueError):
                continue
            names[public] = name.removesuffix(".key")
        with self._lock:
            self._named[folder] = (stamp, names)
        return names


class ServerKeys:
    """The broker's side: its key pair, and the ZAP handler that admits clients by role."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]],
                 directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        own = self.directory / f"{BROKER}.key_secret"
        if not own.exists():
            raise ConfigError(f"--curve-dir {directory}: no such file {own}; make the "
                              f"broker's keys with bin/cellbus cert broker --role broker "
                              f"--dir {directory}")
        self.public, secret = _load(own, secret=True, option="--curve-dir")
        assert secret is not None
        self.secret = secret
        self.roles = _RoleKeys(self.directory)
        self.auth = ThreadAuthenticator(context, log=log)
        self.auth.start()
        for role in ROLES:
            self.auth.configure_curve_callback(role, credentials_provider=self.roles)

    def serve(self, sock: zmq.Socket[bytes], role: str) -> None:
        """Make ``sock`` (before it binds) a CURVE server for clients of ``role``."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True
        sock.zap_domain = role.encode()

    def stop(self) -> None:
        self.auth.stop()


def load_server_key(path: str | os.PathLike[str]) -> bytes:
    """The broker's public key in the certificate ``path`` (ConfigError if it is none, or if
    the file is the broker's secret one: pyzmq reads its public key as well, so a host given
    it would run, holding a key with which anyone there could pose as the broker)."""
    public, secret = _load(path, secret=False, option="--broker-key")
    if secret is not None:
        raise ConfigError(f"--broker-key {path} holds the broker's secret key: give its public "
                          "broker.key, and keep broker.key_secret on the broker's host only "
                          "(shred this copy)")
    return public


class ClientKeys:
    """A device's or gateway's side: its own key pair and the broker's public key."""

    def __init__(self, own: str | os.PathLike[str], broker: str | os.PathLike[str]) -> None:
        self.public, secret = _load(own, secret=True, option="--curve-key")
        assert secret is not None
        self.secret = secret
        self.server = load_server_key(broker)
        #: When the broker key in use last changed for another (monotonic; 0: never).
        self.flipped = 0.0
        #: Broker keys this node left after a failed handshake, and when (monotonic).
        self.left: dict[bytes, float] = {}

    def connect_with(self, sock: zmq.Socket[bytes]) -> None:
        """Make ``sock`` (before it connects) a CURVE client of the broker."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_serverkey = self.server
