"""Parsing auth_config.py providers: the accepted shapes and errors that name the bad field."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from convection.auth.errors import AuthConfigError
from convection.auth.providers import (
    CustomJwtProvider,
    OidcProvider,
    normalize_issuer,
    parse_providers,
)

JWKS = {"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "k"}]}


def test_oidc_provider() -> None:
    [p] = parse_providers([{"domain": "https://my-app.clerk.accounts.dev/", "applicationID": "convex"}])
    assert isinstance(p, OidcProvider)
    assert p.domain == p.issuer == "https://my-app.clerk.accounts.dev"
    assert p.application_id == "convex"
    assert p.discovery_url == "https://my-app.clerk.accounts.dev/.well-known/openid-configuration"
    assert p.algorithms == ("RS256", "EdDSA")
    [bare] = parse_providers([{"domain": "dev-123.us.auth0.com", "applicationID": "abc"}])
    assert isinstance(bare, OidcProvider) and bare.domain == "https://dev-123.us.auth0.com"
    [local] = parse_providers([{"domain": "http://127.0.0.1:8080", "applicationID": "x"}])
    assert isinstance(local, OidcProvider) and local.domain == "http://127.0.0.1:8080"


def test_custom_jwt_provider() -> None:
    raw = {
        "type": "customJwt",
        "issuer": "auth.example.com/",
        "jwks": "https://auth.example.com/.well-known/jwks.json",
        "algorithm": "ES256",
    }
    [p] = parse_providers([raw])
    assert isinstance(p, CustomJwtProvider)
    assert p.issuer == "https://auth.example.com" and p.application_id is None
    assert p.algorithms == ("ES256",) and p.inline_jwks is None
    data = "data:application/json;base64," + base64.b64encode(json.dumps(JWKS).encode()).decode()
    [inline] = parse_providers([{**raw, "jwks": data, "applicationID": "app", "algorithm": "EdDSA"}])
    assert isinstance(inline, CustomJwtProvider)
    assert inline.inline_jwks == JWKS and inline.application_id == "app"
    [local] = parse_providers([{**raw, "jwks": "http://localhost:9000/jwks"}])
    assert isinstance(local, CustomJwtProvider)


def test_normalize_issuer() -> None:
    assert normalize_issuer("auth.example.com") == "https://auth.example.com"
    assert normalize_issuer("https://auth.example.com///") == "https://auth.example.com"
    assert normalize_issuer("http://localhost:3000/") == "http://localhost:3000"


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ({"domain": "https://x.example.com"}, ["providers[0]", "'applicationID'", "missing"]),
        ({"domain": "https://x.example.com", "applicationId": "a"}, ["'applicationId'", "did you mean 'applicationID'"]),
        ({"applicationID": "a"}, ["'domain'"]),
        ({"domain": "", "applicationID": "a"}, ["'domain'"]),
        ({"domain": "http://auth.example.com", "applicationID": "a"}, ["'domain'", "https://"]),
        ({"domain": 42, "applicationID": "a"}, ["'domain'", "42"]),
        ({"type": "oidc", "domain": "https://x.example.com", "applicationID": "a"}, ["\"type\"", "customJwt"]),
        ({"type": "customJwt", "issuer": "https://i", "jwks": "https://i/j", "algorithm": "HS256"}, ["\"algorithm\"", "HS256", "RS256"]),
        ({"type": "customJwt", "issuer": "https://i", "jwks": "https://i/j", "algorithm": "none"}, ["\"algorithm\""]),
        ({"type": "customJwt", "issuer": "https://i", "jwks": "https://i/j"}, ["\"algorithm\"", "None"]),
        ({"type": "customJwt", "issuer": "https://i", "algorithm": "RS256"}, ["'jwks'", "missing"]),
        ({"type": "customJwt", "jwks": "https://i/j", "algorithm": "RS256"}, ["'issuer'"]),
        ({"type": "customJwt", "issuer": "https://i", "jwks": "http://evil.example.com/j", "algorithm": "RS256"}, ["'jwks'", "https://"]),
        ({"type": "customJwt", "issuer": "https://i", "jwks": "ftp://i/j", "algorithm": "RS256"}, ["'jwks'"]),
        ({"type": "customJwt", "issuer": "https://i", "jwks": "data:application/json,{oops", "algorithm": "RS256"}, ["\"jwks\"", "data: URL"]),
        ({"type": "customJwt", "issuer": "https://i", "jwks": "data:application/json,{}", "algorithm": "RS256"}, ["not a JWKS"]),
        ({"type": "customJwt", "issuer": "https://i", "jwks": "https://i/j", "algorithm": "RS256", "applicationID": 3}, ["'applicationID'"]),
        ({"type": "customJwt", "issuer": "https://i", "jwks": "https://i/j", "algorithm": "RS256", "audience": "x"}, ["'audience'"]),
        ("https://x.example.com", ["providers[0]", "dict"]),
    ],
)
def test_invalid_providers_name_the_field(raw: Any, names: list[str]) -> None:
    with pytest.raises(AuthConfigError) as info:
        parse_providers([raw])
    assert info.value.code == "InvalidAuthConfig"
    for name in names:
        assert name in info.value.message, (name, info.value.message)


def test_position_is_named_and_list_required() -> None:
    ok = {"domain": "https://x.example.com", "applicationID": "a"}
    with pytest.raises(AuthConfigError, match=r"providers\[2\]"):
        parse_providers([ok, ok, {"domain": "https://y.example.com"}])
    with pytest.raises(AuthConfigError, match="list"):
        parse_providers("https://x.example.com")
    assert parse_providers(None) == [] and parse_providers([]) == []
