"""Who is calling a function: anonymous, a verified user, or an admin (possibly acting as a
user). Immutable; shared by the runner, the application and the protocols."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import orjson


@dataclass(frozen=True)
class Identity:
    """Who is calling.

    ``kind``: "anonymous", "user" (a verified JWT; ``attributes`` are the camelCase
    UserIdentity fields of docs/auth.md), "admin" (an admin key; may call internal
    functions), or "admin" with ``attributes`` set (an admin acting as a user).
    ``auth_error`` (code, message): an HTTP action's Authorization header that is not a
    valid token. The action still runs (webhooks use their own schemes); only
    ``ctx.auth.get_user_identity()`` fails with that error.
    ``cache_key`` is a stable string identifying the identity for the query cache: two
    identities share cached results only if every attribute is equal (a refreshed token of
    the same user with a changed claim must not see results computed under the old one).
    """

    kind: Literal["anonymous", "user", "admin"] = "anonymous"
    attributes: dict[str, Any] | None = None
    token: str | None = None
    auth_error: tuple[str, str] | None = None

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"

    @property
    def cache_key(self) -> str:
        if self.attributes is None:
            return self.kind
        key: str | None = self.__dict__.get("_cache_key")
        if key is None:
            try:
                encoded = orjson.dumps(self.attributes, option=orjson.OPT_SORT_KEYS, default=repr)
            except TypeError:  # e.g. an integer claim beyond 64 bits
                encoded = repr(sorted(self.attributes.items(), key=lambda kv: kv[0])).encode()
            digest = hashlib.sha256(encoded).hexdigest()[:32]
            key = f"{self.kind}|{self.attributes.get('tokenIdentifier', '')}|{digest}"
            object.__setattr__(self, "_cache_key", key)
        return key


ANONYMOUS = Identity()
