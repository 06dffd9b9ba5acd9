"""The browser pages: ``/`` (a worksheet) and ``/embed-example``; ``/static/`` is tornado's.

The pages are tornado templates in ``gateway/templates``; everything they do happens in
``gateway/static/cellbus.js``, which a page author can load on any page of their own.
"""

from __future__ import annotations

from pathlib import Path

from .base import BaseHandler

HERE = Path(__file__).resolve().parent
STATIC_PATH = str(HERE / "static")
TEMPLATE_PATH = str(HERE / "templates")


class PageHandler(BaseHandler):
    """Renders one template as an HTML page. Anyone may load it; with ``--auth token`` the
    page is given the signed-in user (None if the browser has no valid token cookie)."""

    public = True

    def initialize(self, template: str) -> None:
        self.template = template

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Content-Type", "text/html; charset=UTF-8")

    def get(self) -> None:
        if self.visitor.via is not None:
            _ = self.xsrf_token  # sets the _xsrf cookie a form on this page would need
        self.render(self.template, user=self.visitor.user)


ROUTES = [
    (r"/", PageHandler, {"template": "worksheet.html"}),
    (r"/embed-example", PageHandler, {"template": "embed-example.html"}),
]
SETTINGS = {"static_path": STATIC_PATH, "template_path": TEMPLATE_PATH}
