"""The gateway's own TLS (``--tls-cert``, ``--tls-key``, gateway/tls.py): HTTPS and WSS on its
port for a gateway that no proxy fronts, nothing in clear on that port, and a certificate
it cannot use refused in one line before it starts.

A real chain; the certificate is made by the ``openssl`` program (Debian's, which the
machine and CI have), self-signed for 127.0.0.1, and the clients trust it alone."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from harness import CELLBUS, ROOT, Chain, node_env


def make_certificate(folder: Path, name: str = "gateway") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key: (cert, key) PEM files."""
    if shutil.which("openssl") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("no openssl program to make a test certificate with")
        pytest.skip("no openssl program to make a test certificate with")
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def https(chain: Chain, context: ssl.SSLContext, method: str, path: str,
          body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"https://127.0.0.1:{chain.port}{path}", data=data,
                                     method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read())


def test_the_gateway_serves_https_and_wss_and_nothing_in_clear(
        chain: Chain, tmp_path: Path) -> None:
    """Tests a cell run over HTTPS, its output read over HTTPS and replayed over WSS, with a
    client that trusts the gateway's certificate alone; and that a request in clear to the
    same port gets no HTTP answer (before: no way to have the gateway encrypt at all)."""
    cert, key = make_certificate(tmp_path)
    chain.start_broker()
    chain.start_device()
    gateway = chain.start_gateway("--tls-cert", str(cert), "--tls-key", str(key))
    assert gateway.wait_for_log(rf"gateway listening on https://127.0.0.1:{chain.port}/")
    trusted = ssl.create_default_context(cafile=str(cert))
    assert https(chain, trusted, "POST", "/home/u/ws/1/evaluate",
                 {"input": "print(6 * 7)"})[0] == 202
    deadline = time.monotonic() + 30
    while (doc := https(chain, trusted, "GET", "/home/u/ws/1/update?wait=5")[1])["status"] \
            not in ("done", "error"):
        assert time.monotonic() < deadline, doc
    assert doc["status"] == "done" and doc["output"]["stdout_0"]["content"] == "42\n", doc

    async def replayed() -> list[str]:
        ws = await websocket_connect(HTTPRequest(f"wss://127.0.0.1:{chain.port}/ws",
                                                 ssl_options=trusted))
        await ws.write_message(json.dumps({"header": {"msg_type": "subscribe_request"},
                                           "content": {"user": "u", "worksheet": "ws",
                                                       "since": 0}}))
        kinds = []
        async with asyncio.timeout(10):
            while (msg := json.loads(await ws.read_message()))["msg_type"] != \
                    "subscribe_reply":
                kinds.append(msg["msg_type"])
            ws.close()
            while await ws.read_message() is not None:  # None once closed: nothing left open
                pass
        return kinds

    assert "stream" in asyncio.run(replayed())
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):  # no HTTP answer
        urllib.request.urlopen(f"http://127.0.0.1:{chain.port}/home/u/ws/1/update",
                               timeout=10).close()
    untrusting = ssl.create_default_context()  # a client that does not trust this cert
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        https(chain, untrusting, "GET", "/home/u/ws/1/update")


@pytest.mark.parametrize("case", ["cert alone", "key of another cert", "not PEM"])
def test_a_certificate_it_cannot_use_is_refused_in_one_line(
        key_file: Path, tmp_path: Path, case: str) -> None:
    """Tests that a gateway given half of the pair, a key that is not its certificate's, or
    a file that is no certificate stops with status 2 and one line naming the options,
    before it listens."""
    cert, key = make_certificate(tmp_path)
    _, other_key = make_certificate(tmp_path, "other")
    junk = tmp_path / "junk.crt"
    junk.write_text("not a certificate\n")
    tls = {"cert alone": ["--tls-cert", str(cert)],
           "key of another cert": ["--tls-cert", str(cert), "--tls-key", str(other_key)],
           "not PEM": ["--tls-cert", str(junk), "--tls-key", str(key)]}[case]
    out = subprocess.run([*CELLBUS, "gateway", "--key-file", str(key_file), "--port", "0",
                          "--broker", "ipc:///nowhere", "--subscribe", "ipc:///nowhere-pub",
                          *tls], env=node_env(), cwd=ROOT, capture_output=True, text=True,
                         timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and "listening" not in out.stderr, out.stderr
    assert "--tls-cert" in out.stderr and "--tls-key" in out.stderr, out.stderr
    assert out.stderr.strip().count("\n") == 0, out.stderr
