"""``--auth token`` in a browser: the sign-in cookie, and when a link may set it.

A link with ``?token=`` is how an operator hands a user their sign-in; it is also how a
hostile site would sign a victim's browser into the attacker's account (login CSRF): the
victim's later code and saved worksheets would land where the attacker reads them. So:

- the cookie is set straight from a link only for a navigation the user made: a typed or
  bookmarked URL (``Sec-Fetch-Site: none``) or a link on the gateway's own pages
  (``same-origin``). A link followed from any other site, including another port of the same
  host (``same-site``), and a request from a client that does not send the header (an old
  browser, curl) set nothing: they get a page that names the token's user and asks;
- a link never replaces a sign-in silently: signed in as another user, the page says who is
  signed in and offers to switch;
- the answer to that page is a same-origin ``POST /signin`` carrying tornado's ``_xsrf``
  (:class:`gateway.pages.SignInHandler`), and a switch is made only if the form names the
  user it replaces, so a form rendered for another sign-in switches nothing.

A cross-site navigation never carries the ``SameSite=Strict`` cookie, so the gateway cannot
see a sign-in there: the page then asks without naming one, and the POST (which carries the
cookie) asks again if it finds one.
"""

from __future__ import annotations

import urllib.parse
from typing import Final

from tornado.web import RequestHandler

from .access import AccessPolicy
from .auth import QUERY
from .guard import Visitor, policy_of, token_user

#: ``Sec-Fetch-Site`` values of a navigation the user made (typed, bookmarked, own page).
USER_MADE: Final = frozenset({"none", "same-origin"})
TEMPLATE: Final = "signin.html"


def user_made(handler: RequestHandler) -> bool:
    """Whether the browser says the user made this request (no header: it does not say)."""
    return handler.request.headers.get("Sec-Fetch-Site", "").strip().lower() in USER_MADE


def local_path(target: str | None) -> str:
    """``target`` if it is a path on this gateway, else ``/``: never ``//host`` or a URL, so a
    sign-in redirects nowhere else (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    parts = urllib.parse.urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def without_token(handler: RequestHandler) -> str:
    """The request's path and query without ``token``."""
    rest = [(k, v) for k, values in handler.request.query_arguments.items() if k != "token"
            for v in values]
    path = "/" + handler.request.path.lstrip("/")
    return path + ("?" + urllib.parse.urlencode(rest) if rest else "")


def set_cookie(handler: RequestHandler, policy: AccessPolicy, token: str) -> None:
    """The sign-in cookie: the token itself (revoked with it), script cannot read it, and
    only the gateway's own pages send it (``SameSite=Strict``)."""
    handler.set_cookie(policy.cookie_name, token, path="/", httponly=True, samesite="Strict",
                       secure=handler.request.protocol == "https")


async def cookie_user(handler: RequestHandler) -> str | None:
    """Whom the browser's cookie signs in (None: no cookie, or one no longer valid)."""
    token = handler.get_cookie(policy_of(handler).cookie_name)
    if not token:
        return None
    return await token_user(handler, token)


def is_link(handler: RequestHandler, visitor: Visitor) -> bool:
    """Whether this request is a browser following a sign-in link (a ``GET`` whose
    ``?token=`` the guard admitted)."""
    return visitor.via == QUERY and handler.request.method == "GET"


async def by_link(handler: RequestHandler, visitor: Visitor) -> None:
    """Answer a sign-in link (:func:`is_link`): set the cookie and redirect to the URL
    without the token if the user made this navigation and it changes no one's sign-in;
    otherwise the page that asks."""
    token = handler.get_query_argument("token", "").strip()
    current = await cookie_user(handler)
    target = without_token(handler)
    if user_made(handler) and current in (None, visitor.user):
        set_cookie(handler, policy_of(handler), token)
        handler.redirect(target)
        return
    render(handler, user=visitor.user, token=token, current=current, target=target)


def render(handler: RequestHandler, *, user: str | None, token: str | None,
           current: str | None, target: str, error: str | None = None) -> None:
    """The sign-in page: a form for a token (``user`` None), or the question whether to sign
    in as ``user`` (replacing ``current``). It may not be framed (no clickjacking its
    button), and it sets the ``_xsrf`` cookie its form needs."""
    handler.set_header("Content-Type", "text/html; charset=UTF-8")
    handler.set_header("Content-Security-Policy", "frame-ancestors 'none'")
    handler.set_header("Referrer-Policy", "no-referrer")
    handler.render(TEMPLATE, user=user, token=token, current=current, target=target,
                   error=error)
