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
    """Renders one template as an HTML page."""

    def initialize(self, template: str) -> None:
        self.template = template

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Content-Type", "text/html; charset=UTF-8")

    def get(self) -> None:
        self.render(self.template)


ROUTES = [
    (r"/", PageHandler, {"template": "worksheet.html"}),
    (r"/embed-example", PageHandler, {"template": "embed-example.html"}),
]
SETTINGS = {"static_path": STATIC_PATH, "template_path": TEMPLATE_PATH}
