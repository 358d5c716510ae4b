"""User JWTs into identities: :class:`TokenVerifier` (SEMANTICS.md §8, PROTOCOL.md §7).

``await TokenVerifier(providers).verify(token)`` returns the identity's attributes, a flat
dict of camelCase fields (``tokenIdentifier``, ``issuer``, ``subject``, the mapped OIDC
standard claims, custom claims verbatim), or raises
:class:`~convection.auth.errors.AuthError` with code ``InvalidAuthHeader``,
``NoAuthProvider`` or ``TokenExpired``.

The rules, in the order they are checked:

1. The token is a compact JWS (three base64url parts, JSON header and payload object) whose
   header ``alg`` is not ``none`` nor an HMAC algorithm.
2. ``iss`` is a string. Providers are those whose issuer equals it after normalisation
   (``https://`` added when there is no scheme, trailing ``/`` ignored): none gives
   ``NoAuthProvider``. Of those, the ones with an applicationID keep only if ``aud`` (a string
   or a list) contains it; none left gives ``InvalidAuthHeader``.
3. ``exp`` is a number (missing: ``InvalidAuthHeader``) and ``now <= exp + leeway``
   (else ``TokenExpired``); ``nbf``, when present, ``<= now + leeway``. Leeway: 5 s
   (knob ``AUTH_CLOCK_LEEWAY_MS``). ``sub`` is a string.
4. The header ``alg`` is the provider's pinned algorithm (custom JWT: its ``algorithm``; OIDC:
   RS256 or EdDSA), and the signature verifies with PyJWT under exactly that algorithm with a
   key of the provider's JWKS of the matching type (RSA / EC P-256 / OKP Ed25519), chosen by
   the header ``kid``. A ``kid`` missing from the cached JWKS refetches it (rate-limited).
   Symmetric (``oct``) keys are never used, so an HS256 token "signed" with the public key
   cannot verify.

Verified identities are cached per token for ``AUTH_CACHE_TTL_MS`` (never past ``exp``), so a
token presented again (every HTTP request of a client, reconnects) is not verified again.
"""

from __future__ import annotations

import datetime
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import jwt
from jwt.exceptions import PyJWTError
from jwt.utils import base64url_decode

from convection import knobs
from convection.auth.errors import (
    INVALID_AUTH_HEADER,
    NO_AUTH_PROVIDER,
    TOKEN_EXPIRED,
    AuthError,
)
from convection.auth.jwks import JwksCache, KeySet
from convection.auth.providers import Provider, normalize_issuer, parse_providers

STANDARD_CLAIMS: Final[Mapping[str, str]] = {
    "name": "name",
    "given_name": "givenName",
    "family_name": "familyName",
    "nickname": "nickname",
    "preferred_username": "preferredUsername",
    "profile": "profileUrl",
    "picture": "pictureUrl",
    "website": "websiteUrl",
    "email": "email",
    "email_verified": "emailVerified",
    "gender": "gender",
    "birthdate": "birthday",
    "zoneinfo": "timezone",
    "locale": "language",
    "phone_number": "phoneNumber",
    "phone_number_verified": "phoneNumberVerified",
    "address": "address",
    "updated_at": "updatedAt",
}
"""OIDC standard claim -> UserIdentity attribute (PROTOCOL.md §7)."""

DROPPED_CLAIMS: Final = frozenset(
    {
        # registered JWT claims (RFC 7519); iss and sub become issuer/subject/tokenIdentifier
        "iss", "sub", "aud", "exp", "nbf", "iat", "jti",
        # OIDC ID-token protocol claims, and Clerk's factor-verification age
        "auth_time", "nonce", "at_hash", "c_hash", "azp", "acr", "amr", "fva",
    }
)  # fmt: skip
"""Claims that never reach the identity."""

_KEY_TYPES: Final[Mapping[str, tuple[str, str | None]]] = {
    "RS256": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "EdDSA": ("OKP", "Ed25519"),
}
"""Algorithm -> the (kty, crv) a JWK must have to verify it."""

_ALG_ALIASES: Final[Mapping[str, tuple[str, ...]]] = {"EdDSA": ("Ed25519",)}
"""Other ``alg`` values a JWK may carry for an algorithm (RFC 9864 names EdDSA on Ed25519
keys "Ed25519")."""


@dataclass(frozen=True)
class _Parsed:
    header: dict[str, Any]
    claims: dict[str, Any]


@dataclass(frozen=True)
class _Cached:
    attributes: dict[str, Any]
    exp: float
    until: float


class TokenVerifier:
    """Verifies user JWTs against a deployment's providers (see the module docstring).

    ``providers`` are parsed providers or the raw dicts of ``auth_config.py`` (parsed here;
    AuthConfigError if invalid). ``now`` gives wall-clock seconds since the epoch.
    """

    def __init__(
        self,
        providers: Sequence[Provider] | Sequence[Mapping[str, Any]] | None,
        *,
        jwks: JwksCache | None = None,
        now: Callable[[], float] = time.time,
        leeway_s: float = knobs.AUTH_CLOCK_LEEWAY_MS / 1000,
        cache_ttl_s: float = knobs.AUTH_CACHE_TTL_MS / 1000,
        cache_size: int = knobs.AUTH_CACHE_SIZE_COUNT,
    ) -> None:
        self.providers: list[Provider] = parse_providers(providers)
        self.jwks = jwks if jwks is not None else JwksCache()
        self._now = now
        self.leeway_s = leeway_s
        self.cache_ttl_s = cache_ttl_s
        self.cache_size = cache_size
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._pyjws = jwt.PyJWS()

    # --- public ------------------------------------------------------------------------
    async def verify(self, token: str) -> dict[str, Any]:
        """The identity attributes of a valid token; AuthError otherwise."""
        now = self._now()
        cached = self._cache.get(token)
        if cached is not None:
            if now <= cached.until:
                self._check_exp(cached.exp, now)
                self._cache.move_to_end(token)
                return dict(cached.attributes)
            del self._cache[token]
        parsed = _parse(token)
        candidates = self._providers_for(parsed.claims)
        exp = self._check_times(parsed.claims, now)
        subject = parsed.claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise AuthError("The token has no 'sub' (subject) claim", code=INVALID_AUTH_HEADER)
        alg = parsed.header.get("alg")
        failures: list[str] = []
        for provider in candidates:
            if alg not in provider.algorithms:
                failures.append(
                    f"{provider.describe()} accepts {' or '.join(provider.algorithms)}, "
                    f"the token is signed with {alg!r}"
                )
                continue
            try:
                await self._verify_signature(token, parsed, provider, str(alg))
            except AuthError as exc:
                failures.append(exc.message)
                continue
            attributes = identity_attributes(parsed.claims)
            self._remember(token, attributes, exp, now)
            return dict(attributes)
        raise AuthError(
            "Could not verify the token: " + "; ".join(failures), code=INVALID_AUTH_HEADER
        )

    def check_unexpired(self, token: str) -> None:
        """Raise AuthError ``TokenExpired`` when a token accepted earlier has expired since
        (used while a socket keeps running under it). No network, no signature check."""
        cached = self._cache.get(token)
        if cached is not None:
            self._check_exp(cached.exp, self._now())
            return
        try:
            exp = _parse(token).claims.get("exp")
        except AuthError:
            return
        if isinstance(exp, int | float) and not isinstance(exp, bool):
            self._check_exp(float(exp), self._now())

    def forget(self) -> None:
        """Drop the cached identities (keys stay cached in ``jwks``)."""
        self._cache.clear()

    # --- steps -------------------------------------------------------------------------
    def _providers_for(self, claims: Mapping[str, Any]) -> list[Provider]:
        issuer = claims.get("iss")
        if not isinstance(issuer, str) or not issuer:
            raise AuthError("The token has no 'iss' (issuer) claim", code=INVALID_AUTH_HEADER)
        if not self.providers:
            raise AuthError(
                "No auth provider found matching the given token: this deployment has no "
                "providers in auth_config.py",
                code=NO_AUTH_PROVIDER,
            )
        wanted = normalize_issuer(issuer)
        by_issuer = [p for p in self.providers if p.issuer == wanted]
        if not by_issuer:
            configured = ", ".join(repr(p.issuer) for p in self.providers)
            raise AuthError(
                f"No auth provider found matching the given token: its issuer is {issuer!r}; "
                f"auth_config.py has the issuers {configured}",
                code=NO_AUTH_PROVIDER,
            )
        audiences = _audiences(claims.get("aud"))
        matching = [
            p for p in by_issuer if p.application_id is None or p.application_id in audiences
        ]
        if not matching:
            ids = ", ".join(repr(p.application_id) for p in by_issuer)
            raise AuthError(
                f"The token's audience {sorted(audiences)!r} does not contain the "
                f"applicationID ({ids}) of the auth provider for issuer {issuer!r}",
                code=INVALID_AUTH_HEADER,
            )
        return matching

    def _check_times(self, claims: Mapping[str, Any], now: float) -> float:
        exp = claims.get("exp")
        if exp is None:
            raise AuthError(
                "The token has no 'exp' (expiration) claim; tokens must expire",
                code=INVALID_AUTH_HEADER,
            )
        if not _is_number(exp):
            raise AuthError(f"The token's 'exp' claim is not a number: {exp!r}", code=INVALID_AUTH_HEADER)
        self._check_exp(float(exp), now)
        nbf = claims.get("nbf")
        if nbf is not None:
            if not _is_number(nbf):
                raise AuthError(f"The token's 'nbf' claim is not a number: {nbf!r}", code=INVALID_AUTH_HEADER)
            if float(nbf) > now + self.leeway_s:
                raise AuthError(
                    f"The token is not valid yet: its 'nbf' is {_iso(float(nbf))}, "
                    f"{float(nbf) - now:.0f} s from now",
                    code=INVALID_AUTH_HEADER,
                )
        return float(exp)

    def _check_exp(self, exp: float, now: float) -> None:
        if now > exp + self.leeway_s:
            raise AuthError(
                f"The token expired at {_iso(exp)}; fetch a fresh token", code=TOKEN_EXPIRED
            )

    async def _verify_signature(
        self, token: str, parsed: _Parsed, provider: Provider, alg: str
    ) -> None:
        kid = parsed.header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthError(f"The token's 'kid' header is not a string: {kid!r}")
        keyset = await self.jwks.keys(provider)
        if kid is not None and kid not in keyset.kids():
            # A key rotation: the provider signs with a key published after our fetch.
            keyset = await self.jwks.keys(provider, refresh=True)
        candidates = _candidate_keys(keyset, kid, alg)
        if not candidates:
            what = f"key with kid {kid!r}" if kid is not None else "key"
            raise AuthError(
                f"{provider.describe()}: the JWKS at {keyset.url} has no {what} for {alg} "
                f"(key ids: {sorted(keyset.kids())})"
            )
        for key in candidates:
            try:
                self._pyjws.decode_complete(token, key=key, algorithms=[alg])
            except PyJWTError:
                continue
            return
        raise AuthError(f"{provider.describe()}: the token's signature does not verify")

    def _remember(self, token: str, attributes: dict[str, Any], exp: float, now: float) -> None:
        if self.cache_ttl_s <= 0 or self.cache_size <= 0:
            return
        self._cache[token] = _Cached(attributes, exp, min(now + self.cache_ttl_s, exp + self.leeway_s))
        self._cache.move_to_end(token)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)


def identity_attributes(claims: Mapping[str, Any]) -> dict[str, Any]:
    """The UserIdentity attributes of verified claims (PROTOCOL.md §7 table).

    ``issuer`` (and so ``tokenIdentifier``) drops trailing ``/`` s of ``iss``: providers are
    matched on the issuer without them, so ``https://a.com/`` and ``https://a.com`` are the
    same issuer and must give the same user one identity."""
    issuer = str(claims["iss"]).rstrip("/")
    subject = str(claims["sub"])
    attrs: dict[str, Any] = {
        "tokenIdentifier": f"{issuer}|{subject}",
        "issuer": issuer,
        "subject": subject,
    }
    for claim, attribute in STANDARD_CLAIMS.items():
        if claim not in claims or claims[claim] is None:
            continue
        value = _standard_value(claim, claims[claim])
        if value is not None:
            attrs[attribute] = value
    for claim, value in claims.items():
        if claim in DROPPED_CLAIMS or claim in STANDARD_CLAIMS or claim in attrs:
            continue
        attrs[claim] = value
    return attrs


def _standard_value(claim: str, value: Any) -> Any:
    if claim in ("email_verified", "phone_number_verified"):
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        return value
    if claim == "address":
        if isinstance(value, Mapping):
            formatted = value.get("formatted")
            return formatted if isinstance(formatted, str) else None
        return value
    if claim == "updated_at" and _is_number(value):
        return datetime.datetime.fromtimestamp(float(value), tz=datetime.UTC).isoformat()
    return value


def _candidate_keys(keyset: KeySet, kid: str | None, alg: str) -> list[jwt.PyJWK]:
    kty, crv = _KEY_TYPES[alg]
    keys: list[jwt.PyJWK] = []
    for jwk in keyset.keys:
        if kid is not None and jwk.get("kid") != kid:
            continue
        if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
            continue
        if jwk.get("use") not in (None, "sig"):
            continue
        ops = jwk.get("key_ops")
        if isinstance(ops, list) and "verify" not in ops:
            continue
        if jwk.get("alg") not in (None, alg, *_ALG_ALIASES.get(alg, ())):
            continue
        try:
            keys.append(jwt.PyJWK(dict(jwk), algorithm=alg))
        except PyJWTError:
            continue
    return keys


def _parse(token: str) -> _Parsed:
    if not isinstance(token, str) or not token:
        raise AuthError("No token was given", code=INVALID_AUTH_HEADER)
    parts = token.split(".")
    if len(parts) != 3:
        raise AuthError(
            "Could not parse the token as a JWT: expected three '.'-separated parts",
            code=INVALID_AUTH_HEADER,
        )
    try:
        header = json.loads(base64url_decode(parts[0]), parse_constant=_no_constant)
        claims = json.loads(base64url_decode(parts[1]), parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError):
        raise AuthError(
            "Could not parse the token as a JWT: its header or payload is not base64url JSON",
            code=INVALID_AUTH_HEADER,
        ) from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise AuthError(
            "Could not parse the token as a JWT: header and payload must be JSON objects",
            code=INVALID_AUTH_HEADER,
        )
    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none" or alg.upper().startswith("HS"):
        raise AuthError(
            f"The token's algorithm {alg!r} is not accepted: tokens must be signed with "
            "RS256, ES256 or EdDSA",
            code=INVALID_AUTH_HEADER,
        )
    return _Parsed(header, claims)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _audiences(aud: Any) -> set[str]:
    if isinstance(aud, str):
        return {aud}
    if isinstance(aud, list):
        return {a for a in aud if isinstance(a, str)}
    return set()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _iso(seconds: float) -> str:
    try:
        return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC).isoformat()
    except (OverflowError, ValueError, OSError):
        return repr(seconds)
