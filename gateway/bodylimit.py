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

Headers the same way: past tornado's ``max_header_size`` its ``IOStream`` gives up on the read
("Unsatisfiable read") and closes the socket with the rest of the request unread, which the
client sees as a reset, never an answer: tornado has no hook there. So the server's
``max_header_size`` is :data:`HEADER_HARD_CAP`, and a header block over :data:`MAX_HEADERS`
gets ``431 Request Header Fields Too Large`` from here (its body read and thrown away, as for
a 413); only one past the hard cap still gets tornado's reset.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable

from tornado import httputil

#: The largest request header block (start line included) answered; past it 431.
MAX_HEADERS = 64 * 1024
#: tornado's ``max_header_size``: blocks up to this are read whole so that a 431 can be
#: answered (it buffers them: 256 KiB per connection at most, under the bodies' limit).
HEADER_HARD_CAP = 4 * MAX_HEADERS


def header_size(start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
                headers: httputil.HTTPHeaders) -> int:
    """The header block's size as sent (to a byte or so: tornado folds whitespace)."""
    return len(" ".join(map(str, start_line))) + 2 + sum(
        len(name) + len(value) + 4 for name, value in headers.get_all()) + 2


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
        #: The refusal to answer once the body is read: (status, reason, error).
        self.refusal: tuple[int, str, str] | None = None
        self.started = False  # the application has seen the headers
        self.head = False  # a HEAD request: its answer has no body

    def headers_received(self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
                         headers: httputil.HTTPHeaders) -> Awaitable[None] | None:
        self.head = getattr(start_line, "method", "") == "HEAD"
        if header_size(start_line, headers) > MAX_HEADERS:
            self.refuse(431, "Request Header Fields Too Large",
                        f"the request's headers are over the limit of {MAX_HEADERS} bytes")
            return None
        length = headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.limit:
            self.refuse(413, "Payload Too Large", self.too_big_error())
            return None
        self.started = True
        return self.inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if self.refusal is not None:
            return None
        self.size += len(chunk)
        if self.size > self.limit:  # a chunked body that grew too big
            self.refuse(413, "Payload Too Large", self.too_big_error())
            self.on_connection_close()  # the application forgets what it buffered
            return None
        return self.inner.data_received(chunk)

    def refuse(self, status: int, reason: str, error: str) -> None:
        """Read the rest of the request without passing it on, then answer this."""
        self.refusal = (status, reason, error)

    def too_big_error(self) -> str:
        """The 413's error."""
        return f"the request body is over the limit of {self.limit} bytes"

    def finish(self) -> None:
        if self.refusal is None:
            self.inner.finish()
            return
        status, reason, error = self.refusal
        body = json.dumps({"error": error}).encode()
        self.connection.write_headers(
            httputil.ResponseStartLine("HTTP/1.1", status, reason),
            httputil.HTTPHeaders({"Content-Type": "application/json; charset=UTF-8",
                                  "Content-Length": str(len(body)),
                                  "Cache-Control": "no-store"}), None if self.head else body)
        self.connection.finish()

    def on_connection_close(self) -> None:
        if self.started:
            self.started = False
            self.inner.on_connection_close()
