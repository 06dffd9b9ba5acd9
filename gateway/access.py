"""Who may reach this gateway, and from where: the access policy and its HTTP-level checks.

The policy comes from the gateway's options (``--auth``, ``--allow-anonymous``,
``--allow-origin``, ``--allow-host``, ``--rate``) and is checked once at start
(:func:`make_policy` raises :class:`ConfigError`). This module also holds what the checks
need that is not about tokens:

- the Host check against DNS rebinding (a loopback gateway answers only to names it serves);
- the origins allowed to embed cells (CORS answers, preflight, WebSocket origins);
- access-log lines with secrets (``?token=``) taken out of the URL, and quiet for requests
  that went well unless ``--log-requests`` asks for every one (:func:`log_request`).

Cross-origin POSTs themselves are refused by tornado's ``cross_origin_protection`` (tornado
6.6: ``Sec-Fetch-Site``, else ``Origin`` against ``Host``), whose ``check_trusted_origin``
hook asks :meth:`AccessPolicy.origin_allowed`; see :func:`tornado_settings`.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
import urllib.parse
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final

import tornado
from tornado.log import app_log
from tornado.web import HTTPError, RequestHandler

from protocol.errors import ConfigError

from .clientaddr import Network, client_ip, client_key, parse_proxies
from .errors import write_error
from .ratelimit import Rate, parse_rate
from .script import StaticFiles

AUTH_MODES: Final = ("token", "none")
#: Query arguments whose values never reach a log line.
SECRET_ARGS: Final = frozenset({"token", "_xsrf"})
#: Requests that run code one user may make with --auth token when --rate is not given:
#: a person at a page stays far below it (interacts coalesce); a script looping on evaluate
#: does not.
TOKEN_RATE: Final = "120/min"
#: Requests of any kind one user (or address without auth) may make, when
#: --client-requests is not given, on a gateway with --auth token or a public one: a page
#: that loads makes a few dozen at once and a person far fewer after; a client looping
#: without pause makes thousands (bench/read_hammer.py --mode small: 8,000 in 8 s).
CLIENT_REQUESTS: Final = "100/s"
#: Seconds a flood's refusal is held before it is written (gateway/guard.py within_requests).
FLOOD_HOLD: Final = 1.0
#: Seconds between two access lines of one client's refusals (429, and any 4xx of a request
#: no one was admitted for), the others counted.
REFUSAL_LOG_INTERVAL: Final = 10.0
#: Seconds a browser may cache a CORS preflight answer.
PREFLIGHT_MAX_AGE: Final = 600

access_log = logging.getLogger("tornado.access")
#: The handler attribute a refusal's reason waits in for the access line.
REFUSAL_NOTE = "cellbus_refusal"
#: The handler attribute that sets its access line's level instead of its status (/ready:
#: a probe's answer repeated is not news).
ACCESS_LEVEL = "cellbus_access_level"


@dataclass(frozen=True)
class AccessPolicy:
    """What the gateway lets through; built by :func:`make_policy`."""

    auth: str = "none"  # "token" or "none"
    host: str = "127.0.0.1"
    port: int = 8888
    origins: frozenset[str] = field(default_factory=frozenset)  # "*": any
    hosts: frozenset[str] = field(default_factory=frozenset)  # --allow-host
    rate: Rate | None = None
    requests: Rate | None = None  # --client-requests
    log_requests: bool = False  # --log-requests: every request's access line at INFO
    proxies: tuple[Network, ...] = ()  # --trusted-proxy

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def public(self) -> bool:
        """Whether others than this machine's users reach the gateway: it listens beyond
        loopback, or proxies it trusts forward clients to it."""
        return not self.loopback or bool(self.proxies)

    @property
    def cookie_name(self) -> str:
        """Cookies ignore ports, so two gateways on one host need names of their own."""
        return f"cellbus_token_{self.port}"

    def serves_host(self, header: str) -> bool:
        """Whether a request with this ``Host`` header is for this gateway. A gateway on a
        non-loopback address answers to any name (its operator chose the network); one on
        loopback only to loopback names, its ``--host`` and ``--allow-host`` names, so a page
        whose name was rebound to 127.0.0.1 (DNS rebinding) reaches nothing."""
        if not self.loopback:
            return True
        name = host_name(header)
        return bool(name) and (name == "localhost" or is_loopback(name)
                               or name == self.host.lower() or name in self.hosts)

    def origin_allowed(self, origin: str) -> bool:
        """Whether a page from ``origin`` may embed cells (``--allow-origin``). ``null`` (a
        sandboxed frame, such as the one cell output runs in, or a ``file:`` page) is no
        origin and never allowed, not even by ``*``."""
        normal = normal_origin(origin)
        return bool(normal) and ("*" in self.origins or normal in self.origins)

    def describe(self) -> str:
        origins = ", ".join(sorted(self.origins)) or "none"
        proxies = ", ".join(str(p) for p in self.proxies)
        return (f"auth {self.auth}; other origins allowed: {origins}; "
                f"rate limit: {self.rate or 'none'}; requests per client: "
                f"{self.requests or 'no limit'}"
                + (f"; clients' addresses from X-Forwarded-For of {proxies}" if proxies else ""))


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name in a ``Host`` header, lower case, without port or trailing dot."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else ""
    return header.rpartition(":")[0].rstrip(".") if ":" in header else header.rstrip(".")


def normal_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, without a default port or trailing slash;
    ``""`` if ``origin`` is not one."""
    try:
        parts = urllib.parse.urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username is not None:
        return ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port is not None and port != {"http": 80, "https": 443}[parts.scheme]:
        host += f":{port}"
    return f"{parts.scheme}://{host}"


def make_policy(*, host: str, port: int, auth: str | None = None, allow_anonymous: bool = False,
                origins: list[str] | None = None, hosts: list[str] | None = None,
                rate: str | None = None, log_requests: bool = False,
                proxies: list[str] | None = None,
                requests: str | None = None) -> AccessPolicy:
    """The policy for these options, or :class:`ConfigError` saying what to change.

    Without ``auth``: ``none`` on a loopback address with no ``proxies`` (or with
    ``allow_anonymous``), else ``token``. ``auth="none"`` of a public gateway (another address,
    or proxies in front) needs ``allow_anonymous``. Without ``rate``: :data:`TOKEN_RATE` per
    user with ``token``, no limit with ``none``. Without ``requests``:
    :data:`CLIENT_REQUESTS` with ``token`` or on a public gateway, no limit on a loopback
    gateway without auth (one person's).
    """
    if tornado.version_info < (6, 6):
        raise ConfigError(f"the gateway needs tornado>=6.6 for its cross-origin protection, "
                          f"not {tornado.version}: pip install -U tornado")
    if auth is not None and auth not in AUTH_MODES:
        raise ConfigError(f"--auth {auth!r}: use token or none")
    try:
        trusted = parse_proxies(proxies or [])
    except ValueError as e:
        raise ConfigError(str(e)) from None
    loopback = is_loopback(host) and not trusted  # a proxy in front serves others
    mode = auth or ("none" if loopback or allow_anonymous else "token")
    if mode == "none" and not loopback and not allow_anonymous:
        where = "what its --trusted-proxy forwards" if trusted else host or "every address"
        raise ConfigError(f"refusing to serve {where} without --auth token: "
                          "anyone who reaches it could run code. Add users (`bin/cellbus user "
                          "add NAME`) and use --auth token, or say --allow-anonymous for a "
                          "public service")
    allowed: set[str] = set()
    for origin in origins or []:
        normal = "*" if origin.strip() == "*" else normal_origin(origin)
        if not normal:
            raise ConfigError(f"--allow-origin {origin!r}: give an origin like "
                              "https://example.org or http://localhost:8000 (no path), or *")
        allowed.add(normal)
    names = {h.strip().lower().rstrip(".") for h in hosts or [] if h.strip()}
    return AccessPolicy(auth=mode, host=host, port=port, origins=frozenset(allowed),
                        hosts=frozenset(names), log_requests=log_requests, proxies=trusted,
                        rate=parse_rate(rate if rate is not None
                                        else TOKEN_RATE if mode == "token" else ""),
                        requests=parse_rate(requests if requests is not None
                                            else CLIENT_REQUESTS
                                            if mode == "token" or not loopback else "",
                                            option="--client-requests"))


def tornado_settings(policy: AccessPolicy) -> dict[str, Any]:
    """Application settings for the policy: cross-origin protection, xsrf cookie, logs."""
    return {
        "access": policy,
        "cross_origin_protection": True,  # origins: AccessPolicy.origin_allowed (guard.py)
        "xsrf_cookie_name": f"_xsrf_{policy.port}",
        "xsrf_cookie_kwargs": {"samesite": "Strict"},
        "log_function": log_request,
        "static_handler_class": StaticHandler,
    }


# -- CORS for the allowed origins ------------------------------------------------------------


def cors_headers(handler: RequestHandler) -> None:
    """Let a page from an allowed origin read this answer (errors included). No
    ``Allow-Credentials``: such pages authenticate with ``Authorization``, never cookies."""
    origin = handler.request.headers.get("Origin")
    policy: AccessPolicy | None = handler.settings.get("access")
    if origin and policy is not None and policy.origin_allowed(origin):
        handler.set_header("Access-Control-Allow-Origin", origin)
        handler.set_header("Access-Control-Expose-Headers", "Retry-After")
        handler.add_header("Vary", "Origin")


def preflight(handler: RequestHandler) -> bool:
    """Answer a CORS preflight: 204 for an allowed origin; False for any other."""
    origin = handler.request.headers.get("Origin")
    policy: AccessPolicy = handler.settings["access"]
    if not origin or not policy.origin_allowed(origin):
        return False
    handler.set_header("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
    handler.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type")
    handler.set_header("Access-Control-Max-Age", str(PREFLIGHT_MAX_AGE))
    handler.set_status(204)
    handler.finish()
    return True


# -- logs without secrets --------------------------------------------------------------------


def _encoded(text: str) -> str:
    """A pattern for ``text`` as it may appear in a URL: each character as itself or
    percent-encoded, once or more (``%74``, ``%2574``), in any case."""
    return "".join(f"(?:{re.escape(c)}|%(?:25)*{ord(c):02x})" for c in text)


#: A secret argument's name (however encoded), spaces, ``=`` (or ``%3D``) and its value up
#: to the next separator (``&`` or ``;``, which some servers and proxies take as one too).
SECRET_VALUE: Final = re.compile(
    "((?:" + "|".join(_encoded(name) for name in sorted(SECRET_ARGS)) + ")"
    r"(?:\s|\+|%(?:25)*20)*(?:=|%(?:25)*3d))[^&;#\s]*", re.IGNORECASE)


def redact_uri(uri: str) -> str:
    """``uri`` with the values of :data:`SECRET_ARGS` replaced by ``[redacted]``, wherever
    they stand and whatever separates or encodes them: a log line is no place to parse a
    URL the way the server did (``?since=0;token=...`` is one argument to tornado, but
    ``token=`` in it is still a real token)."""
    return SECRET_VALUE.sub(r"\1[redacted]", uri)


def client_address(handler: RequestHandler) -> str:
    """The address of the request's client: its connection's, or the one a proxy the
    gateway trusts (``--trusted-proxy``) says it forwards the request for."""
    r = handler.request
    policy: AccessPolicy | None = handler.settings.get("access")
    return client_ip(r.remote_ip or "", r.headers.get_list("X-Forwarded-For"),
                     policy.proxies if policy is not None else ())


def summary(handler: RequestHandler) -> str:
    """``METHOD URI (ADDRESS)`` for a log line, secrets taken out (``CLIENT via PROXY``
    for a request a trusted proxy forwarded)."""
    r = handler.request
    client = client_address(handler)
    peer = r.remote_ip if client == r.remote_ip else f"{client} via {r.remote_ip}"
    return f"{r.method} {redact_uri(r.uri or '')} ({peer})"


def access_level(status: int, *, every: bool = False) -> int:
    """The level of a request's access line, as jupyter_server chooses it: a request that
    went well (1xx, 2xx, 304) at DEBUG, so a page's polls and static files do not fill the
    terminal of ``up``; any other redirect at INFO, 4xx at WARNING, 5xx at ERROR. ``every``
    (``--log-requests``) puts the ones that went well at INFO too."""
    if status < 300 or status == 304:
        return logging.INFO if every else logging.DEBUG
    return logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR


def log_request(handler: RequestHandler) -> None:
    """tornado's access log line (``log_function``), with the URI redacted, at
    :func:`access_level` unless the handler set its own (:data:`ACCESS_LEVEL`)."""
    status = handler.get_status()
    settings = handler.application.settings
    metrics = settings.get("metrics")
    if metrics is not None:
        metrics.request(handler)
    policy: AccessPolicy | None = settings.get("access")
    level = getattr(handler, ACCESS_LEVEL, None)
    skipped = None
    visitor = getattr(handler, "visitor", None)
    every = policy is not None and policy.log_requests
    stranger = visitor is None and 400 <= status < 500 and not every
    if level is None and (status == 429 or stranger) \
            and (refusals := settings.get("refusal_log")):
        skipped = refusals.note(visitor.key if visitor is not None
                                else f"ip:{client_key(client_address(handler))}")
        if skipped is None:
            level = logging.DEBUG  # counted, and said with its client's next line
    if level is None:
        level = access_level(status, every=every)
    if access_log.isEnabledFor(level):
        why = getattr(handler, REFUSAL_NOTE, None)
        more = (f" (and {skipped} more of this client's refused in the last "
                f"{REFUSAL_LOG_INTERVAL:.0f} s, not logged)" if skipped else "")
        access_log.log(level, "%d %s %.2fms%s%s", status, summary(handler),
                       1000.0 * handler.request.request_time(), f": {why}" if why else "",
                       more)


class RefusalLog:
    """A client's refusals (429) get one access line per :data:`REFUSAL_LOG_INTERVAL`, the
    next one saying how many were not logged: a client that ignores Retry-After was refused
    ~1,400 times in 10 s (bench/read_hammer.py), each a WARNING line written by the loop.
    So do the refusals (4xx) of requests no visitor was admitted for (no token or a wrong
    one, a host or origin refused, a route that does not exist), counted by the client's
    address, unless ``--log-requests`` asks for every line: no ``--client-requests`` bucket
    bounds those, and anyone who reached the gateway wrote 4,356 WARNING lines in 8 s with
    made-up tokens."""

    def __init__(self, interval: float = REFUSAL_LOG_INTERVAL, max_keys: int = 10_000) -> None:
        self.interval, self.max_keys = interval, max_keys
        self.seen: dict[str, tuple[float, int]] = {}  # key -> (last line, refused since)

    def note(self, key: str, now: float | None = None) -> int | None:
        """A refusal of ``key``: None if it is not to be logged (it is counted), else how
        many were not logged before it."""
        now = time.monotonic() if now is None else now
        last, count = self.seen.get(key, (-self.interval, 0))
        if now - last < self.interval:
            self.seen[key] = (last, count + 1)
            return None
        if key not in self.seen and len(self.seen) >= self.max_keys:
            self.seen = {k: v for k, v in self.seen.items() if now - v[0] < self.interval}
        self.seen[key] = (now, 0)
        return count


def log_exception(handler: RequestHandler, typ: type[BaseException] | None,
                  value: BaseException | None, tb: TracebackType | None) -> None:
    """tornado's ``log_exception``, with the URI redacted and no request repr (it holds the
    URI too). A refusal's reason goes on the request's access line (:func:`log_request`)
    rather than a line of its own before it: each 4xx was logged twice."""
    if isinstance(value, HTTPError):
        if value.log_message:
            setattr(handler, REFUSAL_NOTE, value.get_message())
    else:
        app_log.error("Uncaught exception %s", summary(handler), exc_info=value or True)


class StaticHandler(StaticFiles):
    """``/static/``: tornado's (``cellbus.js`` made of its parts), logging without secrets
    like every other handler."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """The API's JSON errors (a 404 or 403 under /static/), not tornado's HTML page."""
        write_error(self, status_code, **kwargs)

    def log_exception(self, typ: type[BaseException] | None, value: BaseException | None,
                      tb: TracebackType | None) -> None:
        log_exception(self, typ, value, tb)
