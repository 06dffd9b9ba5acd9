"""The browser pages: ``/`` (a worksheet), ``/embed-example`` and ``/signin``; ``/static/``
is tornado's.

The pages are tornado templates in ``gateway/templates``; everything they do happens in
``/static/cellbus.js`` (:mod:`gateway.script`), which a page author can load on any page. With
``--auth token`` a page works only as the signed-in user: signed out, it is the sign-in form
(never a page of the user some ``?user=`` names). When a link may sign a browser in is
:mod:`gateway.signin`'s to say.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tornado.web import HTTPError, RequestHandler

from protocol.tokens import MAX_TOKEN_LENGTH

from . import signin
from .base import BaseHandler
from .errors import fail
from .guard import policy_of, same_origin, token_user

HERE = Path(__file__).resolve().parent
STATIC_PATH = str(HERE / "static")
TEMPLATE_PATH = str(HERE / "templates")


class PageHandler(BaseHandler):
    """Renders one template as an HTML page. Anyone may load it; with ``--auth token`` it is
    given the signed-in user, and a browser with no valid sign-in gets the sign-in form."""

    public = True

    def initialize(self, template: str) -> None:
        self.template = template

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Content-Type", "text/html; charset=UTF-8")

    def get(self) -> None:
        auth = policy_of(self).auth
        if auth == "token" and self.visitor.user is None:
            signin.render(self, user=None, token=None, current=None,
                          target=signin.local_path(self.request.uri))
            return
        if self.visitor.via is not None:
            _ = self.xsrf_token  # sets the _xsrf cookie a form on this page would need
        self.render(self.template, user=self.visitor.user, auth=auth)


class SignInHandler(BaseHandler):
    """``GET /signin``: the form; ``POST /signin`` (``token``, ``next``, ``_xsrf``, and
    ``switch`` naming the user it replaces): sets the cookie and goes to ``next``.

    Only a form of the gateway's own pages may post here: same origin and ``_xsrf``, with or
    without a cookie (a foreign page must not sign anyone in either)."""

    public = True

    async def prepare(self) -> None:
        if policy_of(self).auth != "token":
            raise fail(404, "this gateway has no sign-in (it runs with --auth none)")
        await super().prepare()

    def get(self) -> None:
        signin.render(self, user=None, token=None, current=self.visitor.user,
                      target=signin.local_path(self.get_query_argument("next", None)))

    async def post(self) -> None:
        if not same_origin(self):
            raise fail(403, "sign in from this gateway's own sign-in page")
        try:
            self.check_xsrf_cookie()
        except HTTPError:
            raise fail(403, "the sign-in form needs the _xsrf field of this gateway's "
                            "page; open /signin and sign in there") from None
        token = self.get_body_argument("token", "").strip()
        target = signin.local_path(self.get_body_argument("next", None))
        user = await token_user(self, token) if 0 < len(token) <= MAX_TOKEN_LENGTH else None
        current = self.visitor.user
        if user is None:
            self.set_status(401)
            signin.render(self, user=None, token=None, current=current, target=target,
                          error="That token is not valid (mistyped, replaced or removed).")
        elif current not in (None, user) and self.get_body_argument("switch", "") != current:
            signin.render(self, user=user, token=token, current=current, target=target)
        else:
            signin.set_cookie(self, policy_of(self), token)
            self.redirect(target)


#: Tornado's rules: (pattern, handler) or (pattern, handler, its initialize() arguments).
ROUTES: list[tuple[str, type[RequestHandler]]
             | tuple[str, type[RequestHandler], dict[str, Any]]] = [
    (r"/", PageHandler, {"template": "worksheet.html"}),
    (r"/embed-example", PageHandler, {"template": "embed-example.html"}),
    (r"/signin", SignInHandler),
]
SETTINGS: dict[str, Any] = {"static_path": STATIC_PATH, "template_path": TEMPLATE_PATH}
