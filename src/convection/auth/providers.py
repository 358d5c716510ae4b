"""The auth providers of ``convex/auth_config.py``, parsed and checked (docs/auth.md).

Two kinds, as in Convex's ``auth.config.ts``::

    {"domain": "https://my-app.clerk.accounts.dev", "applicationID": "convex"}     # OIDC
    {"type": "customJwt", "issuer": "https://auth.example.com",
     "jwks": "https://auth.example.com/.well-known/jwks.json",
     "algorithm": "RS256", "applicationID": "my-app"}                              # custom JWT

Invariants of a parsed provider:

* ``issuer`` is normalised (:func:`normalize_issuer`: ``https://`` added when no scheme is
  given, trailing ``/`` removed); tokens are matched on their normalised ``iss``.
* Every URL is ``https://``, or ``http://`` to a loopback host (local development and tests);
  a custom JWT's ``jwks`` may also be a ``data:`` URL, decoded here once (``inline_jwks``).
* ``algorithms`` is never empty and never holds ``none`` or an HMAC algorithm: OIDC accepts
  RS256 and EdDSA (per key), a custom JWT exactly its configured ``algorithm``.

Every problem raises :class:`~convection.auth.errors.AuthConfigError` naming the provider
(``providers[i]``) and the field.
"""

from __future__ import annotations

import base64
import difflib
import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias
from urllib.parse import unquote_to_bytes, urlsplit

from convection.auth.errors import AuthConfigError

ALGORITHMS: Final = ("RS256", "ES256", "EdDSA")
"""Signature algorithms a custom JWT provider may name."""

OIDC_ALGORITHMS: Final = ("RS256", "EdDSA")
"""Signature algorithms accepted from an OIDC provider (chosen per key of its JWKS)."""

_OIDC_FIELDS: Final = ("domain", "applicationID")
_CUSTOM_FIELDS: Final = ("type", "issuer", "jwks", "algorithm", "applicationID")
_WHERE: Final = "auth_config.py"


@dataclass(frozen=True)
class OidcProvider:
    """``{"domain", "applicationID"}``: keys come from OIDC discovery under ``domain``."""

    domain: str
    application_id: str
    index: int = 0

    @property
    def issuer(self) -> str:
        return self.domain

    @property
    def application_ids(self) -> tuple[str, ...]:
        return (self.application_id,)

    @property
    def algorithms(self) -> tuple[str, ...]:
        return OIDC_ALGORITHMS

    @property
    def discovery_url(self) -> str:
        return self.domain + "/.well-known/openid-configuration"

    def describe(self) -> str:
        return f"providers[{self.index}] (OIDC, domain {self.domain!r})"


@dataclass(frozen=True)
class CustomJwtProvider:
    """``{"type": "customJwt", ...}``: keys come from the ``jwks`` URL (or ``data:`` URL)."""

    issuer: str
    jwks: str
    algorithm: str
    application_id: str | None = None
    index: int = 0
    inline_jwks: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def algorithms(self) -> tuple[str, ...]:
        return (self.algorithm,)

    def describe(self) -> str:
        return f"providers[{self.index}] (customJwt, issuer {self.issuer!r})"


Provider: TypeAlias = OidcProvider | CustomJwtProvider


def normalize_issuer(value: str) -> str:
    """``https://`` added when no scheme is given, trailing slashes removed."""
    value = value.strip()
    if "://" not in value:
        value = "https://" + value
    return value.rstrip("/")


def parse_providers(raw: Sequence[Any] | None) -> list[Provider]:
    """Parse the ``providers`` list of ``auth_config.py``; raise AuthConfigError if invalid."""
    if raw is None:
        return []
    if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
        raise AuthConfigError(f"{_WHERE}: 'providers' must be a list of dicts, got {raw!r}")
    providers: list[Provider] = []
    for index, item in enumerate(raw):
        if isinstance(item, OidcProvider | CustomJwtProvider):
            providers.append(item)
        else:
            providers.append(parse_provider(item, index))
    return providers


def parse_provider(raw: Any, index: int = 0) -> Provider:
    """Parse one provider dict (``index`` is its position, for messages)."""
    where = f"{_WHERE} providers[{index}]"
    if not isinstance(raw, Mapping):
        raise AuthConfigError(
            f"{where}: a provider must be a dict such as {{\"domain\": ..., "
            f"\"applicationID\": ...}}, got {raw!r}"
        )
    kind = raw.get("type")
    if kind is None:
        _check_fields(raw, _OIDC_FIELDS, where, "an OIDC provider")
        domain = _url(_string(raw, "domain", where), "domain", where, add_https=True)
        return OidcProvider(
            domain=normalize_issuer(domain),
            application_id=_string(raw, "applicationID", where),
            index=index,
        )
    if kind != "customJwt":
        raise AuthConfigError(
            f"{where}: unknown provider \"type\" {kind!r}; use \"customJwt\", or leave \"type\" "
            "out for an OIDC provider {\"domain\": ..., \"applicationID\": ...}"
        )
    _check_fields(raw, _CUSTOM_FIELDS, where, "a customJwt provider")
    issuer = _string(raw, "issuer", where)  # only compared with tokens' iss, never fetched
    algorithm = raw.get("algorithm")
    if algorithm not in ALGORITHMS:
        raise AuthConfigError(
            f"{where}: \"algorithm\" must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}"
        )
    app_id: str | None = None
    if raw.get("applicationID") is not None:
        app_id = _string(raw, "applicationID", where)
    jwks = _string(raw, "jwks", where)
    inline: Mapping[str, Any] | None = None
    if jwks.startswith("data:"):
        inline = decode_data_url_jwks(jwks, where)
    else:
        _url(jwks, "jwks", where, add_https=False)
    return CustomJwtProvider(
        issuer=normalize_issuer(issuer),
        jwks=jwks,
        algorithm=str(algorithm),
        application_id=app_id,
        index=index,
        inline_jwks=inline,
    )


def decode_data_url_jwks(url: str, where: str = "jwks") -> Mapping[str, Any]:
    """Decode a ``data:[<media type>][;base64],<data>`` URL holding a JWKS document."""
    header, sep, payload = url[len("data:") :].partition(",")
    if not sep:
        raise AuthConfigError(f"{where}: \"jwks\" data: URL has no ',' before its data")
    try:
        if header.split(";")[-1].strip().lower() == "base64":
            raw = unquote_to_bytes(payload).strip().replace(b"-", b"+").replace(b"_", b"/")
            data = base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=True)
        else:
            data = unquote_to_bytes(payload)
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AuthConfigError(
            f"{where}: \"jwks\" data: URL does not hold a JSON document ({exc})"
        ) from None
    check_jwks_document(document, f"{where}: \"jwks\" data: URL", error=AuthConfigError)
    return dict(document)


def check_jwks_document(
    document: Any, what: str, *, error: type[Exception] = AuthConfigError
) -> None:
    """Raise ``error`` unless ``document`` is ``{"keys": [<object>, ...]}``."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise error(f"{what} is not a JWKS: expected a JSON object {{\"keys\": [...]}}")
    if not all(isinstance(k, Mapping) for k in document["keys"]):
        raise error(f"{what} is not a JWKS: every entry of \"keys\" must be an object")


def check_fetch_url(url: str, what: str, *, error: type[Exception] = AuthConfigError) -> str:
    """Raise ``error`` unless ``url`` is https, or http to a loopback host. Returns it."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise error(f"{what} {url!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("https", "http") or not host:
        raise error(f"{what} {url!r} must be an https:// URL")
    if parts.scheme == "http" and not is_loopback(host):
        raise error(
            f"{what} {url!r} uses plain http: keys must be fetched over https:// "
            "(http:// is allowed only for localhost, for local development)"
        )
    return url


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_fields(raw: Mapping[Any, Any], allowed: Sequence[str], where: str, what: str) -> None:
    for key in raw:
        if key in allowed:
            continue
        hint = ""
        lowered = {a.lower(): a for a in allowed}
        if isinstance(key, str):
            match = lowered.get(key.lower()) or next(
                iter(difflib.get_close_matches(key, allowed, n=1, cutoff=0.7)), None
            )
            if match is not None:
                hint = f" (did you mean {match!r}?)"
        raise AuthConfigError(
            f"{where}: unknown field {key!r}{hint}; {what} has the fields "
            + ", ".join(repr(a) for a in allowed)
        )


def _string(raw: Mapping[Any, Any], name: str, where: str) -> str:
    value = raw.get(name)
    if not isinstance(value, str) or not value.strip():
        shown = "missing" if name not in raw else f"got {value!r}"
        raise AuthConfigError(f"{where}: {name!r} must be a non-empty string ({shown})")
    return value.strip()


def _url(value: str, name: str, where: str, *, add_https: bool) -> str:
    url = normalize_issuer(value) if add_https else value
    check_fetch_url(url, f"{where}: {name!r}")
    return url
