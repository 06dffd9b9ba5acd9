"""Helpers of the access tests (tests/test_access.py, tests/test_browser_access.py).

Requests with any headers (Host, Origin, Cookie, Authorization) and no redirects followed,
users made with ``bin/cellbus user`` as an operator would, and a look into the chain's SQLite
store to prove that a refused request stored nothing.
"""

from __future__ import annotations

import http.client
import json
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from harness import CELLBUS, ROOT, Chain, node_env


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: Any  # decoded JSON, else bytes


def call(port: int, method: str, path: str, body: bytes | str | None = None,
         headers: dict[str, str] | None = None, timeout: float = 30) -> Answer:
    """One HTTP request to 127.0.0.1:port, exactly as given (redirects are answers)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        raw = resp.read()
        ctype = resp.headers.get("Content-Type", "")
        return Answer(resp.status, resp.headers,
                      json.loads(raw) if ctype.startswith("application/json") and raw else raw)
    finally:
        conn.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


JSON = {"Content-Type": "application/json"}


def evaluate_body(code: str) -> str:
    return json.dumps({"input": code})


#: Over broker.updates.BIG (256 KiB) of text in one block: a big ``/update`` answer.
BIG_PRINT = "print('x' * 400_000)"


def run_done(chain: Chain, token: str, path: str, code: str) -> Answer:
    """Evaluate ``code`` at ``path`` as ``token``'s user and wait for the end; the final
    ``/update`` answer."""
    assert call(chain.port, "POST", f"{path}/evaluate", evaluate_body(code),
                {**JSON, **bearer(token)}).status == 202
    doc = call(chain.port, "GET", f"{path}/update?since=0&wait=30&until=done",
               headers=bearer(token))
    assert doc.status == 200 and doc.body["status"] == "done", doc.body
    return doc


def cellbus_user(*args: str, store: str) -> subprocess.CompletedProcess[str]:
    """``bin/cellbus user ARGS --store STORE``."""
    return subprocess.run([*CELLBUS, "user", *args, "--store", store], env=node_env(),
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def add_user(chain: Chain, name: str) -> str:
    """A new user of ``chain``'s store; their token."""
    out = cellbus_user("add", name, store=chain.store)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def store_path(chain: Chain) -> str:
    return "/" + unquote(urlsplit(chain.store).path).lstrip("/")


def stored_requests(chain: Chain) -> list[tuple[str, str, str, str]]:
    """(user, worksheet, cell_id, input) of every request in the chain's store (an execute
    request's input is the code of its message, which the store keeps once)."""
    from broker.store._rows import read_input, unpack
    with closing(sqlite3.connect(f"file:{store_path(chain)}?mode=ro", uri=True)) as db:
        return [(user, worksheet, cell_id, read_input(msg_type, stored, unpack(message)))
                for user, worksheet, cell_id, msg_type, stored, message in db.execute(
                    "SELECT user, worksheet, cell_id, msg_type, input, message FROM requests "
                    "ORDER BY id")]


class _Pages(BaseHTTPRequestHandler):
    pages: dict[str, str] = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = self.path.split("?")[0]
        page = self.server.pages.get(path)  # type: ignore[attr-defined]
        self.send_response(200 if page is not None else 404)
        kind = "text/javascript" if path.endswith(".js") else "text/html"
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.end_headers()
        self.wfile.write((page or "not here").encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def other_site(pages: dict[str, str]) -> Iterator[int]:
    """A plain web server on another free loopback port serving ``pages`` (path -> HTML, or
    JavaScript for a path ending in .js): the site of a page that is not the gateway's.
    Yields its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    server.pages = pages  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
