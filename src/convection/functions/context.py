"""The ``ctx`` objects handed to user functions (docs/functions.md).

``QueryCtx``: ``db`` (reader), ``auth``, ``now``, ``random``, ``storage`` (read parts).
``MutationCtx``: ``db`` (reader + writer), ``run_query``/``run_mutation`` (nested, in the same
transaction), ``scheduler``.
``ActionCtx``: ``run_query``/``run_mutation``/``run_action`` (awaitable, each its own
transaction), ``auth``, ``scheduler``, ``storage``, ``vector_search``.

Contexts record what the call observed that matters for caching: whether it read the
identity (``identity_read``) or the clock (``time_read``).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeAlias

from convection.database.query import Query
from convection.database.transaction import Transaction
from convection.errors import ConvectionError, DatabaseError
from convection.functions.identity import Identity
from convection.functions.mistakes import (
    awaitable_in_sync_action,
    missing_on_action_ctx,
    missing_on_query_ctx,
    missing_on_reader,
)

if TYPE_CHECKING:
    from convection.files.context import ActionStorage, MutationStorage, QueryStorage
    from convection.functions.scheduler import ActionScheduler, MutationScheduler

Doc: TypeAlias = dict[str, Any]
"""A document as functions see it: its fields plus ``_id`` and ``_creationTime``."""

Id: TypeAlias = str
"""A document id (a string; ``v.id("table")`` validates that it belongs to the table). The
generated ``convex/_generated/data_model.py`` has a per-table alias (``MessagesId``)."""


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
        """The caller's identity (from a verified JWT), or None when anonymous. In an HTTP
        action whose Authorization header is not a valid token, raises that header's error
        (``InvalidAuthHeader``, ``TokenExpired``, ``NoAuthProvider``)."""
        self._observer.identity_read = True
        ident = self._identity
        if ident is not None and ident.auth_error is not None:
            code, message = ident.auth_error
            raise ConvectionError(message, code=code)
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

    def get(self, id: Any) -> Doc | None:
        """The document with this id, or None if it does not exist."""
        table = self._txn.table_of_id(id) if isinstance(id, str) else None
        if table is not None and table.startswith("_"):
            raise DatabaseError(
                f"{id!r} is a document of system table {table!r}; read it with ctx.db.system.get()",
                code="SystemTable",
            )
        return self._txn.get(id)

    def query(self, table: str) -> Query:
        """A query over ``table``: ``.with_index(...)``, ``.order(...)``, ``.filter(...)``,
        then ``.collect()``, ``.take(n)``, ``.first()``, ``.unique()`` or ``.paginate(...)``."""
        return Query(self._txn, self._user_table(table, "ctx.db.query"))

    def normalize_id(self, table: str, id: Any) -> str | None:
        """``id`` as a document id of ``table`` if it is one, else None."""
        return self._txn.normalize_id(table, id)

    if not TYPE_CHECKING:  # (type checkers see only the real methods)

        def __getattr__(self, name: str) -> Any:
            error = missing_on_reader(name, self._txn.source)
            if error is not None:
                raise error
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


class DatabaseWriter(DatabaseReader):
    """``ctx.db`` in mutations."""

    def insert(self, table: str, document: dict[str, Any]) -> Id:
        """Insert a document into ``table``; returns its new id."""
        return self._txn.insert(self._user_table(table, "ctx.db.insert"), document)

    def patch(self, id: Any, fields: dict[str, Any]) -> None:
        """Shallow-merge ``fields`` into the document (a field set to UNSET is removed)."""
        self._txn.patch(id, fields)

    def replace(self, id: Any, document: dict[str, Any]) -> None:
        """Replace the whole document (keeping ``_id`` and ``_creationTime``)."""
        self._txn.replace(id, document)

    def delete(self, id: Any) -> None:
        """Delete the document."""
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
    """``ctx`` of a query: ``db`` (read-only), ``auth``, ``storage`` (read parts), ``now``,
    ``random``, and ``run_query`` (a nested query in the same transaction)."""

    db: DatabaseReader
    storage: QueryStorage

    def __init__(
        self, txn: Transaction, identity: Identity | None, now_ms: float, seed: int, nested: NestedCall
    ) -> None:
        super().__init__(identity, now_ms, seed)
        self.db = DatabaseReader(txn)
        self._txn = txn  # for catalog_view (the built-in _system functions)
        self._nested = nested
        self.storage = None  # type: ignore[assignment]  # installed by the application

    def run_query(self, ref: Any, args: Any = None) -> Any:
        """Run another query (``api.module.fn`` or ``"module:fn"``) in this transaction."""
        return self._nested(self, ref, args, False)

    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any:
            kind = "mutation" if isinstance(self, MutationCtx) else "query"
            error = missing_on_query_ctx(name, kind, self._txn.source)
            if error is not None:
                raise error
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


class CatalogView:
    """What the built-in ``_system`` functions (functions/system.py) may know beyond ``ctx.db``:
    which user tables exist (in the catalog, or declared by the schema) and the table of an
    id. User functions never get one (:func:`catalog_view` is not part of the public API)."""

    def __init__(self, txn: Transaction) -> None:
        self._txn = txn

    def user_table_names(self) -> list[str]:
        """Every user table in the catalog or the schema in force, sorted."""
        db: Any = self._txn.db  # the Database (its schema is not part of TransactionHost)
        names = {n for n in db.catalog.tables() if not n.startswith("_")}
        if db.schema is not None:
            names.update(db.schema.tables)
        return sorted(names)

    def table_exists(self, name: str) -> bool:
        """Whether ``name`` is in the catalog (a schema table may not be created yet)."""
        return self._txn.db.catalog.table_number(name) is not None

    def table_of_id(self, id: str) -> str | None:
        return self._txn.table_of_id(id)


def catalog_view(ctx: QueryCtx) -> CatalogView:
    """The :class:`CatalogView` of a query or mutation ctx (for the built-in functions)."""
    return CatalogView(ctx._txn)


class MutationCtx(QueryCtx):
    """``ctx`` of a mutation: a ``QueryCtx`` whose ``db`` also writes, plus ``run_mutation``
    (nested, in the same transaction) and ``scheduler``."""

    db: DatabaseWriter
    storage: MutationStorage
    scheduler: MutationScheduler

    def __init__(
        self, txn: Transaction, identity: Identity | None, now_ms: float, seed: int, nested: NestedCall
    ) -> None:
        super().__init__(txn, identity, now_ms, seed, nested)
        self.db = DatabaseWriter(txn)
        self.scheduler = None  # type: ignore[assignment]  # installed by the application

    def run_mutation(self, ref: Any, args: Any = None) -> Any:
        """Run another mutation in this transaction (its writes commit with this one's)."""
        return self._nested(self, ref, args, True)


class ActionHost:
    """What an action's ctx calls back into (implemented by the application)."""

    def run_query(self, ref: Any, args: Any, identity: Identity | None) -> Awaitable[Any]:
        raise NotImplementedError

    def run_mutation(self, ref: Any, args: Any, identity: Identity | None) -> Awaitable[Any]:
        raise NotImplementedError

    def run_action(self, ref: Any, args: Any, identity: Identity | None) -> Awaitable[Any]:
        raise NotImplementedError


def _require_loop(method: str) -> None:
    """Awaitables of an action's ctx belong to the server's event loop; a plain ``def``
    action runs in a worker thread, where they could never be awaited."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise awaitable_in_sync_action(method) from None


def _named(coro: Coroutine[Any, Any, Any], name: str) -> Coroutine[Any, Any, Any]:
    # Python's "coroutine ... was never awaited" warning then names the call the user made.
    coro.__qualname__ = name  # type: ignore[attr-defined,misc,unused-ignore]
    return coro


class ActionCtx(_Base):
    """``ctx`` of an action: ``await run_query / run_mutation / run_action`` (each its own
    transaction), ``await vector_search(...)``, ``auth``, ``scheduler``, ``storage``. No
    ``db``: actions run outside transactions."""

    storage: ActionStorage
    scheduler: ActionScheduler
    vector_search: Callable[..., Awaitable[list[dict[str, Any]]]]
    """``await ctx.vector_search(table, index, vector=[...], limit=10, filter=None)`` ->
    ``[{"_id": id, "_score": cosine}]`` (installed by the application; see docs/search.md)."""

    def __init__(self, host: ActionHost, identity: Identity | None, now_ms: float, seed: int) -> None:
        super().__init__(identity, now_ms, seed)
        self._host = host
        self.scheduler = None  # type: ignore[assignment]  # installed by the application
        self.storage = None  # type: ignore[assignment]

    def run_query(self, ref: Any, args: Any = None) -> Coroutine[Any, Any, Any]:
        """``await ctx.run_query(api.module.fn, args)``: run a query in its own transaction."""
        _require_loop("run_query")
        return _named(self._call(self._host.run_query, ref, args), "ctx.run_query")

    def run_mutation(self, ref: Any, args: Any = None) -> Coroutine[Any, Any, Any]:
        """``await ctx.run_mutation(api.module.fn, args)``: run a mutation (its own
        transaction, committed when it returns)."""
        _require_loop("run_mutation")
        return _named(self._call(self._host.run_mutation, ref, args), "ctx.run_mutation")

    def run_action(self, ref: Any, args: Any = None) -> Coroutine[Any, Any, Any]:
        """``await ctx.run_action(api.module.fn, args)``: run another action."""
        _require_loop("run_action")
        return _named(self._call(self._host.run_action, ref, args), "ctx.run_action")

    async def _call(self, method: Callable[[Any, Any, Identity | None], Awaitable[Any]], ref: Any, args: Any) -> Any:
        return await method(ref, args, self.identity)

    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any:
            error = missing_on_action_ctx(name)
            if error is not None:
                raise error
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


__all__ = [
    "ActionCtx",
    "ActionHost",
    "Auth",
    "DatabaseReader",
    "DatabaseWriter",
    "Doc",
    "Id",
    "MutationCtx",
    "QueryCtx",
    "UserIdentity",
]
