"""The JWKS cache: the public keys of each auth provider, fetched with httpx and kept.

* OIDC providers: ``GET {domain}/.well-known/openid-configuration`` (its ``issuer`` must be the
  domain, trailing ``/`` ignored), then ``GET`` its ``jwks_uri``.
* Custom JWT providers: ``GET`` the ``jwks`` URL (``Accept: application/json,
  application/jwk-set+json``); a ``data:`` URL was decoded when the config was parsed and is
  never fetched.

Invariants:

* Keys are reused for ``AUTH_JWKS_CACHE_TTL_MS``; after that the next use fetches again.
* :meth:`JwksCache.keys` with ``refresh=True`` (a token names a ``kid`` the cached set lacks,
  e.g. after a key rotation) fetches again, but at most once per
  ``AUTH_JWKS_MIN_REFETCH_INTERVAL_MS`` per provider, so a stream of tokens with made-up key
  ids cannot turn into a stream of requests to the provider. A failed fetch is remembered
  for the same interval.
* When a fetch fails and keys were fetched before, the old keys stay in use (a provider's
  brief outage does not log everyone out); with no keys at all the token is rejected with
  ``InvalidAuthHeader``.
* Concurrent requests for one provider share one fetch (per event loop).
* Nothing here trusts a key: the verifier checks each key's type against the provider's
  pinned algorithm.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from convection import knobs
from convection.auth.errors import AuthError
from convection.auth.providers import (
    CustomJwtProvider,
    OidcProvider,
    Provider,
    check_fetch_url,
    check_jwks_document,
    normalize_issuer,
)

logger = logging.getLogger(__name__)

_ACCEPT_JWKS = "application/json, application/jwk-set+json"


@dataclass(frozen=True)
class KeySet:
    """The keys (JWK objects) of one provider, as fetched from ``url`` at ``fetched_at``
    (monotonic seconds)."""

    keys: tuple[Mapping[str, Any], ...]
    url: str
    fetched_at: float

    def kids(self) -> set[str]:
        return {str(k["kid"]) for k in self.keys if "kid" in k}


@dataclass
class _Entry:
    keys: KeySet | None = None
    last_attempt: float = 0.0
    error: AuthError | None = None


class JwksCache:
    """Fetches and keeps providers' keys. One instance serves every verifier of a deployment
    (rebuilding the verifier on a code push keeps the fetched keys)."""

    def __init__(
        self,
        *,
        ttl_s: float = knobs.AUTH_JWKS_CACHE_TTL_MS / 1000,
        min_refetch_interval_s: float = knobs.AUTH_JWKS_MIN_REFETCH_INTERVAL_MS / 1000,
        timeout_s: float = knobs.AUTH_JWKS_FETCH_TIMEOUT_MS / 1000,
        max_size_bytes: int = knobs.AUTH_JWKS_MAX_SIZE_BYTES,
        monotonic: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.ttl_s = ttl_s
        self.min_refetch_interval_s = min_refetch_interval_s
        self.timeout_s = timeout_s
        self.max_size_bytes = max_size_bytes
        self._monotonic = monotonic
        self._transport = transport
        self._entries: dict[str, _Entry] = {}
        self._inflight: dict[str, asyncio.Task[KeySet]] = {}
        self.fetches = 0
        """How many fetches were started (for tests and metrics)."""

    def clear(self) -> None:
        self._entries.clear()

    async def keys(self, provider: Provider, *, refresh: bool = False) -> KeySet:
        """The provider's keys: cached, or fetched (see the module docstring)."""
        if isinstance(provider, CustomJwtProvider) and provider.inline_jwks is not None:
            keys = tuple(provider.inline_jwks.get("keys", ()))
            return KeySet(keys=keys, url="data: URL", fetched_at=0.0)
        key = _source_key(provider)
        now = self._monotonic()
        entry = self._entries.setdefault(key, _Entry())
        if entry.keys is not None:
            if not refresh and now - entry.keys.fetched_at < self.ttl_s:
                return entry.keys
            if refresh and now - entry.last_attempt < self.min_refetch_interval_s:
                return entry.keys
        elif entry.error is not None and now - entry.last_attempt < self.min_refetch_interval_s:
            raise AuthError(entry.error.message, code=entry.error.code)
        try:
            fetched = await self._single_flight(key, lambda: self._fetch(provider))
        except AuthError as exc:
            entry.last_attempt = self._monotonic()
            entry.error = exc
            if entry.keys is not None:
                logger.warning("auth: %s; still using the keys fetched before", exc.message)
                return entry.keys
            raise
        entry.keys = fetched
        entry.error = None
        entry.last_attempt = fetched.fetched_at
        return fetched

    async def _single_flight(self, key: str, start: Callable[[], Awaitable[KeySet]]) -> KeySet:
        loop = asyncio.get_running_loop()
        task = self._inflight.get(key)
        if task is None or task.done() or task.get_loop() is not loop:
            task = loop.create_task(_run(start))
            self._inflight[key] = task
            task.add_done_callback(lambda t: self._forget(key, t))
        return await asyncio.shield(task)

    def _forget(self, key: str, task: asyncio.Task[KeySet]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved: never "exception was never retrieved"

    async def _fetch(self, provider: Provider) -> KeySet:
        self.fetches += 1
        async with httpx.AsyncClient(
            timeout=self.timeout_s, follow_redirects=True, transport=self._transport
        ) as client:
            if isinstance(provider, OidcProvider):
                url = provider.discovery_url
                config = await self._get_json(client, url, "the OIDC discovery document")
                if not isinstance(config, Mapping):
                    raise AuthError(f"The OIDC discovery document at {url} is not a JSON object")
                issuer = config.get("issuer")
                if isinstance(issuer, str) and normalize_issuer(issuer) != provider.domain:
                    raise AuthError(
                        f"The OIDC discovery document at {url} names the issuer {issuer!r}, "
                        f"not the configured domain {provider.domain!r}"
                    )
                jwks_uri = config.get("jwks_uri")
                if not isinstance(jwks_uri, str):
                    raise AuthError(f"The OIDC discovery document at {url} has no 'jwks_uri'")
                jwks_url = check_fetch_url(
                    jwks_uri, f"The jwks_uri of the OIDC discovery document at {url}", error=AuthError
                )
            else:
                jwks_url = provider.jwks
            document = await self._get_json(client, jwks_url, "the JWKS")
        check_jwks_document(document, f"The document at {jwks_url}", error=AuthError)
        return KeySet(keys=tuple(document["keys"]), url=jwks_url, fetched_at=self._monotonic())

    async def _get_json(self, client: httpx.AsyncClient, url: str, what: str) -> Any:
        try:
            async with client.stream("GET", url, headers={"Accept": _ACCEPT_JWKS}) as response:
                if response.status_code != 200:
                    raise AuthError(
                        f"Could not fetch {what} from {url}: HTTP {response.status_code}"
                    )
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > self.max_size_bytes:
                        raise AuthError(
                            f"Could not fetch {what} from {url}: larger than "
                            f"{self.max_size_bytes} bytes (knob AUTH_JWKS_MAX_SIZE_BYTES)"
                        )
        except httpx.HTTPError as exc:
            raise AuthError(f"Could not fetch {what} from {url}: {exc!r}") from None
        try:
            return json.loads(bytes(body))
        except ValueError:
            raise AuthError(f"Could not fetch {what} from {url}: the response is not JSON") from None


async def _run(start: Callable[[], Awaitable[KeySet]]) -> KeySet:
    return await start()


def _source_key(provider: Provider) -> str:
    if isinstance(provider, OidcProvider):
        return "oidc " + provider.domain
    return "jwks " + provider.jwks
