"""TokenVerifier: provider selection, pinned algorithms, time claims, the identity mapping and
the JWKS cache, against keys made here and a loopback JWKS / OIDC discovery server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from convection.auth.errors import AuthError
from convection.auth.jwks import JwksCache
from convection.auth.verifier import TokenVerifier

ISSUER = "https://auth.example.com"


def custom(jwks: str, alg: str = "RS256", app_id: str | None = "my-app", issuer: str = ISSUER) -> dict[str, Any]:
    provider: dict[str, Any] = {"type": "customJwt", "issuer": issuer, "jwks": jwks, "algorithm": alg}
    if app_id is not None:
        provider["applicationID"] = app_id
    return provider


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), b64(signature)])


async def rejected(verifier: TokenVerifier, token: str) -> AuthError:
    with pytest.raises(AuthError) as info:
        await verifier.verify(token)
    return info.value


@pytest.fixture
def rs256(kit: Any) -> TokenVerifier:
    url = kit.server.set("/jwks.json", {"keys": [kit.public_jwk(kit.keys.rsa, "k1")]})
    return TokenVerifier([custom(url)], jwks=JwksCache())


async def test_valid_token_maps_standard_claims_and_keeps_custom_ones(kit: Any, rs256: TokenVerifier) -> None:
    token = kit.sign(
        kit.claims(
            ISSUER,
            aud=["other", "my-app"],
            jti="abc",
            nbf=int(time.time()) - 10,
            name="Ada Lovelace",
            given_name="Ada",
            family_name="Lovelace",
            nickname="ada",
            preferred_username="ada.l",
            profile="https://example.com/ada",
            picture="https://example.com/ada.png",
            website="https://ada.example.com",
            email="ada@example.com",
            email_verified=True,
            gender="female",
            birthdate="1815-12-10",
            zoneinfo="Europe/London",
            locale="en-GB",
            phone_number="+44 20 0000 0000",
            phone_number_verified=False,
            address={"formatted": "12 St James's Square, London"},
            updated_at=1_700_000_000,
            fva=[1, 2],
            azp="https://app.example.com",
            org_role="admin",
            permissions=["read", "write"],
            nested={"a": 1, "b": [True, None]},
        ),
        kit.keys.rsa,
        "RS256",
    )
    identity = await rs256.verify(token)
    assert identity == {
        "tokenIdentifier": f"{ISSUER}|user-1",
        "issuer": ISSUER,
        "subject": "user-1",
        "name": "Ada Lovelace",
        "givenName": "Ada",
        "familyName": "Lovelace",
        "nickname": "ada",
        "preferredUsername": "ada.l",
        "profileUrl": "https://example.com/ada",
        "pictureUrl": "https://example.com/ada.png",
        "websiteUrl": "https://ada.example.com",
        "email": "ada@example.com",
        "emailVerified": True,
        "gender": "female",
        "birthday": "1815-12-10",
        "timezone": "Europe/London",
        "language": "en-GB",
        "phoneNumber": "+44 20 0000 0000",
        "phoneNumberVerified": False,
        "address": "12 St James's Square, London",
        "updatedAt": "2023-11-14T22:13:20+00:00",
        "org_role": "admin",
        "permissions": ["read", "write"],
        "nested": {"a": 1, "b": [True, None]},
    }


async def test_minimal_token_and_string_audience(kit: Any, rs256: TokenVerifier) -> None:
    token = kit.sign(kit.claims(ISSUER, aud="my-app", iat=None), kit.keys.rsa, "RS256")
    assert await rs256.verify(token) == {
        "tokenIdentifier": f"{ISSUER}|user-1",
        "issuer": ISSUER,
        "subject": "user-1",
    }


async def test_es256_and_eddsa_custom_providers(kit: Any) -> None:
    ec_url = kit.server.set("/ec.json", {"keys": [kit.public_jwk(kit.keys.ec, "e1")]})
    ed_url = kit.server.set("/ed.json", {"keys": [kit.public_jwk(kit.keys.ed, "d1")]})
    verifier = TokenVerifier(
        [custom(ec_url, "ES256", issuer="https://ec.example.com"),
         custom(ed_url, "EdDSA", app_id=None, issuer="https://ed.example.com")],
        jwks=JwksCache(),
    )
    ec_token = kit.sign(kit.claims("https://ec.example.com", aud="my-app"), kit.keys.ec, "ES256", "e1")
    assert (await verifier.verify(ec_token))["issuer"] == "https://ec.example.com"
    # No applicationID configured: any audience (or none) is accepted.
    ed_token = kit.sign(kit.claims("https://ed.example.com", aud="whatever"), kit.keys.ed, "EdDSA", "d1")
    assert (await verifier.verify(ed_token))["tokenIdentifier"] == "https://ed.example.com|user-1"
    # An ES256 provider does not take an EdDSA token, even one whose key it cannot have.
    wrong = kit.sign(kit.claims("https://ec.example.com", aud="my-app"), kit.keys.ed, "EdDSA", "e1")
    assert (await rejected(verifier, wrong)).code == "InvalidAuthHeader"


async def test_oidc_discovery_rs256_and_eddsa(kit: Any) -> None:
    kit.server.set_oidc(
        {"keys": [kit.public_jwk(kit.keys.rsa, "r1"), kit.public_jwk(kit.keys.ed, "d1")]}
    )
    domain = kit.server.url + "/"  # trailing slash tolerated
    verifier = TokenVerifier([{"domain": domain, "applicationID": "convex"}], jwks=JwksCache())
    for key, alg, kid in [(kit.keys.rsa, "RS256", "r1"), (kit.keys.ed, "EdDSA", "d1")]:
        token = kit.sign(kit.claims(kit.server.url, aud="convex", email="a@b.c"), key, alg, kid)
        identity = await verifier.verify(token)
        assert identity["tokenIdentifier"] == f"{kit.server.url}|user-1"
        assert identity["email"] == "a@b.c"
    # OIDC accepts only RS256 and EdDSA.
    kit.server.set_oidc({"keys": [kit.public_jwk(kit.keys.ec, "e1")]})
    verifier.jwks.clear()
    token = kit.sign(kit.claims(kit.server.url, aud="convex"), kit.keys.ec, "ES256", "e1")
    assert (await rejected(verifier, token)).code == "InvalidAuthHeader"
    assert kit.server.hits["/.well-known/openid-configuration"] == 1  # rejected before fetching


async def test_oidc_discovery_issuer_must_be_the_domain(kit: Any) -> None:
    kit.server.set_oidc({"keys": [kit.public_jwk(kit.keys.rsa, "r1")]}, issuer="https://elsewhere.example.com")
    verifier = TokenVerifier([{"domain": kit.server.url, "applicationID": "convex"}], jwks=JwksCache())
    token = kit.sign(kit.claims(kit.server.url, aud="convex"), kit.keys.rsa, "RS256", "r1")
    error = await rejected(verifier, token)
    assert error.code == "InvalidAuthHeader" and "elsewhere" in error.message


async def test_wrong_issuer(kit: Any, rs256: TokenVerifier) -> None:
    token = kit.sign(kit.claims("https://evil.example.com", aud="my-app"), kit.keys.rsa, "RS256")
    error = await rejected(rs256, token)
    assert error.code == "NoAuthProvider" and "evil.example.com" in error.message


async def test_issuer_normalisation(kit: Any) -> None:
    url = kit.server.set("/jwks.json", {"keys": [kit.public_jwk(kit.keys.rsa, "k1")]})
    verifier = TokenVerifier([custom(url, issuer="auth.example.com/")], jwks=JwksCache())
    for iss in ["https://auth.example.com", "https://auth.example.com/", "auth.example.com"]:
        token = kit.sign(kit.claims(iss, aud="my-app"), kit.keys.rsa, "RS256")
        identity = await verifier.verify(token)
        # A trailing "/" is not part of the issuer: the same user keeps one identity.
        expected = iss.rstrip("/")
        assert identity["issuer"] == expected and identity["tokenIdentifier"] == f"{expected}|user-1"
    with_slash = await verifier.verify(kit.sign(kit.claims("https://auth.example.com/", aud="my-app"), kit.keys.rsa, "RS256"))
    without = await verifier.verify(kit.sign(kit.claims("https://auth.example.com", aud="my-app"), kit.keys.rsa, "RS256"))
    assert with_slash["tokenIdentifier"] == without["tokenIdentifier"] == "https://auth.example.com|user-1"


async def test_wrong_audience(kit: Any, rs256: TokenVerifier) -> None:
    for aud in ["other-app", ["a", "b"], None]:
        token = kit.sign(kit.claims(ISSUER, aud=aud), kit.keys.rsa, "RS256")
        error = await rejected(rs256, token)
        assert error.code == "InvalidAuthHeader" and "my-app" in error.message


async def test_bad_signature(kit: Any, rs256: TokenVerifier) -> None:
    forged = kit.sign(kit.claims(ISSUER, aud="my-app"), kit.keys.rsa2, "RS256", "k1")
    error = await rejected(rs256, forged)
    assert error.code == "InvalidAuthHeader" and "signature" in error.message
    good = kit.sign(kit.claims(ISSUER, aud="my-app"), kit.keys.rsa, "RS256")
    head, payload, sig = good.split(".")
    tampered = json.loads(base64.urlsafe_b64decode(payload + "=="))
    tampered["sub"] = "admin"
    bad = ".".join([head, b64(json.dumps(tampered).encode()), sig])
    assert (await rejected(rs256, bad)).code == "InvalidAuthHeader"


async def test_alg_none_is_rejected(kit: Any, rs256: TokenVerifier) -> None:
    for alg in ["none", "None", "NONE"]:
        token = handmade({"alg": alg, "typ": "JWT", "kid": "k1"}, kit.claims(ISSUER, aud="my-app"))
        assert (await rejected(rs256, token)).code == "InvalidAuthHeader"
    no_alg = handmade({"typ": "JWT", "kid": "k1"}, kit.claims(ISSUER, aud="my-app"))
    assert (await rejected(rs256, no_alg)).code == "InvalidAuthHeader"


async def test_hs256_signed_with_the_public_key_is_rejected(kit: Any) -> None:
    pem = kit.keys.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jwk = kit.public_jwk(kit.keys.rsa, "k1")
    url = kit.server.set("/jwks.json", {"keys": [jwk]})
    verifier = TokenVerifier([custom(url)], jwks=JwksCache())
    for secret in [pem, json.dumps(jwk).encode(), jwk["n"].encode()]:
        for alg, digest in [("HS256", hashlib.sha256), ("HS512", hashlib.sha512)]:
            header = b64(json.dumps({"alg": alg, "typ": "JWT", "kid": "k1"}).encode())
            payload = b64(json.dumps(kit.claims(ISSUER, aud="my-app")).encode())
            signature = hmac.new(secret, f"{header}.{payload}".encode(), digest).digest()
            token = f"{header}.{payload}.{b64(signature)}"
            assert (await rejected(verifier, token)).code == "InvalidAuthHeader"


async def test_symmetric_keys_in_the_jwks_are_never_used(kit: Any) -> None:
    secret = b"shared-secret-shared-secret-shared"
    url = kit.server.set("/jwks.json", {"keys": [{"kty": "oct", "kid": "k1", "k": b64(secret)}]})
    verifier = TokenVerifier([custom(url)], jwks=JwksCache())
    header = b64(json.dumps({"alg": "RS256", "kid": "k1"}).encode())
    payload = b64(json.dumps(kit.claims(ISSUER, aud="my-app")).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert (await rejected(verifier, f"{header}.{payload}.{b64(signature)}")).code == "InvalidAuthHeader"


async def test_expired_and_leeway(kit: Any, rs256: TokenVerifier) -> None:
    now = int(time.time())
    expired = kit.sign(kit.claims(ISSUER, aud="my-app", iat=now - 100, exp=now - 60), kit.keys.rsa, "RS256")
    error = await rejected(rs256, expired)
    assert error.code == "TokenExpired"
    within_leeway = kit.sign(kit.claims(ISSUER, aud="my-app", exp=now - 2), kit.keys.rsa, "RS256")
    assert (await rs256.verify(within_leeway))["subject"] == "user-1"


async def test_not_before(kit: Any, rs256: TokenVerifier) -> None:
    now = int(time.time())
    future = kit.sign(kit.claims(ISSUER, aud="my-app", nbf=now + 120), kit.keys.rsa, "RS256")
    error = await rejected(rs256, future)
    assert error.code == "InvalidAuthHeader" and "not valid yet" in error.message
    soon = kit.sign(kit.claims(ISSUER, aud="my-app", nbf=now + 2), kit.keys.rsa, "RS256")
    assert (await rs256.verify(soon))["subject"] == "user-1"


async def test_missing_or_bad_claims(kit: Any, rs256: TokenVerifier) -> None:
    cases = [
        kit.claims(ISSUER, aud="my-app", exp=None),
        kit.claims(ISSUER, aud="my-app", exp="tomorrow"),
        kit.claims(ISSUER, aud="my-app", exp=True),
        kit.claims(ISSUER, aud="my-app", sub=None),
        kit.claims(ISSUER, aud="my-app", iss=None),
    ]
    for claims in cases:
        token = kit.sign(claims, kit.keys.rsa, "RS256")
        assert (await rejected(rs256, token)).code == "InvalidAuthHeader", claims
    for garbage in ["", "abc", "a.b.c", "a.b", b64(b"[]") + "." + b64(b"{}") + ".x"]:
        assert (await rejected(rs256, garbage)).code == "InvalidAuthHeader"
    infinite = handmade({"alg": "RS256", "kid": "k1"}, {"iss": ISSUER, "sub": "u", "aud": "my-app"})
    infinite = infinite.replace(infinite.split(".")[1], b64(b'{"iss": "%s", "sub": "u", "aud": "my-app", "exp": Infinity}' % ISSUER.encode()))
    assert (await rejected(rs256, infinite)).code == "InvalidAuthHeader"


async def test_no_providers(kit: Any) -> None:
    verifier = TokenVerifier([], jwks=JwksCache())
    token = kit.sign(kit.claims(ISSUER, aud="my-app"), kit.keys.rsa, "RS256")
    assert (await rejected(verifier, token)).code == "NoAuthProvider"


async def test_key_rotation_refetches_the_jwks_once(kit: Any) -> None:
    clock = [1000.0]
    url = kit.server.set("/jwks.json", {"keys": [kit.public_jwk(kit.keys.rsa, "old")]})
    cache = JwksCache(min_refetch_interval_s=10, monotonic=lambda: clock[0])
    verifier = TokenVerifier([custom(url)], jwks=cache)
    old = kit.sign(kit.claims(ISSUER, aud="my-app"), kit.keys.rsa, "RS256", "old")
    assert (await verifier.verify(old))["subject"] == "user-1"
    assert kit.server.hits["/jwks.json"] == 1
    # The provider rotates: a new key id, published after our fetch.
    kit.server.set("/jwks.json", {"keys": [kit.public_jwk(kit.keys.rsa, "old"), kit.public_jwk(kit.keys.rsa2, "new")]})
    clock[0] += 11
    new = kit.sign(kit.claims(ISSUER, aud="my-app", sub="user-2"), kit.keys.rsa2, "RS256", "new")
    assert (await verifier.verify(new))["subject"] == "user-2"
    assert kit.server.hits["/jwks.json"] == 2
    # Unknown key ids do not refetch more than once per interval.
    for i in range(5):
        bogus = kit.sign(kit.claims(ISSUER, aud="my-app", sub=f"x{i}"), kit.keys.rsa2, "RS256", f"bogus{i}")
        error = await rejected(verifier, bogus)
        assert error.code == "InvalidAuthHeader" and "bogus" in error.message
    assert kit.server.hits["/jwks.json"] == 2
    clock[0] += 11
    await rejected(verifier, kit.sign(kit.claims(ISSUER, aud="my-app"), kit.keys.rsa2, "RS256", "bogus"))
    assert kit.server.hits["/jwks.json"] == 3
    # Known keys are served from the cache until the TTL runs out.
    for _ in range(3):
        await verifier.verify(kit.sign(kit.claims(ISSUER, aud="my-app", sub="y"), kit.keys.rsa, "RS256", "old"))
    assert kit.server.hits["/jwks.json"] == 3
    clock[0] += cache.ttl_s + 1
    await verifier.verify(kit.sign(kit.claims(ISSUER, aud="my-app", sub="z"), kit.keys.rsa, "RS256", "old"))
    assert kit.server.hits["/jwks.json"] == 4


async def test_token_without_kid_tries_matching_keys(kit: Any) -> None:
    url = kit.server.set(
        "/jwks.json",
        {"keys": [kit.public_jwk(kit.keys.rsa2, "a"), kit.public_jwk(kit.keys.ec, "b"), kit.public_jwk(kit.keys.rsa, "c")]},
    )
    verifier = TokenVerifier([custom(url)], jwks=JwksCache())
    token = kit.sign(kit.claims(ISSUER, aud="my-app"), kit.keys.rsa, "RS256", kid=None)
    assert (await verifier.verify(token))["subject"] == "user-1"


async def test_jwks_fetch_failures(kit: Any) -> None:
    clock = [0.0]
    url = kit.server.set("/jwks.json", {"error": "down"}, status=503)
    cache = JwksCache(min_refetch_interval_s=10, monotonic=lambda: clock[0])
    verifier = TokenVerifier([custom(url)], jwks=cache)
    token = kit.sign(kit.claims(ISSUER, aud="my-app"), kit.keys.rsa, "RS256")
    error = await rejected(verifier, token)
    assert error.code == "InvalidAuthHeader" and "HTTP 503" in error.message
    await rejected(verifier, token)  # the failure is remembered: no second request
    assert kit.server.hits["/jwks.json"] == 1
    clock[0] += 11
    kit.server.set("/jwks.json", {"keys": [kit.public_jwk(kit.keys.rsa, "k1")]})
    assert (await verifier.verify(token))["subject"] == "user-1"
    # Later outages keep the keys fetched before.
    kit.server.set("/jwks.json", {"error": "down"}, status=500)
    clock[0] += cache.ttl_s + 1
    other = kit.sign(kit.claims(ISSUER, aud="my-app", sub="user-9"), kit.keys.rsa, "RS256")
    assert (await verifier.verify(other))["subject"] == "user-9"
    not_jwks = kit.server.set("/nope.json", {"hello": 1})
    verifier = TokenVerifier([custom(not_jwks)], jwks=JwksCache())
    assert "not a JWKS" in (await rejected(verifier, token)).message


async def test_data_url_jwks(kit: Any) -> None:
    document = json.dumps({"keys": [kit.public_jwk(kit.keys.ec, "e1")]})
    encoded = base64.b64encode(document.encode()).decode()
    for url in [
        f"data:application/json;base64,{encoded}",
        "data:text/plain;charset=utf-8;base64," + base64.urlsafe_b64encode(document.encode()).decode().rstrip("="),
        "data:application/json," + document.replace(" ", "%20"),
    ]:
        verifier = TokenVerifier([custom(url, "ES256")], jwks=JwksCache())
        token = kit.sign(kit.claims(ISSUER, aud="my-app"), kit.keys.ec, "ES256", "e1")
        assert (await verifier.verify(token))["subject"] == "user-1"
        forged = kit.sign(kit.claims(ISSUER, aud="my-app"), kit.keys.rsa, "RS256", "e1")
        assert (await rejected(verifier, forged)).code == "InvalidAuthHeader"
    assert sum(kit.server.hits.values()) == 0


async def test_identity_cache_respects_exp(kit: Any) -> None:
    now = [time.time()]
    url = kit.server.set("/jwks.json", {"keys": [kit.public_jwk(kit.keys.rsa, "k1")]})
    verifier = TokenVerifier([custom(url)], jwks=JwksCache(), now=lambda: now[0], cache_ttl_s=30)
    token = kit.sign(kit.claims(ISSUER, aud="my-app", exp=int(now[0]) + 20), kit.keys.rsa, "RS256")
    first = await verifier.verify(token)
    kit.server.set("/jwks.json", {"keys": []})
    verifier.jwks.clear()
    assert await verifier.verify(token) == first  # from the identity cache: no key needed
    verifier.check_unexpired(token)
    now[0] += 26  # past exp + 5 s leeway
    with pytest.raises(AuthError) as info:
        verifier.check_unexpired(token)
    assert info.value.code == "TokenExpired"
    assert (await rejected(verifier, token)).code == "TokenExpired"
    # check_unexpired works for tokens this verifier never saw (a verifier rebuilt by a push).
    fresh = TokenVerifier([custom(url)], jwks=JwksCache(), now=lambda: now[0])
    with pytest.raises(AuthError):
        fresh.check_unexpired(token)
    fresh.check_unexpired("not a token")  # nothing to say: verification reports it


async def test_jwk_alg_must_fit_the_pinned_algorithm(kit: Any) -> None:
    ed = kit.public_jwk(kit.keys.ed, "d1", alg="Ed25519")  # RFC 9864 name for EdDSA on Ed25519
    rs = kit.public_jwk(kit.keys.rsa, "r1", alg="RS512")  # a key meant for another algorithm
    url = kit.server.set("/jwks.json", {"keys": [ed, rs]})
    ed_verifier = TokenVerifier([custom(url, "EdDSA")], jwks=JwksCache())
    token = kit.sign(kit.claims(ISSUER, aud="my-app"), kit.keys.ed, "EdDSA", "d1")
    assert (await ed_verifier.verify(token))["subject"] == "user-1"
    rs_verifier = TokenVerifier([custom(url, "RS256")], jwks=JwksCache())
    token = kit.sign(kit.claims(ISSUER, aud="my-app"), kit.keys.rsa, "RS256", "r1")
    error = await rejected(rs_verifier, token)
    assert error.code == "InvalidAuthHeader" and "no key with kid 'r1'" in error.message
