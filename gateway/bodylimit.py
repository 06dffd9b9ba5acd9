"""Request bodies over the limit get ``413 {"error": ...}``, not tornado's bare 400.

tornado enforces ``max_body_size`` inside its HTTP/1 connection, before any handler runs, and
answers an oversized body with ``HTTP/1.1 400 Bad Request`` and no body at all: not the JSON
error every other refusal of the API is. :class:`BodyLimit` wraps the application as the
server's delegate and applies the real limit itself, a layer above tornado's:

* a ``Content-Length`` over the limit is answered ``413`` as soon as the headers are in; the
  body is read and thrown away (chunk by chunk, never held), so the answer arrives whole and
  the connection stays in step;
* a chunked body is counted as it arrives, and ``413`` once it passes the limit;
* the server's own ``max_body_size`` (:func:`hard_cap`) stays as the backstop for bodies too
  large even to read and discard: those still get tornado's bare 400 and a closed connection.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable

from tornado import httputil


def hard_cap(limit: int) -> int:
    """tornado's ``max_body_size`` for a gateway whose bodies may be ``limit`` bytes: bodies
    up to this size are read (and discarded) to answer a proper 413."""
    return 16 * limit + (1 << 20)


class BodyLimit(httputil.HTTPServerConnectionDelegate):
    """Wraps ``app`` (the server's delegate): bodies over ``limit`` bytes get a JSON 413."""

    def __init__(self, app: httputil.HTTPServerConnectionDelegate, limit: int) -> None:
        self.app, self.limit = app, limit

    def start_request(self, server_conn: object,
                      request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        return _Limited(self.app.start_request(server_conn, request_conn), request_conn,
                        self.limit)

    def on_close(self, server_conn: object) -> None:
        self.app.on_close(server_conn)


class _Limited(httputil.HTTPMessageDelegate):
    """One request: passed through to the application until its body is too big."""

    def __init__(self, inner: httputil.HTTPMessageDelegate,
                 connection: httputil.HTTPConnection, limit: int) -> None:
        self.inner, self.connection, self.limit = inner, connection, limit
        self.size = 0
        self.too_big = False
        self.started = False  # the application has seen the headers
        self.head = False  # a HEAD request: its answer has no body

    def headers_received(self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
                         headers: httputil.HTTPHeaders) -> Awaitable[None] | None:
        self.head = getattr(start_line, "method", "") == "HEAD"
        length = headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.limit:
            self.too_big = True
            return None
        self.started = True
        return self.inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if self.too_big:
            return None
        self.size += len(chunk)
        if self.size > self.limit:  # a chunked body that grew too big
            self.too_big = True
            self.on_connection_close()  # the application forgets what it buffered
            return None
        return self.inner.data_received(chunk)

    def finish(self) -> None:
        if not self.too_big:
            self.inner.finish()
            return
        body = json.dumps({"error": f"the request body is over the limit of {self.limit} "
                                    "bytes"}).encode()
        self.connection.write_headers(
            httputil.ResponseStartLine("HTTP/1.1", 413, "Payload Too Large"),
            httputil.HTTPHeaders({"Content-Type": "application/json; charset=UTF-8",
                                  "Content-Length": str(len(body)),
                                  "Cache-Control": "no-store"}), None if self.head else body)
        self.connection.finish()

    def on_connection_close(self) -> None:
        if self.started:
            self.started = False
            self.inner.on_connection_close()
