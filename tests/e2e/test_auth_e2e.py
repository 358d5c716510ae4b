"""Auth end to end: a real ``convection serve`` with ``tests/e2e/auth_app`` (a custom JWT
provider and an OIDC provider whose keys a loopback server in this process publishes), driven
by the official clients: npm ``ConvexClient.setAuth(fetchToken, onChange)`` (through
``tests/e2e/js/auth_client.mjs``), PyPI ``ConvexClient.set_auth``, and plain HTTP.

The server runs with ``CONVECTION_AUTH_CLOCK_LEEWAY_MS=1000`` so that short-lived tokens
expire quickly enough to watch the clients react.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent
APP = HERE / "auth_app" / "convex"
JS = HERE / "js"
ISSUER = "https://e2e.convection.test"
AUDIENCE = "e2e-app"
TIMEOUT_S = 30.0

# Installs tests/e2e/js with ``npm ci`` when needed (a fresh clone); skips only without node.
needs_node = pytest.mark.usefixtures("node_ready")


# --- keys, tokens and the loopback JWKS / OIDC server ------------------------------------


@dataclass
class Keys:
    good: rsa.RSAPrivateKey
    attacker: rsa.RSAPrivateKey
    oidc: ed25519.Ed25519PrivateKey


class KeyServer:
    """Serves ``/jwks.json`` (custom JWT), ``/.well-known/openid-configuration`` and
    ``/oidc/jwks.json`` (OIDC) on 127.0.0.1."""

    def __init__(self, keys: Keys) -> None:
        self.hits: Counter[str] = Counter()
        good = dict(RSAAlgorithm.to_jwk(keys.good.public_key(), as_dict=True), kid="k1", use="sig")
        ed = dict(OKPAlgorithm.to_jwk(keys.oidc.public_key(), as_dict=True), kid="o1", use="sig")
        server = self
        self.documents: dict[str, Any] = {"/jwks.json": {"keys": [good]}, "/oidc/jwks.json": {"keys": [ed]}}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits[self.path] += 1
                doc = server.documents.get(self.path)
                body = json.dumps(doc if doc is not None else {}).encode()
                self.send_response(200 if doc is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.documents["/.well-known/openid-configuration"] = {
            "issuer": self.url,
            "jwks_uri": self.url + "/oidc/jwks.json",
        }
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


_jti = itertools.count()


def mint(
    keys: Keys,
    sub: str = "alice",
    *,
    lifetime_s: int = 3600,
    iss: str = ISSUER,
    key: Any = None,
    alg: str = "RS256",
    kid: str = "k1",
    aud: str = AUDIENCE,
    **extra: Any,
) -> str:
    now = int(time.time())
    claims = {
        "iss": iss,
        "sub": sub,
        "aud": aud,
        "iat": now,
        "exp": now + lifetime_s,
        "jti": f"t{next(_jti)}",
        "email": f"{sub}@example.com",
        "name": sub.title(),
        "email_verified": True,
        **extra,
    }
    return jwt.encode(claims, key if key is not None else keys.good, algorithm=alg, headers={"kid": kid})


# --- the server -------------------------------------------------------------------------


@dataclass
class Backend:
    url: str
    data_dir: Path
    log: Path

    def admin_key(self) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "convection", "admin-key", "--functions", str(APP), "--data", str(self.data_dir)],
            check=True, capture_output=True, text=True, timeout=60,
        )
        return out.stdout.strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(
        good=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        attacker=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        oidc=ed25519.Ed25519PrivateKey.generate(),
    )


@pytest.fixture(scope="module")
def key_server(keys: Keys) -> Iterator[KeyServer]:
    server = KeyServer(keys)
    yield server
    server.close()


@pytest.fixture(scope="module")
def auth_backend(key_server: KeyServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    data = tmp_path_factory.mktemp("auth-e2e-data")
    port = _free_port()
    env = dict(
        os.environ,
        E2E_AUTH_JWKS_URL=key_server.url + "/jwks.json",
        E2E_AUTH_OIDC_DOMAIN=key_server.url,
        CONVECTION_AUTH_CLOCK_LEEWAY_MS="1000",
    )
    log = data / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "convection", "serve", "--functions", str(APP), "--data", str(data), "--port", str(port),
             "--site-port", "0"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"convection serve exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(url + "/version", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"convection serve did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield Backend(url, data, log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- the npm client ---------------------------------------------------------------------


class JsClient:
    """One ``node auth_client.mjs`` process. ``tokens(forceRefreshToken)`` answers each
    fetchToken the client makes; every event is kept in ``events``."""

    def __init__(self, proc: asyncio.subprocess.Process, tokens: Callable[[bool], str | None]) -> None:
        self.proc = proc
        self.tokens = tokens
        self.events: list[dict[str, Any]] = []
        self.stderr = bytearray()
        self._changed = asyncio.Event()
        self._ids = itertools.count()
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._read_stderr())]

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            event = json.loads(line)
            self.events.append(event)
            if event["type"] == "fetchToken":
                await self.send({"cmd": "token", "token": self.tokens(event["forceRefreshToken"])})
            self._changed.set()
        self._changed.set()

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.stderr += line

    async def send(self, command: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        await self.proc.stdin.drain()

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], after: int = 0) -> dict[str, Any]:
        """The first event (from index ``after``) matching ``predicate``, waiting for it."""
        try:
            async with asyncio.timeout(TIMEOUT_S):
                while True:
                    for event in self.events[after:]:
                        if predicate(event):
                            return event
                    if self.proc.returncode is not None:
                        raise AssertionError(f"node exited: {self.events}\n{self.stderr.decode()}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"no such event after {TIMEOUT_S} s: {self.events}") from None

    async def call(self, kind: str, path: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        ident = next(self._ids)
        await self.send({"cmd": kind, "id": ident, "path": path, "args": args or {}})
        return await self.wait_for(lambda e: e["type"] == "result" and e["id"] == ident)

    def updates(self) -> list[Any]:
        return [e["value"] for e in self.events if e["type"] == "update"]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    async def close(self) -> None:
        if self.proc.returncode is None:
            try:
                await self.send({"cmd": "close"})
                async with asyncio.timeout(10):
                    await self.proc.wait()
            except (TimeoutError, ConnectionError):
                self.proc.kill()
                await self.proc.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@pytest.fixture
async def js(auth_backend: Backend) -> AsyncIterator[Callable[..., Any]]:
    clients: list[JsClient] = []

    async def start(tokens: Callable[[bool], str | None], **options: Any) -> JsClient:
        proc = await asyncio.create_subprocess_exec(
            "node", str(JS / "auth_client.mjs"), auth_backend.url, json.dumps(options),
            cwd=str(JS), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        client = JsClient(proc, tokens)
        clients.append(client)
        await client.wait_for(lambda e: e["type"] == "ready")
        return client

    yield start
    for client in clients:
        await client.close()


def is_update(sub: str | None = None, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    def check(event: dict[str, Any]) -> bool:
        if event["type"] != "update":
            return False
        value = event["value"]
        if sub is None:
            return value is None
        return isinstance(value, dict) and value.get("subject") == sub and all(
            value.get(k) == v for k, v in fields.items()
        )

    return check


def auth_change(value: bool) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["type"] == "authChange" and e["isAuthenticated"] is value


# --- tests: npm client ------------------------------------------------------------------


@needs_node
async def test_authenticated_query_sees_the_identity(js: Any, keys: Keys) -> None:
    client = await js(lambda force: mint(keys, "alice", org="acme"))
    await client.send({"cmd": "setAuth"})
    await client.send({"cmd": "subscribe", "path": "auth:whoami"})
    await client.wait_for(auth_change(True))
    event = await client.wait_for(is_update("alice"))
    assert event["value"] == {
        "tokenIdentifier": f"{ISSUER}|alice",
        "subject": "alice",
        "issuer": ISSUER,
        "email": "alice@example.com",
        "name": "Alice",
        "emailVerified": True,
        "org": "acme",
        "gen": None,
    }
    result = await client.call("mutation", "auth:whoami_mutation")
    assert result["value"]["tokenIdentifier"] == f"{ISSUER}|alice"
    assert not client.of_type("updateError")
    assert all(u is None or u["subject"] == "alice" for u in client.updates())


@needs_node
async def test_short_lived_tokens_are_refreshed_before_they_expire(js: Any, keys: Keys) -> None:
    generations = itertools.count(1)

    def tokens(force: bool) -> str:
        return mint(keys, "bob", lifetime_s=6, gen=next(generations))

    # Refetch 3 s before exp: a 6 s token is replaced about 3 s after it was confirmed.
    client = await js(tokens, authRefreshTokenLeewaySeconds=3)
    await client.send({"cmd": "setAuth"})
    await client.send({"cmd": "subscribe", "path": "auth:whoami"})
    await client.wait_for(auth_change(True))
    await client.wait_for(is_update("bob", gen=2))  # the immediate forced refetch
    await client.wait_for(is_update("bob", gen=3))  # the scheduled refresh, before exp
    await client.wait_for(is_update("bob", gen=4))
    assert not [e for e in client.events if e["type"] == "authChange" and not e["isAuthenticated"]]
    assert not client.of_type("updateError")
    assert all(u is not None and u["subject"] == "bob" for u in client.updates())


@needs_node
async def test_expired_token_gets_auth_error_then_recovers_with_a_fresh_one(
    js: Any, keys: Keys, auth_backend: Backend
) -> None:
    now = int(time.time())
    expired = mint(keys, "stale", iat=now - 7200, exp=now - 3600)
    # The server says why over HTTP too.
    response = httpx.post(
        auth_backend.url + "/api/query",
        json={"path": "auth:whoami", "args": {}},
        headers={"Authorization": f"Bearer {expired}"},
    )
    assert response.status_code == 401 and response.json()["code"] == "TokenExpired"

    handed: list[bool] = []

    def tokens(force: bool) -> str:
        handed.append(force)
        return expired if len(handed) == 1 else mint(keys, "carol")

    client = await js(tokens)
    await client.send({"cmd": "setAuth"})
    await client.send({"cmd": "subscribe", "path": "auth:whoami"})
    await client.wait_for(auth_change(True))
    await client.wait_for(is_update("carol"))
    assert handed[:2] == [False, True]
    assert not any(isinstance(u, dict) and u["subject"] == "stale" for u in client.updates())


@needs_node
async def test_token_expiring_on_an_open_socket(js: Any, keys: Keys, auth_backend: Backend) -> None:
    # A 2 s token is too short for the client to schedule a refresh; it keeps using it until
    # the server's next Transition says AuthError (authUpdateAttempted false), then fetches
    # a new token and reconnects with it.
    short = mint(keys, "dave", lifetime_s=2)
    handed: list[bool] = []

    def tokens(force: bool) -> str:
        handed.append(force)
        return short if len(handed) <= 2 else mint(keys, "dave", gen=2)

    client = await js(tokens)
    await client.send({"cmd": "setAuth"})
    await client.send({"cmd": "subscribe", "path": "auth:whoami"})
    await client.wait_for(auth_change(True))
    await client.wait_for(is_update("dave", gen=None))
    admin = {"Authorization": f"Convex {auth_backend.admin_key()}"}
    async with httpx.AsyncClient(base_url=auth_backend.url, headers=admin) as http:
        deadline = time.monotonic() + TIMEOUT_S
        while len(handed) < 3:  # each write reruns whoami: a Transition under the identity
            assert time.monotonic() < deadline, client.events
            response = await http.post("/api/mutation", json={"path": "auth:touch", "args": {}})
            assert response.status_code == 200
            try:
                async with asyncio.timeout(0.5):
                    await client.wait_for(lambda e: e["type"] == "fetchToken" and len(handed) >= 3)
            except TimeoutError:
                pass
    assert handed[2] is True
    await client.wait_for(is_update("dave", gen=2))
    assert not [e for e in client.events if e["type"] == "authChange" and not e["isAuthenticated"]]


@needs_node
@pytest.mark.parametrize("bad", ["wrong_issuer", "bad_signature", "wrong_audience"])
async def test_rejected_tokens_report_unauthenticated(js: Any, keys: Keys, bad: str) -> None:
    def tokens(force: bool) -> str:
        if bad == "wrong_issuer":
            return mint(keys, "mallory", iss="https://evil.example.com")
        if bad == "wrong_audience":
            return mint(keys, "mallory", aud="someone-else")
        return mint(keys, "mallory", key=keys.attacker)

    client = await js(tokens)
    await client.send({"cmd": "setAuth"})
    await client.send({"cmd": "subscribe", "path": "auth:whoami"})
    await client.wait_for(auth_change(False))
    await client.wait_for(is_update(None))  # the client carries on unauthenticated
    assert not any(isinstance(u, dict) for u in client.updates())
    assert not [e for e in client.events if e["type"] == "authChange" and e["isAuthenticated"]]


@needs_node
async def test_admin_acting_as_a_user_over_the_socket(js: Any, auth_backend: Backend) -> None:
    client = await js(lambda force: None)
    identity = {"subject": "support-7", "issuer": "https://idp.example.com", "email": "s7@example.com"}
    await client.send({"cmd": "setAdminAuth", "key": auth_backend.admin_key(), "identity": identity})
    await client.send({"cmd": "subscribe", "path": "auth:whoami"})
    event = await client.wait_for(is_update("support-7"))
    assert event["value"]["tokenIdentifier"] == "https://idp.example.com|support-7"
    assert event["value"]["email"] == "s7@example.com"


# --- tests: PyPI client and HTTP --------------------------------------------------------


def test_python_client_set_auth(auth_backend: Backend, keys: Keys) -> None:
    from convex import ConvexClient

    token = mint(keys, "erin", org="python")
    # The PyPI client blocks while holding the GIL, so the loopback JWKS server (a thread of
    # this process) could not answer the server's key fetch during client.query(): warm the
    # server's JWKS cache over HTTP first (httpx releases the GIL while it waits).
    warm = httpx.post(
        f"{auth_backend.url}/api/query",
        json={"path": "auth:whoami", "args": {}, "format": "json"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT_S,
    )
    assert warm.status_code == 200, warm.text
    client = ConvexClient(auth_backend.url)
    assert client.query("auth:whoami") is None
    client.set_auth(token)
    identity = client.query("auth:whoami")
    assert identity["tokenIdentifier"] == f"{ISSUER}|erin"
    assert identity["email"] == "erin@example.com" and identity["org"] == "python"
    assert client.mutation("auth:whoami_mutation")["subject"] == "erin"
    client.clear_auth()
    assert client.query("auth:whoami") is None


def test_oidc_provider_over_http(auth_backend: Backend, key_server: KeyServer, keys: Keys) -> None:
    token = mint(keys, "frank", iss=key_server.url, aud="convex", key=keys.oidc, alg="EdDSA", kid="o1")
    response = httpx.post(
        auth_backend.url + "/api/query",
        json={"path": "auth:whoami", "args": {}, "format": "json"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["value"]["tokenIdentifier"] == f"{key_server.url}|frank"
    assert key_server.hits["/.well-known/openid-configuration"] >= 1


def test_http_auth_errors_and_admin_keys(auth_backend: Backend, keys: Keys) -> None:
    def call(path: str, auth: str | None) -> httpx.Response:
        headers = {"Authorization": auth} if auth is not None else {}
        return httpx.post(
            auth_backend.url + "/api/function", json={"path": path, "args": {}, "format": "json"}, headers=headers
        )

    assert call("auth:whoami", f"Bearer {mint(keys, 'gina')}").json()["value"]["subject"] == "gina"
    for token, code in [
        (mint(keys, "x", iss="https://evil.example.com"), "NoAuthProvider"),
        (mint(keys, "x", key=keys.attacker), "InvalidAuthHeader"),
        ("not-a-jwt", "InvalidAuthHeader"),
    ]:
        response = call("auth:whoami", f"Bearer {token}")
        assert response.status_code == 401 and response.json()["code"] == code
    key = auth_backend.admin_key()
    assert call("auth:internal_whoami", f"Convex {key}").json() == {"status": "success", "value": None}
    assert call("auth:internal_whoami", None).json()["status"] == "error"
    acting = base64.b64encode(json.dumps({"subject": "h", "issuer": "https://idp.example.com"}).encode()).decode()
    value = call("auth:internal_whoami", f"Convex {key}:{acting}").json()["value"]
    assert value["tokenIdentifier"] == "https://idp.example.com|h"
    response = call("auth:whoami", f"Convex {key}x")
    assert response.status_code == 401 and response.json()["code"] == "BadAdminKey"
