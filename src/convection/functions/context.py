"""The ``ctx`` objects handed to user functions (API.md §2).

``QueryCtx``: ``db`` (reader), ``auth``, ``now``, ``random``, ``storage`` (read parts).
``MutationCtx``: ``db`` (reader + writer), ``run_query``/``run_mutation`` (nested, in the same
transaction), ``scheduler``.
``ActionCtx``: ``run_query``/``run_mutation``/``run_action`` (awaitable, each its own
transaction), ``auth``, ``scheduler``, ``storage``, ``vector_search``.

Contexts record what the call observed that matters for caching: whether it read the
identity (``identity_read``) or the clock (``time_read``).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

from convection.database.query import Query
from convection.database.transaction import Transaction
from convection.errors import DatabaseError
from convection.functions.identity import Identity


class UserIdentity:
    """What ``ctx.auth.get_user_identity()`` returns: snake_case attribute access over the
    camelCase identity fields, and item access by the raw claim name (custom claims)."""

    _ALIASES = {
        "token_identifier": "tokenIdentifier",
        "given_name": "givenName",
        "family_name": "familyName",
        "preferred_username": "preferredUsername",
        "profile_url": "profileUrl",
        "picture_url": "pictureUrl",
        "website_url": "websiteUrl",
        "email_verified": "emailVerified",
        "phone_number": "phoneNumber",
        "phone_number_verified": "phoneNumberVerified",
        "updated_at": "updatedAt",
    }

    def __init__(self, attributes: dict[str, Any]) -> None:
        self._attrs = dict(attributes)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        key = self._ALIASES.get(name, name)
        if key in self._attrs:
            return self._attrs[key]
        if name in self._attrs:
            return self._attrs[name]
        if key in ("tokenIdentifier", "subject", "issuer"):
            raise AttributeError(name)
        return None

    def __getitem__(self, key: str) -> Any:
        return self._attrs[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._attrs.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._attrs

    def to_dict(self) -> dict[str, Any]:
        return dict(self._attrs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UserIdentity) and other._attrs == self._attrs

    def __hash__(self) -> int:
        return hash(self._attrs.get("tokenIdentifier"))

    def __repr__(self) -> str:
        return f"UserIdentity({self._attrs!r})"


class Auth:
    """``ctx.auth``."""

    def __init__(self, identity: Identity | None, observer: CallObserver) -> None:
        self._identity = identity
        self._observer = observer

    def get_user_identity(self) -> UserIdentity | None:
        self._observer.identity_read = True
        ident = self._identity
        if ident is None or ident.attributes is None:
            return None
        return UserIdentity(ident.attributes)


class CallObserver:
    """What a call touched that affects caching of its result."""

    __slots__ = ("identity_read", "time_read")

    def __init__(self) -> None:
        self.identity_read = False
        self.time_read = False


# The system tables user code may read (as in Convex); the others hold the catalog, deployed
# code, the instance secret and internal bookkeeping.
USER_READABLE_SYSTEM_TABLES = ("_storage", "_scheduled_functions")


class SystemReader:
    """``ctx.db.system``: read access to the system tables ``_storage`` and
    ``_scheduled_functions``."""

    def __init__(self, txn: Transaction) -> None:
        self._txn = txn

    def get(self, id: Any) -> dict[str, Any] | None:
        table = self._txn.table_of_id(id) if isinstance(id, str) else None
        if table is not None and not table.startswith("_"):
            raise DatabaseError("ctx.db.system.get() reads system tables; use ctx.db.get() for " + repr(table), code="InvalidTable")
        if table is not None and table not in USER_READABLE_SYSTEM_TABLES:
            raise DatabaseError(_not_readable(table), code="InvalidTable")
        return self._txn.get(id)

    def query(self, table: str) -> Query:
        if not isinstance(table, str) or not table.startswith("_"):
            raise DatabaseError(f"ctx.db.system.query() reads system tables, got {table!r}", code="InvalidTable")
        if table not in USER_READABLE_SYSTEM_TABLES:
            raise DatabaseError(_not_readable(table), code="InvalidTable")
        return Query(self._txn, table)


def _not_readable(table: str) -> str:
    return (
        f"System table {table!r} cannot be read by functions; ctx.db.system reads "
        f"{' and '.join(repr(t) for t in USER_READABLE_SYSTEM_TABLES)}"
    )


class DatabaseReader:
    """``ctx.db`` in queries."""

    def __init__(self, txn: Transaction) -> None:
        self._txn = txn
        self.system = SystemReader(txn)

    def _user_table(self, table: Any, op: str) -> str:
        if not isinstance(table, str) or not table:
            raise DatabaseError(f"{op}: table name must be a non-empty string, got {table!r}", code="InvalidTableName")
        if table.startswith("_"):
            raise DatabaseError(
                f"{op}: {table!r} is a system table; read it with ctx.db.system.query({table!r})",
                code="SystemTable",
            )
        return table

    def get(self, id: Any) -> dict[str, Any] | None:
        table = self._txn.table_of_id(id) if isinstance(id, str) else None
        if table is not None and table.startswith("_"):
            raise DatabaseError(
                f"{id!r} is a document of system table {table!r}; read it with ctx.db.system.get()",
                code="SystemTable",
            )
        return self._txn.get(id)

    def query(self, table: str) -> Query:
        return Query(self._txn, self._user_table(table, "ctx.db.query"))

    def normalize_id(self, table: str, id: Any) -> str | None:
        return self._txn.normalize_id(table, id)


class DatabaseWriter(DatabaseReader):
    """``ctx.db`` in mutations."""

    def insert(self, table: str, document: dict[str, Any]) -> str:
        return self._txn.insert(self._user_table(table, "ctx.db.insert"), document)

    def patch(self, id: Any, fields: dict[str, Any]) -> None:
        self._txn.patch(id, fields)

    def replace(self, id: Any, document: dict[str, Any]) -> None:
        self._txn.replace(id, document)

    def delete(self, id: Any) -> None:
        self._txn.delete(id)


class _Base:
    def __init__(self, identity: Identity | None, now_ms: float, seed: int) -> None:
        self.observer = CallObserver()
        self.auth = Auth(identity, self.observer)
        self._now = now_ms
        self._seed = seed
        self._random: random.Random | None = None
        self.identity = identity

    @property
    def now(self) -> float:
        """Milliseconds since the epoch, frozen at the start of the call."""
        self.observer.time_read = True
        return self._now

    @property
    def random(self) -> random.Random:
        """A random.Random seeded for this call."""
        if self._random is None:
            self._random = random.Random(self._seed)
        return self._random


NestedCall = Callable[[Any, Any, Any, bool], Any]


class QueryCtx(_Base):
    def __init__(
        self, txn: Transaction, identity: Identity | None, now_ms: float, seed: int, nested: NestedCall
    ) -> None:
        super().__init__(identity, now_ms, seed)
        self.db: DatabaseReader = DatabaseReader(txn)
        self._txn = txn  # for the built-in _system functions (functions/system.py)
        self._nested = nested
        self.storage: Any = None

    def run_query(self, ref: Any, args: Any = None) -> Any:
        return self._nested(self, ref, args, False)


class MutationCtx(QueryCtx):
    def __init__(
        self, txn: Transaction, identity: Identity | None, now_ms: float, seed: int, nested: NestedCall
    ) -> None:
        super().__init__(txn, identity, now_ms, seed, nested)
        self.db = DatabaseWriter(txn)
        self.scheduler: Any = None

    def run_mutation(self, ref: Any, args: Any = None) -> Any:
        return self._nested(self, ref, args, True)


class ActionHost:
    """What an action's ctx calls back into (implemented by the application)."""

    def run_query(self, ref: Any, args: Any, identity: Identity | None) -> Awaitable[Any]:
        raise NotImplementedError

    def run_mutation(self, ref: Any, args: Any, identity: Identity | None) -> Awaitable[Any]:
        raise NotImplementedError

    def run_action(self, ref: Any, args: Any, identity: Identity | None) -> Awaitable[Any]:
        raise NotImplementedError


class ActionCtx(_Base):
    def __init__(self, host: ActionHost, identity: Identity | None, now_ms: float, seed: int) -> None:
        super().__init__(identity, now_ms, seed)
        self._host = host
        self.scheduler: Any = None
        self.storage: Any = None

    async def run_query(self, ref: Any, args: Any = None) -> Any:
        return await self._host.run_query(ref, args, self.identity)

    async def run_mutation(self, ref: Any, args: Any = None) -> Any:
        return await self._host.run_mutation(ref, args, self.identity)

    async def run_action(self, ref: Any, args: Any = None) -> Any:
        return await self._host.run_action(ref, args, self.identity)
