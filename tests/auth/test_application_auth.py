"""Auth through the application facade: user tokens against auth_config.py, admin keys, acting
as a user, expiry while a socket keeps running, and bad configs on push."""

from __future__ import annotations

import asyncio
import base64
import json
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from convection.application.app import Application, derive_admin_key
from convection.application.interface import AuthFailure
from convection.auth.errors import AuthConfigError
from convection.clock import ManualClock
from convection.database import Database
from convection.functions.identity import ANONYMOUS
from convection.functions.loader import load_app
from convection.persistence.sqlite import SqlitePersistence
from convection.server.compose import build_application
from convection.sync.worker import SyncWorker

ISSUER = "https://auth.example.com"

FNS = '''
from convection import mutation, query

@query
def whoami(ctx):
    ctx.db.query("touches").collect()
    ident = ctx.auth.get_user_identity()
    if ident is None:
        return None
    return {"tokenIdentifier": ident.token_identifier, "email": ident.email,
            "name": ident.name, "role": ident["role"] if "role" in ident else None,
            "all": ident.to_dict()}

@mutation
def touch(ctx):
    ctx.db.insert("touches", {"at": ctx.now})
'''


def auth_config(jwks_url: str) -> str:
    return textwrap.dedent(f'''
        providers = [
            {{"type": "customJwt", "issuer": "{ISSUER}", "jwks": "{jwks_url}",
              "algorithm": "ES256", "applicationID": "my-app"}},
        ]
    ''')


@pytest.fixture
def data_url(kit: Any) -> str:
    document = json.dumps({"keys": [kit.public_jwk(kit.keys.ec, "e1")]})
    return "data:application/json;base64," + base64.b64encode(document.encode()).decode()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start_ms=time.time() * 1000)


@pytest.fixture
def app(tmp_path: Path, data_url: str, clock: ManualClock) -> Iterator[Application]:
    folder = tmp_path / "convex"
    folder.mkdir()
    (folder / "fns.py").write_text(FNS)
    (folder / "auth_config.py").write_text(auth_config(data_url))
    db = Database(SqlitePersistence(tmp_path / "db.sqlite3"), clock=clock, secret=b"s")
    application = build_application(db, load_app(folder), secret=b"instance-secret")
    yield application
    application.close()
    db.close()


def token_for(kit: Any, clock: ManualClock, **extra: Any) -> str:
    now = int(clock.now_ms() / 1000)
    claims = kit.claims(ISSUER, aud="my-app", iat=now, exp=now + 60, email="ada@example.com", name="Ada", role="admin")
    claims.update(extra)
    return str(kit.sign(claims, kit.keys.ec, "ES256", "e1"))


async def test_user_token_identity_reaches_functions(kit: Any, app: Application, clock: ManualClock) -> None:
    token = token_for(kit, clock)
    identity = await app.authenticate("User", token, None)
    assert identity.kind == "user" and identity.token == token
    assert identity.attributes is not None and identity.attributes["email"] == "ada@example.com"
    out = await app.run_query("fns:whoami", {}, identity)
    assert out.success, out.error_message
    assert out.value["tokenIdentifier"] == f"{ISSUER}|user-1"
    assert out.value["email"] == "ada@example.com" and out.value["name"] == "Ada" and out.value["role"] == "admin"
    assert "exp" not in out.value["all"] and "aud" not in out.value["all"]
    assert (await app.run_query("fns:whoami", {}, ANONYMOUS)).value is None


async def test_refreshed_token_with_changed_claims_is_not_served_stale_results(
    kit: Any, app: Application, clock: ManualClock
) -> None:
    admin = await app.authenticate("User", token_for(kit, clock, role="admin"), None)
    viewer = await app.authenticate("User", token_for(kit, clock, role="viewer", jti="other"), None)
    assert admin.attributes is not None and viewer.attributes is not None
    assert admin.attributes["tokenIdentifier"] == viewer.attributes["tokenIdentifier"]
    assert (await app.run_query("fns:whoami", {}, admin)).value["role"] == "admin"
    assert (await app.run_query("fns:whoami", {}, viewer)).value["role"] == "viewer"
    # The same claims in a new token (new jti/iat/exp) share the cached result.
    clock.advance_ms(1000)
    again = await app.authenticate("User", token_for(kit, clock, role="admin"), None)
    assert again.cache_key == admin.cache_key


async def test_rejected_tokens_become_auth_failures(kit: Any, app: Application, clock: ManualClock) -> None:
    cases = {
        "TokenExpired": token_for(kit, clock, exp=int(clock.now_ms() / 1000) - 60),
        "NoAuthProvider": token_for(kit, clock, iss="https://other.example.com"),
        "InvalidAuthHeader": token_for(kit, clock, aud="someone-else"),
    }
    for code, token in cases.items():
        with pytest.raises(AuthFailure) as info:
            await app.authenticate("User", token, None)
        assert info.value.code == code, info.value.message
    forged = kit.sign(kit.claims(ISSUER, aud="my-app"), kit.keys.rsa, "RS256", "e1")
    with pytest.raises(AuthFailure) as info:
        await app.authenticate("User", forged, None)
    assert info.value.code == "InvalidAuthHeader"


async def test_expired_identity_fails_later_requests(kit: Any, app: Application, clock: ManualClock) -> None:
    identity = await app.authenticate("User", token_for(kit, clock), None)
    assert (await app.run_query("fns:whoami", {}, identity)).success
    clock.advance_ms(66_000)  # past exp (60 s) + 5 s leeway
    for call in (
        lambda: app.run_query("fns:whoami", {}, identity),
        lambda: app.run_mutation("fns:touch", {}, identity),
        lambda: app.run_function("fns:whoami", {}, identity),
        lambda: app.subscribe_query("fns:whoami", {}, identity, None, app.latest_ts()),
    ):
        with pytest.raises(AuthFailure) as info:
            await call()
        assert info.value.code == "TokenExpired"
    assert (await app.run_query("fns:whoami", {}, ANONYMOUS)).success


async def test_admin_key_and_acting_as_a_user(app: Application) -> None:
    assert app.admin_key == derive_admin_key(b"instance-secret")
    admin = await app.authenticate("Admin", app.admin_key, None)
    assert admin.is_admin and admin.attributes is None
    assert (await app.run_query("fns:whoami", {}, admin)).value is None
    with pytest.raises(AuthFailure) as info:
        await app.authenticate("Admin", app.admin_key + "x", None)
    assert info.value.code == "BadAdminKey"
    acting = await app.authenticate("Admin", app.admin_key, {"issuer": "https://idp.test", "subject": "u7", "email": "u7@test"})
    assert acting.is_admin
    out = await app.run_query("fns:whoami", {}, acting)
    assert out.value["tokenIdentifier"] == "https://idp.test|u7" and out.value["email"] == "u7@test"
    explicit = await app.authenticate("Admin", app.admin_key, {"tokenIdentifier": "custom|id", "subject": "s", "issuer": "i"})
    assert (await app.run_query("fns:whoami", {}, explicit)).value["tokenIdentifier"] == "custom|id"
    with pytest.raises(AuthFailure):
        await app.authenticate("Admin", app.admin_key, {"email": "no-subject@test"})
    assert (await app.authenticate("None", None, None)) is ANONYMOUS


async def test_bad_auth_config_on_push_keeps_the_old_code(tmp_path: Path, kit: Any, app: Application, clock: ManualClock) -> None:
    folder = tmp_path / "convex2"
    folder.mkdir()
    (folder / "fns.py").write_text(FNS)
    (folder / "auth_config.py").write_text('providers = [{"domain": "https://x.example.com", "applicationId": "a"}]\n')
    before = app.verifier
    with pytest.raises(AuthConfigError, match="applicationID"):
        app.set_app(load_app(folder))
    assert app.verifier is before
    (folder / "auth_config.py").write_text("providers = []\n")
    app.set_app(load_app(folder))
    with pytest.raises(AuthFailure) as info:
        await app.authenticate("User", token_for(kit, clock), None)
    assert info.value.code == "NoAuthProvider"


def test_bad_auth_config_at_start(tmp_path: Path) -> None:
    folder = tmp_path / "convex"
    folder.mkdir()
    (folder / "fns.py").write_text(FNS)
    (folder / "auth_config.py").write_text(
        'providers = [{"type": "customJwt", "issuer": "https://i", "jwks": "https://i/j", "algorithm": "HS256"}]\n'
    )
    db = Database(SqlitePersistence(tmp_path / "db.sqlite3"), secret=b"s")
    try:
        with pytest.raises(AuthConfigError, match="algorithm"):
            build_application(db, load_app(folder))
    finally:
        db.close()


class Socket:
    """A SyncWorker's outbound side, with a way to wait for a condition on it."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.closed: list[tuple[int, str]] = []
        self._changed = asyncio.Event()

    async def send(self, text: str) -> None:
        self.sent.append(orjson.loads(text))
        self._changed.set()

    async def close(self, code: int, reason: str) -> None:
        self.closed.append((code, reason))
        self._changed.set()

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


async def test_token_expiring_while_the_socket_is_open(kit: Any, app: Application, clock: ManualClock) -> None:
    socket = Socket()
    async with SyncWorker(app, socket.send, socket.close) as worker:
        for message in [
            {"type": "Connect", "sessionId": "5f0c4f4e-0000-4000-8000-000000000000", "connectionCount": 0,
             "lastCloseReason": "InitialConnect", "clientTs": 0},
            {"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": token_for(kit, clock)},
            {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1,
             "modifications": [{"type": "Add", "queryId": 0, "udfPath": "fns:whoami", "args": [{}]}]},
        ]:
            await worker.handle_text(json.dumps(message))

        def answered() -> bool:
            return any(
                m["type"] == "Transition" and m["endVersion"]["identity"] == 1 and m["modifications"]
                for m in socket.sent
            )

        await socket.until(answered)
        first = next(m for m in socket.sent if m["type"] == "Transition" and m["modifications"])
        assert first["modifications"][0]["value"]["email"] == "ada@example.com"
        clock.advance_ms(66_000)
        await app.run_mutation("fns:touch", {}, ANONYMOUS)  # invalidates whoami: a Transition is due
        await socket.until(lambda: bool(socket.closed))
    error = socket.sent[-1]
    assert error["type"] == "AuthError" and error["authUpdateAttempted"] is False
    assert error["baseVersion"] == 1 and "expired" in error["error"]
    assert socket.closed[0][1] == "TokenExpired"
