"""The seam between the application facade and its users (sync/, server/, cli/, testing/).

`sync/` and `server/` see the application only through :class:`ApplicationInterface`; the
concrete :class:`convection.application.app.Application` implements it and only the
composition root (``server/compose.py``) constructs it.

Values crossing this seam are Convex values (see ``convection.values``); results are also
given pre-serialized (``value_json``, Convex encoded JSON bytes) so a result that fans out to
many sockets is serialized once (embed with ``orjson.Fragment``).

Timestamps are ``int`` nanoseconds since the epoch (the commit clock).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from convection.functions.identity import ANONYMOUS, Identity
from convection.functions.outcome import FunctionOutcome

FunctionKind = Literal["query", "mutation", "action"]

__all__ = ["ANONYMOUS", "ApplicationInterface", "AuthFailure", "FunctionKind", "FunctionOutcome", "Identity", "QueryRun", "QuerySubscription", "SharedResult"]


class QuerySubscription(Protocol):
    """A query result's dependency on the database, as of the ts it was computed at.

    ``invalidated_at`` is None while no commit after that ts wrote anything the query read;
    otherwise the ts of the earliest such commit. It is set *before* the application's
    ``latest_ts()`` moves past that commit, so reading ``latest_ts()`` and then this field is
    consistent. ``set_callback`` registers a function called (on the event loop, at most once)
    when the subscription becomes invalid. ``close()`` releases it (idempotent).
    """

    @property
    def invalidated_at(self) -> int | None: ...

    def set_callback(self, callback: Callable[[], None]) -> None: ...

    def close(self) -> None: ...


class SharedResult(Protocol):
    """A result shared by every socket subscribed to the same cache entry (fan-out)."""

    def shared_body(self) -> bytes:
        """The socket-independent wire bytes of the result
        (:func:`convection.protocol.splice.result_body`), encoded once per result."""


@dataclass
class QueryRun:
    """A subscribed query's outcome at ``outcome.ts`` and its subscription. ``shared`` (when
    given) holds the result's wire encoding shared with the other subscribers."""

    outcome: FunctionOutcome
    fingerprint: bytes
    subscription: QuerySubscription
    shared: SharedResult | None = None


class AuthFailure(Exception):
    """Authentication failed; ``message`` is sent to the client (AuthError / 401)."""

    def __init__(self, message: str, *, code: str = "InvalidAuthHeader") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class ApplicationInterface(Protocol):
    """What sync/ and server/ may ask of the application."""

    def latest_ts(self) -> int:
        """The newest published commit ts (every invalidation up to it is already marked)."""

    def bump_ts(self, ts: int) -> None:
        """Move the commit clock so that every later commit, and ``latest_ts()`` once no
        commit is in flight, is at least ``ts`` (a client observed ``ts``: docs/internals/protocol.md)."""

    async def subscribe_query(
        self, path: str, args: Any, identity: Identity, journal: str | None, ts: int
    ) -> QueryRun:
        """Run (or take from the shared cache) a query at snapshot ``ts`` and subscribe to it.

        Function errors are outcomes (success False), never exceptions.
        """

    def cached_query_run(
        self, path: str, args: Any, identity: Identity, journal: str | None, ts: int
    ) -> QueryRun | None:
        """What :meth:`subscribe_query` would return, if the query cache can answer it now
        without running anything or waiting; else None (call ``subscribe_query``)."""

    async def run_query(
        self, path: str, args: Any, identity: Identity, *, ts: int | None = None
    ) -> FunctionOutcome:
        """One-shot query at ``ts`` (default: latest)."""

    async def run_mutation(
        self,
        path: str,
        args: Any,
        identity: Identity,
        *,
        idempotency_key: tuple[str, int] | None = None,
    ) -> FunctionOutcome:
        """Run a mutation to completion (retries included). ``ts`` is the commit ts; when
        ``idempotency_key`` (sessionId, requestId) was already committed, the stored outcome
        and its original ts are returned without running again."""

    async def run_action(self, path: str, args: Any, identity: Identity) -> FunctionOutcome:
        """Run an action to completion."""

    async def run_function(
        self, path: str, args: Any, identity: Identity, *, kind: FunctionKind | None = None
    ) -> FunctionOutcome:
        """Run any function by path (``/api/function``, ``/api/run``); ``kind`` None = any."""

    async def authenticate(
        self, token_type: str, value: str | None, impersonating: dict[str, Any] | None
    ) -> Identity:
        """Turn an Authenticate message / Authorization header into an Identity.

        ``token_type`` is "User" (JWT), "Admin" (admin key) or "None". Raises AuthFailure.
        """
