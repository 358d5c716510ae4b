"""Who is calling a function: anonymous, a verified user, or an admin (possibly acting as a
user). Immutable; shared by the runner, the application and the protocols."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Identity:
    """Who is calling.

    ``kind``: "anonymous", "user" (a verified JWT; ``attributes`` are the camelCase
    UserIdentity fields of PROTOCOL.md §7), "admin" (an admin key; may call internal
    functions), or "admin" with ``attributes`` set (an admin acting as a user).
    ``cache_key`` is a stable string identifying the identity for the query cache.
    """

    kind: Literal["anonymous", "user", "admin"] = "anonymous"
    attributes: dict[str, Any] | None = None
    token: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"

    @property
    def cache_key(self) -> str:
        if self.attributes is None:
            return self.kind
        return self.kind + "|" + str(self.attributes.get("tokenIdentifier", ""))


ANONYMOUS = Identity()
