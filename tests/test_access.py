"""Access to the gateway: tokens, other users' cells, hosts, origins, rate (issue 10, Access).

Real processes on free loopback ports (tests/harness.py); nothing is mocked. The browser
side (Chromium on a page of another site) is tests/test_browser_access.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import sqlite3
import subprocess
import time
import urllib.parse
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from access_util import (JSON, add_user, bearer, call, cellbus_user, evaluate_body,
                         stored_requests)
from broker.store import sqlite_url
from harness import CELLBUS, ROOT, Chain, NodeProcess, free_port, ipc_endpoint, node_env

pytestmark = pytest.mark.timeout(90)

#: Seconds within which a removed token must stop working (README: "within a second"; the
#: gateway's cache is 1 s, plus a round trip), with room for a busy 2-core CI, where one
#: round trip took over a second: a revocation that does not work never gives 401.
REVOKE_BOUND = 5.0


def start(chain: Chain, *gateway_options: str, device: bool = False) -> None:
    """Broker (and a device) and a gateway with ``gateway_options``, all logging at DEBUG
    (every log line is searched for tokens); returns once the gateway reaches the broker."""
    chain.start_broker("--log-level", "DEBUG")
    if device:
        chain.start_device()
    chain.start_gateway("--log-level", "DEBUG", *gateway_options)
    deadline = time.monotonic() + 10
    while call(chain.port, "GET", "/home/-/-/-/update", headers=bearer("x")).status == 503:
        assert time.monotonic() < deadline, "the gateway never reached the broker"
        time.sleep(0.05)


@pytest.fixture
def token_chain(chain: Chain) -> tuple[Chain, dict[str, str]]:
    """A chain whose gateway has --auth token, with users alice and bob: (chain, tokens)."""
    tokens = {"alice": add_user(chain, "alice"), "bob": add_user(chain, "bob")}
    start(chain, "--auth", "token")
    return chain, tokens


def assert_no_token_in_logs(chain: Chain, tokens: dict[str, str]) -> None:
    """No log line of any node holds a token (the gateway and broker log at DEBUG)."""
    for node in chain.nodes:
        for token in tokens.values():
            assert token not in node.log, f"a token is in the log of {node.argv[1]}"


def wait_done(chain: Chain, cell: str, token: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = call(chain.port, "GET", f"/home/{cell}/update?wait=5", headers=bearer(token))
        assert r.status == 200, r.body
        if r.body["status"] in ("done", "error"):
            return r.body
    raise AssertionError(f"{cell} not done in {timeout} s")


# -- bin/cellbus user -----------------------------------------------------------------------


def test_user_add_prints_the_token_alone_and_stores_only_its_hash(tmp_path: Path) -> None:
    """`user add` prints the token alone on its last line, and the store keeps its SHA-256
    only; adding again needs --rotate; bad names and unknown users are refused."""
    store = sqlite_url(tmp_path / "cellbus.db")
    out = cellbus_user("add", "alice", store=store)
    assert out.returncode == 0, out.stderr
    *before, token = out.stdout.splitlines()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token), out.stdout
    assert before and all(token not in line for line in before) and token not in out.stderr

    def stored() -> list[tuple[str, str]]:
        with closing(sqlite3.connect(tmp_path / "cellbus.db")) as db:
            return db.execute("SELECT name, token_hash FROM users").fetchall()

    assert stored() == [("alice", hashlib.sha256(token.encode()).hexdigest())]
    for name in os.listdir(tmp_path):  # the database and its WAL files
        assert token.encode() not in (tmp_path / name).read_bytes()
    again = cellbus_user("add", "alice", store=store)
    assert again.returncode == 1 and "--rotate" in again.stderr
    assert f"add alice --rotate --store {store}` replaces it" in again.stderr  # the same store
    rotated = cellbus_user("add", "alice", "--rotate", store=store)
    new = rotated.stdout.splitlines()[-1]
    assert rotated.returncode == 0 and new != token
    assert stored() == [("alice", hashlib.sha256(new.encode()).hexdigest())]
    bad = cellbus_user("add", "../bob", store=store)
    assert bad.returncode == 1 and "cannot be a user name" in bad.stderr
    listing = cellbus_user("list", store=store)
    assert listing.returncode == 0 and "alice" in listing.stdout and new not in listing.stdout
    assert cellbus_user("remove", "alice", store=store).returncode == 0
    gone = cellbus_user("remove", "alice", store=store)
    assert gone.returncode == 1 and "no user alice" in gone.stderr
    assert stored() == []


def test_user_add_uses_the_brokers_default_store(tmp_path: Path) -> None:
    """Without --store, `user add` writes the SQLite file a broker (and `up`) uses by
    default: $XDG_DATA_HOME/cellbus/cellbus.db."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLBUS_")}
    env["XDG_DATA_HOME"] = str(tmp_path)
    out = subprocess.run([*CELLBUS, "user", "add", "carol"], cwd=ROOT,
                         env=node_env(base=env), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    with closing(sqlite3.connect(tmp_path / "cellbus" / "cellbus.db")) as db:
        assert db.execute("SELECT name FROM users").fetchall() == [("carol",)]


# -- tokens ---------------------------------------------------------------------------------


def test_no_or_wrong_token_is_401(token_chain: tuple[Chain, dict[str, str]]) -> None:
    """Without a token, with a wrong one, or with another scheme: 401 JSON, nothing
    stored; a user's own token works."""
    chain, tokens = token_chain
    cell = "/home/alice/ws/1"
    for headers in ({}, bearer("x" * 43), {"Authorization": "Basic YWxpY2U6eA=="},
                    bearer(tokens["alice"] + "x"), {"Cookie": f"cellbus_token_{chain.port}=no"}):
        for method, path, body in (("GET", f"{cell}/update", None),
                                   ("POST", f"{cell}/evaluate", evaluate_body("print(1)"))):
            r = call(chain.port, method, path, body, {**JSON, **headers})
            assert r.status == 401, (headers, r.status, r.body)
            assert "token" in r.body["error"]
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert call(chain.port, "GET", "/ws").status == 401  # the WebSocket endpoint too
    assert stored_requests(chain) == []
    r = call(chain.port, "POST", f"{cell}/evaluate", evaluate_body("print(1)"),
             {**JSON, **bearer(tokens["alice"])})
    assert r.status == 202, r.body
    assert call(chain.port, "GET", "/health").status == 200  # pages and health stay open
    assert call(chain.port, "GET", "/").status == 200
    assert_no_token_in_logs(chain, tokens)


def test_other_users_cells_are_404_like_missing_ones(
        token_chain: tuple[Chain, dict[str, str]]) -> None:
    """Bob gets alice's existing cell answered exactly like a cell that does not exist, for
    every route, reading or writing; nothing of his is stored under her name."""
    chain, tokens = token_chain
    alice, bob = bearer(tokens["alice"]), bearer(tokens["bob"])
    r = call(chain.port, "POST", "/home/alice/ws/1/evaluate", evaluate_body("x = 1"),
             {**JSON, **alice})
    assert r.status == 202
    assert call(chain.port, "GET", "/home/alice/ws/1/update", headers=alice).status == 200
    theirs = call(chain.port, "GET", "/home/alice/ws/1/update", headers=bob)
    missing = call(chain.port, "GET", "/home/bob/ws/1/update", headers=bob)
    assert theirs.status == missing.status == 404
    assert theirs.body == missing.body == {"error": "no cell 1 in worksheet ws"}
    absent = call(chain.port, "GET", "/home/alice/nows/9/update", headers=bob)
    own_absent = call(chain.port, "GET", "/home/bob/nows/9/update", headers=bob)
    assert (absent.status, absent.body) == (own_absent.status, own_absent.body)
    for method, action, body in (("POST", "evaluate", evaluate_body("print('bob')")),
                                 ("POST", "evaluate", ""),
                                 ("POST", "interact", json.dumps({"interact_id": "i",
                                                                  "values": {}, "state": 1})),
                                 ("POST", "interrupt", ""), ("POST", "restart", ""),
                                 ("POST", "input", json.dumps({"value": "x"})),
                                 ("GET", "files/1/a.txt", None), ("GET", "update", None)):
        r = call(chain.port, method, f"/home/alice/ws/1/{action}", body, {**JSON, **bob})
        assert (r.status, r.body) == (404, {"error": "no cell 1 in worksheet ws"}), action
    assert [row[:3] for row in stored_requests(chain)] == [("alice", "ws", "1")]
    assert_no_token_in_logs(chain, tokens)


async def test_websocket_reaches_only_its_users_worksheets(
        token_chain: tuple[Chain, dict[str, str]]) -> None:
    """A socket needs a token; bob's socket gets 404 for alice's worksheet (subscribe and
    execute) and never carries a message of hers while she runs code."""
    chain, tokens = token_chain
    chain.start_device()
    url = f"ws://127.0.0.1:{chain.port}/ws"
    for bad in (url, f"{url}?token=wrong"):
        with pytest.raises(HTTPClientError) as refused:
            await websocket_connect(bad)
        assert refused.value.code == 401
    bob = await websocket_connect(HTTPRequest(url, headers=bearer(tokens["bob"])))
    alice = await websocket_connect(f"{url}?token={tokens['alice']}")  # as a browser would
    try:
        await send(bob, "subscribe_request", {"user": "alice", "worksheet": "ws", "since": 0})
        reply = await next_message(bob)
        assert reply["msg_type"] == "subscribe_reply"
        assert reply["content"] == {"ok": False, "http_status": 404,
                                    "error": "no worksheet ws"}
        await send(bob, "execute_request", {"code": "print('bob was here')"},
                   user="alice", worksheet="ws", cell_id="1")
        reply = await next_message(bob)
        assert reply["content"]["http_status"] == 404
        await send(bob, "subscribe_request", {"user": "bob", "worksheet": "ws", "since": 0})
        assert (await next_message(bob))["content"]["ok"] is True
        await send(alice, "subscribe_request", {"user": "alice", "worksheet": "ws", "since": 0})
        assert (await next_message(alice))["content"]["ok"] is True
        await send(alice, "execute_request", {"code": "print('secret of alice')"},
                   user="alice", worksheet="ws", cell_id="1")
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(30):
            while not any(m["msg_type"] == "execute_reply" for m in seen):
                seen.append(await next_message(alice))
        assert any("secret of alice" in json.dumps(m) for m in seen)
        with pytest.raises(TimeoutError):  # bob's socket stays silent meanwhile
            await asyncio.wait_for(bob.read_message(), 1.0)
    finally:
        await shut(bob)
        await shut(alice)
    assert [row[:3] for row in stored_requests(chain)] == [("alice", "ws", "1")]
    assert_no_token_in_logs(chain, tokens)


async def send(ws: WebSocketClientConnection, msg_type: str, content: dict[str, Any],
               **cellbus: str) -> None:
    await ws.write_message(json.dumps({"header": {"msg_type": msg_type}, "content": content,
                                       "metadata": {"cellbus": cellbus}}))


async def shut(ws: WebSocketClientConnection) -> None:
    """Close ``ws`` and wait for the closing handshake."""
    if ws.protocol is None:
        return
    ws.close()
    async with asyncio.timeout(5):
        while await ws.read_message() is not None:
            pass


async def next_message(ws: WebSocketClientConnection, timeout: float = 10) -> dict[str, Any]:
    raw = await asyncio.wait_for(ws.read_message(), timeout)
    assert isinstance(raw, str), "the socket closed"
    msg: dict[str, Any] = json.loads(raw)
    return msg


def test_removed_token_is_401_within_the_bound(
        token_chain: tuple[Chain, dict[str, str]]) -> None:
    """`user remove` revokes without a restart: 401 within REVOKE_BOUND seconds; others keep
    working; a new token for the same name works and the old one stays refused."""
    chain, tokens = token_chain
    alice, bob = bearer(tokens["alice"]), bearer(tokens["bob"])
    for _ in range(3):  # cached now
        assert call(chain.port, "GET", "/home/alice/ws/1/update", headers=alice).status == 404
    assert cellbus_user("remove", "alice", store=chain.store).returncode == 0
    removed = time.monotonic()
    while call(chain.port, "GET", "/home/alice/ws/1/update", headers=alice).status != 401:
        assert time.monotonic() - removed < REVOKE_BOUND, "the removed token still works"
        time.sleep(0.05)
    assert call(chain.port, "GET", "/home/bob/ws/1/update", headers=bob).status == 404
    new = add_user(chain, "alice")
    r = call(chain.port, "GET", "/home/alice/ws/1/update", headers=bearer(new))
    assert r.status == 404  # authenticated (the cell just does not exist)
    assert call(chain.port, "GET", "/home/alice/ws/1/update", headers=alice).status == 401
    assert_no_token_in_logs(chain, {**tokens, "new": new})


def test_token_in_url_becomes_a_cookie(chain: Chain) -> None:
    """?token= once, typed: a HttpOnly SameSite=Strict cookie and a redirect without the token
    (when a link may not sign in: tests/test_signin.py). The cookie works for the gateway's
    own pages only: a cross-origin request with it is 403, even from an --allow-origin origin
    (those send the token), and a form posted with it needs the _xsrf field."""
    tokens = {"alice": add_user(chain, "alice")}
    allowed = f"http://127.0.0.1:{free_port()}"
    start(chain, "--auth", "token", "--allow-origin", allowed)
    port, token = chain.port, tokens["alice"]
    r = call(port, "GET", f"/?ws=w1&token={token}", headers={"Sec-Fetch-Site": "none"})  # typed
    assert r.status == 302 and r.headers["Location"] == "/?ws=w1"
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith(f"cellbus_token_{port}={token};")
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    assert call(port, "GET", "/?token=wrong").status == 401
    jar = {"Cookie": f"cellbus_token_{port}={token}"}
    assert call(port, "GET", "/home/alice/ws/1/update", headers=jar).status == 404  # signed in
    page = call(port, "GET", "/", headers=jar)
    assert page.status == 200 and b'"alice"' in page.body  # the page knows its user
    xsrf = page.headers["Set-Cookie"].split(";")[0]
    assert xsrf.startswith(f"_xsrf_{port}=")
    body = evaluate_body("print(1)")
    own = call(port, "POST", "/home/alice/ws/1/evaluate", body,
               {**JSON, **jar, "Origin": f"http://127.0.0.1:{port}",
                "Sec-Fetch-Site": "same-origin"})
    assert own.status == 202, own.body
    other = f"http://127.0.0.1:{free_port()}"
    for headers in ({"Origin": other}, {"Origin": other, "Sec-Fetch-Site": "same-site"},
                    {"Sec-Fetch-Site": "same-site"}, {"Origin": allowed},
                    {"Origin": allowed, "Sec-Fetch-Site": "same-site"}):
        r = call(port, "POST", "/home/alice/ws/2/evaluate", body, {**JSON, **jar, **headers})
        assert r.status == 403, (headers, r.body)
    r = call(port, "POST", "/home/alice/ws/2/evaluate", body,  # the allowed page's way
             {**JSON, **bearer(token), "Origin": allowed, "Sec-Fetch-Site": "same-site"})
    assert r.status == 202, r.body
    asyncio.run(check_cookie_socket(port, jar, allowed, token))
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    r = call(port, "POST", "/home/alice/ws/3/evaluate", "input=print(3)", {**form, **jar})
    assert r.status == 403 and "_xsrf" in r.body["error"]
    value = xsrf.split("=", 1)[1]
    r = call(port, "POST", "/home/alice/ws/3/evaluate",
             f"input=print(3)&_xsrf={urllib.parse.quote(value)}",
             {**form, "Cookie": f"{jar['Cookie']}; {xsrf}"})
    assert r.status == 202, r.body
    assert [row[2] for row in stored_requests(chain)] == ["1", "2", "3"]
    gateway = chain.gateway
    assert gateway is not None
    gateway.wait_for_log(r"token=\[redacted\]")  # logged, redacted
    assert_no_token_in_logs(chain, tokens)


# -- who may serve what ---------------------------------------------------------------------


def test_refuses_a_public_address_without_auth(key_file: Path,
                                               nodes: list[NodeProcess]) -> None:
    """--auth none on 0.0.0.0 exits 2 with one clear line; --allow-anonymous starts with a
    warning; with no --auth a public address gets token auth."""
    common = ("--host", "0.0.0.0", "--broker", ipc_endpoint("gw"),
              "--subscribe", ipc_endpoint("pub"), "--key-file", str(key_file))
    refused = NodeProcess("gateway", "--auth", "none", "--port", str(free_port()), *common)
    nodes.append(refused)
    assert refused.proc.wait(30) == 2
    refused.stop()
    lines = [line for line in refused.lines  # the launcher may say it installs first
             if line.strip() and not line.startswith("cellbus: installing")]
    assert len(lines) == 1 and "refusing to serve 0.0.0.0" in lines[0], refused.log
    assert "--allow-anonymous" in lines[0] and "Traceback" not in refused.log
    public = NodeProcess("gateway", "--auth", "none", "--allow-anonymous",
                         "--port", str(free_port()), *common)
    nodes.append(public)
    public.wait_for_log(r"WARNING .*--allow-anonymous: anyone who reaches")
    default = NodeProcess("gateway", "--port", str(free_port()), *common)
    nodes.append(default)
    default.wait_for_log(r"gateway access: auth token")
    loopback = NodeProcess("gateway", "--port", str(free_port()), *common[2:])
    nodes.append(loopback)
    loopback.wait_for_log(r"gateway access: auth none")


def test_foreign_hosts_and_origins_are_refused(chain: Chain) -> None:
    """A loopback gateway without auth: a Host it does not serve (DNS rebinding) is 403; a
    POST or WebSocket from another origin is 403 unless --allow-origin names it, which also
    gets CORS answers; a body that is neither JSON nor a form is 415. Only the allowed
    requests are stored."""
    allowed = f"http://127.0.0.1:{free_port()}"
    other = f"http://127.0.0.1:{free_port()}"
    start(chain, "--allow-origin", allowed)
    port, body = chain.port, evaluate_body("print(1)")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert call(port, "GET", "/health", headers={"Host": f"localhost:{port}"}).status == 200
    assert call(port, "GET", "/health", headers={"Host": f"[::1]:{port}"}).status == 200
    for method, path, payload, headers in (
            ("GET", "/health", None, {"Host": f"evil.test:{port}"}),
            ("GET", "/", None, {"Host": f"127.0.0.1.evil.test:{port}"}),
            ("POST", "/home/u/w/1/evaluate", body, {**JSON, "Host": f"evil.test:{port}"}),
            ("POST", "/home/u/w/1/evaluate", "input=1", {**form, "Origin": other}),
            ("POST", "/home/u/w/1/evaluate", body, {**JSON, "Origin": other}),
            ("POST", "/home/u/w/1/evaluate", body, {**JSON, "Origin": "null"}),
            ("POST", "/home/u/w/1/evaluate", body, {**JSON, "Sec-Fetch-Site": "cross-site"}),
            ("OPTIONS", "/home/u/w/1/evaluate", None, {"Origin": other})):
        r = call(port, method, path, payload, headers)
        assert r.status == 403 and "error" in r.body, (method, headers, r.status, r.body)
    r = call(port, "POST", "/home/u/w/1/evaluate", body, {"Content-Type": "text/plain"})
    assert r.status == 415 and "JSON" in r.body["error"]
    assert stored_requests(chain) == []
    pre = call(port, "OPTIONS", "/home/u/w/1/evaluate", None,
               {"Origin": allowed, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type"})
    assert pre.status == 204 and pre.headers["Access-Control-Allow-Origin"] == allowed
    assert "Authorization" in pre.headers["Access-Control-Allow-Headers"]
    r = call(port, "POST", "/home/u/w/1/evaluate", body, {**JSON, "Origin": allowed,
                                                          "Sec-Fetch-Site": "same-site"})
    assert r.status == 202 and r.headers["Access-Control-Allow-Origin"] == allowed
    r = call(port, "GET", "/home/u/w/404/update", headers={"Origin": allowed})
    assert r.status == 404 and r.headers["Access-Control-Allow-Origin"] == allowed  # errors too
    assert "Access-Control-Allow-Credentials" not in r.headers
    r = call(port, "GET", "/home/u/w/404/update", headers={"Origin": other})
    # Refused, and that page may read why (issue 26): the refusal only, never an answer.
    assert r.status == 403 and f"--allow-origin {other}" in r.body["error"], r.body
    assert r.headers["Access-Control-Allow-Origin"] == other
    assert "Access-Control-Allow-Credentials" not in r.headers
    r = call(port, "POST", "/home/u/w/2/evaluate", "input=print(2)", form)  # curl -d
    assert r.status == 202
    assert [row[2] for row in stored_requests(chain)] == ["1", "2"]
    asyncio.run(check_socket_origins(port, allowed, other))


async def check_cookie_socket(port: int, jar: dict[str, str], allowed: str, token: str) -> None:
    """A WebSocket from an allowed origin is refused with the cookie, taken with the token."""
    url = f"ws://127.0.0.1:{port}/ws"
    with pytest.raises(HTTPClientError) as refused:
        await websocket_connect(HTTPRequest(url, headers={**jar, "Origin": allowed}))
    assert refused.value.code == 403
    await shut(await websocket_connect(HTTPRequest(f"{url}?token={token}",
                                                   headers={"Origin": allowed})))
    await shut(await websocket_connect(HTTPRequest(url, headers=jar)))  # own page: no Origin


async def check_socket_origins(port: int, allowed: str, other: str) -> None:
    url = f"ws://127.0.0.1:{port}/ws"
    for headers in ({"Origin": other}, {"Host": f"evil.test:{port}"}):
        with pytest.raises(HTTPClientError) as refused:
            await websocket_connect(HTTPRequest(url, headers=headers))
        assert refused.value.code == 403
    await shut(await websocket_connect(HTTPRequest(url, headers={"Origin": allowed})))


@pytest.mark.parametrize("auth", ["token", "none"])
async def test_rate_limit_is_429_and_stores_nothing(chain: Chain, auth: str) -> None:
    """--rate 3/min: the 4th request that runs code is 429 with Retry-After and is not
    stored; reads are not counted; with auth each user has a bucket of their own, without
    it each address."""
    users = {"alice": add_user(chain, "alice"), "bob": add_user(chain, "bob")}
    start(chain, "--auth", auth, "--rate", "3/min")
    alice = {**JSON, **bearer(users["alice"])} if auth == "token" else JSON
    for i in range(3):
        r = call(chain.port, "POST", f"/home/alice/ws/{i}/evaluate", evaluate_body("1"), alice)
        assert r.status == 202, r.body
    r = call(chain.port, "POST", "/home/alice/ws/9/evaluate", evaluate_body("1"), alice)
    assert r.status == 429 and "too many" in r.body["error"]
    assert 1 <= int(r.headers["Retry-After"]) <= 20
    assert call(chain.port, "GET", "/home/alice/ws/0/update", headers=alice).status == 200
    assert call(chain.port, "POST", "/home/alice/ws/0/restart", "", alice).status == 429
    query = f"?token={users['alice']}" if auth == "token" else ""
    ws = await websocket_connect(f"ws://127.0.0.1:{chain.port}/ws{query}")
    try:
        await send(ws, "execute_request", {"code": "1"}, user="alice", worksheet="ws",
                   cell_id="8")
        reply = await next_message(ws)
        assert reply["content"]["http_status"] == 429 and reply["content"]["retry_after"] >= 1
    finally:
        await shut(ws)
    stored = [row[:3] for row in stored_requests(chain)]
    assert stored == [("alice", "ws", str(i)) for i in range(3)]
    if auth == "token":  # bob has his own bucket
        r = call(chain.port, "POST", "/home/bob/ws/0/evaluate", evaluate_body("1"),
                 {**JSON, **bearer(users["bob"])})
        assert r.status == 202
    assert_no_token_in_logs(chain, users)


# -- the pure parts -------------------------------------------------------------------------


def test_policy_parts() -> None:
    """Origins and Host names are compared in one normal form; rates parse or say the form;
    secrets leave URLs before they are logged; a token bucket refills."""
    from gateway.access import host_name, make_policy, normal_origin, redact_uri
    from gateway.ratelimit import RateLimiter, parse_rate
    from protocol.errors import ConfigError

    assert normal_origin("HTTPS://Example.org:443/") == "https://example.org"
    assert normal_origin("http://[::1]:8000") == "http://[::1]:8000"
    for bad in ("example.org", "https://example.org/page", "ftp://x", "null", "http://u@x"):
        assert normal_origin(bad) == ""
    assert [host_name(h) for h in ("LocalHost:8888", "[::1]:80", "127.0.0.1", "a.test.:1")] \
        == ["localhost", "::1", "127.0.0.1", "a.test"]
    policy = make_policy(host="127.0.0.1", port=8888, origins=["https://Example.org/"],
                         hosts=["cells.example.org"])
    assert policy.auth == "none" and policy.origin_allowed("https://example.org")
    assert not policy.origin_allowed("https://example.org.evil.test")
    anyone = make_policy(host="127.0.0.1", port=8888, origins=["*"])
    assert anyone.origin_allowed("https://example.org")
    assert not anyone.origin_allowed("null")  # a sandboxed frame: cell output (issue 19)
    assert policy.serves_host("cells.example.org:443") and not policy.serves_host("evil.test")
    assert make_policy(host="0.0.0.0", port=1).auth == "token"
    assert make_policy(host="::", port=1, allow_anonymous=True).auth == "none"
    for kwargs in ({"auth": "none"}, {"origins": ["example.org"]}, {"rate": "3/fortnight"}):
        with pytest.raises(ConfigError):
            make_policy(host="0.0.0.0", port=1, **kwargs)
    assert parse_rate("0") is None and str(parse_rate("30/min")) == "30/min"
    assert redact_uri("/a?x=1&token=s3cret&%74oken=s&_xsrf=q") == \
        "/a?x=1&token=[redacted]&%74oken=[redacted]&_xsrf=[redacted]"
    limiter = RateLimiter(parse_rate("2/min"))  # type: ignore[arg-type]
    assert [limiter.take("k", now=0.0) for _ in range(3)] == [None, None, 30]
    assert limiter.take("other", now=0.0) is None
    assert limiter.take("k", now=30.0) is None  # one token back after half a minute
    # A replay's page is paid once it came, by what it carried (gateway/bigreads.py), and
    # may leave the bucket below zero: the next request waits the longer.
    assert limiter.wait("k", now=60.0) is None  # a token: the page may be asked for
    limiter.spend("k", 1.5, now=60.0)
    assert limiter.wait("k", now=60.0) == 45 and limiter.take("k", now=60.0) == 45
    assert limiter.take("k", now=105.0) is None


def test_access_lines_are_quiet_for_requests_that_went_well() -> None:
    """Tests the level of a request's access line: DEBUG for one that went well (101, 2xx,
    304), as jupyter_server logs them, INFO for another redirect, WARNING for 4xx and ERROR
    for 5xx; with --log-requests those that went well are at INFO too."""
    import logging

    from gateway.access import access_level

    levels = {status: access_level(status) for status in (101, 200, 202, 304, 302, 404, 503)}
    assert levels == {101: logging.DEBUG, 200: logging.DEBUG, 202: logging.DEBUG,
                      304: logging.DEBUG, 302: logging.INFO, 404: logging.WARNING,
                      503: logging.ERROR}
    assert [access_level(s, every=True) for s in (101, 200, 304, 302, 404, 503)] == [
        logging.INFO, logging.INFO, logging.INFO, logging.INFO, logging.WARNING, logging.ERROR]
