"""The application facade: runs functions of the current code against the database for
every protocol (sync, HTTP, CLI, tests), with the shared query cache, idempotent mutations
and the worker-thread pool.

It builds none of its services: the composition root (``server/compose.py``,
``build_application``) constructs the worker pool, the cache, the lanes, the inline-call
policy and the JWKS cache and passes them in, then constructs the services that need the application itself (the
scheduler with its lease, file storage, the search and vector index kinds) and installs them
with :meth:`Application.install` before anything runs (docs/internals/overview.md).

Queries and mutations are synchronous Python and run in worker threads (so a slow function
never blocks the event loop beyond the GIL's switch interval, and its time limit can stop
it); actions are coroutines on the event loop. Everything public here is a coroutine called
on the event loop, except ``latest_ts``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

from convection import knobs
from convection.application.cache import CacheEntry, CacheHandle, CacheKey, QueryCache
from convection.application.inline import InlinePolicy
from convection.application.interface import AuthFailure, FunctionKind, QueryRun
from convection.application.lanes import Lanes
from convection.application.scheduler import SchedulerExecutor
from convection.auth.errors import AuthError
from convection.auth.jwks import JwksCache
from convection.auth.verifier import TokenVerifier
from convection.database.database import Database
from convection.database.transaction import SystemView
from convection.errors import ConvexError, DatabaseError, StorageFailure
from convection.files.service import FileStorage
from convection.functions.calllog import CallSink
from convection.functions.context import ActionHost
from convection.functions.identity import ANONYMOUS, Identity
from convection.functions.loader import LoadedApp
from convection.functions.outcome import FunctionOutcome
from convection.functions.paths import canonical_path
from convection.functions.references import function_path
from convection.functions.runner import FunctionCallError, Runner
from convection.search.service import SearchKind
from convection.values.json import dumps, loads
from convection.vector.service import VectorKind

MUTATION_RESULTS_TABLE = "_mutation_results"

logger = logging.getLogger(__name__)
T = TypeVar("T")

_KEY_MEMO_SIZE = 4096
_KEY_MEMO_MAX_ARGS_BYTES = 1024


def derive_admin_key(secret: bytes, instance_name: str = "convection") -> str:
    mac = hmac.new(secret, b"convection-admin-key|" + instance_name.encode(), hashlib.sha256).hexdigest()
    return f"{instance_name}|{mac}"


class Application:
    """Implements ``ApplicationInterface`` (application/interface.py). Constructed by the
    composition root (``server/compose.py``): ``__init__`` receives the worker pool
    (``executor``), the query cache, the per-path lanes, the inline-call policy and the JWKS
    cache; :meth:`install`
    then receives the services built on the application (scheduler, files, search, vector)."""

    # Installed by the composition root (install) right after construction.
    scheduler: SchedulerExecutor
    files: FileStorage
    text_search: SearchKind
    vector_search: VectorKind

    def __init__(
        self,
        db: Database,
        app: LoadedApp,
        *,
        executor: ThreadPoolExecutor,
        cache: QueryCache,
        lanes: Lanes,
        inline: InlinePolicy,
        jwks: JwksCache,
        secret: bytes | None = None,
        redact_errors: bool = False,
        on_log: Callable[[str, str, list[str]], None] | None = None,
        on_call: CallSink | None = None,
    ) -> None:
        self.db = db
        self.secret = secret or os.urandom(32)
        self.admin_key = derive_admin_key(self.secret)
        self.redact_errors = redact_errors
        self.on_log = on_log
        self.on_call = on_call
        self.cache = cache
        self.executor = executor
        self._inflight: dict[CacheKey, asyncio.Future[CacheEntry | None]] = {}
        # One function path may hold only part of the pool (application/lanes.py).
        self.inline = inline
        self.lanes = lanes
        self._refreshing: set[asyncio.Task[None]] = set()
        # id(args) -> (args, path, canonical path, encoded args): every socket's Transition
        # looks its queries up again with the same args objects (fan-out).
        self._key_memo: dict[int, tuple[Any, str, str, bytes]] = {}
        self.jwks = jwks
        self.verifier = self._make_verifier(app)
        self.runner = Runner(db, app, redact_errors=redact_errors, on_log=on_log, on_call=on_call)
        self.loaded = app
        self.host = _ActionHost(self)
        db.set_schema(app.schema)
        self._ensure_system_tables()
        db.add_maintenance_hook(self.prune_mutation_results)
        self._ctx_decorators: list[Callable[[Any, SystemView | None], None]] = []

    def install(
        self,
        *,
        scheduler: SchedulerExecutor,
        files: FileStorage,
        text_search: SearchKind,
        vector_search: VectorKind,
    ) -> None:
        """Take the services built on this application (by the composition root, once, before
        anything runs): scheduled functions and crons (``ctx.scheduler``), file storage
        (``ctx.storage``, the ``_storage`` table), full-text search (``Query.with_search_index``)
        and vector search (``ctx.vector_search``). Their ctx members are added by the
        decorators in ``_ctx_decorators``, run on every ctx the runner builds."""
        self.scheduler = scheduler
        self.files = files
        self.text_search = text_search
        self.vector_search = vector_search
        self._ctx_decorators = [scheduler.decorate_ctx, files.decorate_ctx, vector_search.decorate_ctx]
        self.runner.decorate_ctx = self._decorate_ctx

    def _decorate_ctx(self, ctx: Any, system: SystemView | None) -> None:
        for decorate in self._ctx_decorators:
            decorate(ctx, system)

    async def start(self) -> None:
        """Start the background services (scheduler and crons). The server calls it once its
        event loop runs; ``stop()`` before ``close()``."""
        await self.scheduler.start()
        await self.files.start()

    async def stop(self) -> None:
        await self.scheduler.stop()
        await self.files.stop()

    def cron_logs(self, name: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The newest cron run logs (of one job, or all), newest first (admin)."""
        return self.scheduler.cron_logs(name, limit)

    def prune_mutation_results(self) -> int:
        """Forget stored mutation results older than ``MUTATION_RESULT_RETENTION_MS`` (a client
        resending after that long gets its mutation run again). Returns how many went."""
        from convection.database.query import Query

        cutoff = self.db.clock.now_ms() - knobs.MUTATION_RESULT_RETENTION_MS
        removed = 0
        while True:
            txn = self.db.begin()
            system = SystemView(txn)
            old = Query(txn, MUTATION_RESULTS_TABLE).with_index(
                "by_creation_time", lambda q: q.lt("_creationTime", cutoff)
            ).take(500)
            for doc in old:
                system.delete(doc["_id"])
            if not old:
                return removed
            self.db.commit(txn)
            removed += len(old)

    def _ensure_system_tables(self) -> None:
        self.db.ensure_system_table(MUTATION_RESULTS_TABLE, {"by_request": ("sessionId", "requestId")})

    # --- code -------------------------------------------------------------------------------
    def set_app(self, app: LoadedApp) -> None:
        """Make ``app`` the code in force (after its schema was checked by the push flow).

        Raises AuthConfigError (nothing changes) when its ``auth_config.py`` is invalid."""
        verifier = self._make_verifier(app)
        runner = Runner(
            self.db, app, redact_errors=self.redact_errors, on_log=self.on_log, stats=self.runner.stats, on_call=self.on_call
        )
        runner.decorate_ctx = self.runner.decorate_ctx
        self.db.set_schema(app.schema)
        self.runner = runner
        self.loaded = app
        self.verifier = verifier
        self.cache.invalidate_all(self.latest_ts())
        self.scheduler.sync_crons(app)

    def latest_ts(self) -> int:
        return self.db.latest_ts()

    def bump_ts(self, ts: int) -> None:
        self.db.bump_ts(ts)

    _loop: asyncio.AbstractEventLoop | None = None

    def _deliver(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the event loop (called from the committer thread)."""
        loop = self._loop
        if loop is None:
            fn()
            return
        try:
            loop.call_soon_threadsafe(fn)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            pass

    async def _in_thread(self, fn: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, fn)

    run_blocking = _in_thread
    """``fn`` in the function worker pool (file storage's blocking work uses it too)."""

    async def _in_lane(self, path: Any, fn: Callable[[], Any]) -> Any:
        """``fn`` in the worker pool, admitted through the lane of function ``path``."""
        try:
            key = canonical_path(path)
        except Exception:
            key = str(path)
        try:
            return await self.lanes.run(key, lambda: self._in_thread(fn))
        except StorageFailure as exc:
            self.db.committer.storage_failed(exc)  # /health reports it until a probe succeeds
            raise

    # --- queries ----------------------------------------------------------------------------
    async def subscribe_query(
        self, path: str, args: Any, identity: Identity, journal: str | None, ts: int
    ) -> QueryRun:
        self.check_identity(identity)
        entry = await self._cached_query(path, args, identity, journal, ts)
        handle = CacheHandle(self.cache, entry)
        return QueryRun(outcome=entry.outcome, fingerprint=entry.fingerprint, subscription=handle, shared=entry)

    def cached_query_run(
        self, path: str, args: Any, identity: Identity, journal: str | None, ts: int
    ) -> QueryRun | None:
        if ts > self.latest_ts():
            return None
        try:
            self.check_identity(identity)
        except Exception:
            return None  # subscribe_query reports it
        shared_key, own_key = self._keys(path, args, identity, journal)
        entry = self.cache.lookup(shared_key, ts) or self.cache.lookup(own_key, ts)
        if entry is None:
            return None
        handle = CacheHandle(self.cache, entry)
        return QueryRun(outcome=entry.outcome, fingerprint=entry.fingerprint, subscription=handle, shared=entry)

    def _keys(self, path: str, args: Any, identity: Identity, journal: str | None) -> tuple[CacheKey, CacheKey]:
        memo = self._key_memo
        hit = memo.get(id(args))
        if hit is not None and hit[0] is args and hit[1] == path:
            p, a = hit[2], hit[3]
        else:
            try:
                p = canonical_path(path)
            except Exception:
                p = path
            a = dumps(args)
            if len(a) <= _KEY_MEMO_MAX_ARGS_BYTES:
                if len(memo) >= _KEY_MEMO_SIZE:
                    memo.clear()
                # Holding ``args`` keeps its id from being reused while the memo has it.
                memo[id(args)] = (args, path, p, a)
        return (p, a, None, journal), (p, a, identity.cache_key, journal)

    async def _cached_query(
        self, path: str, args: Any, identity: Identity, journal: str | None, ts: int
    ) -> CacheEntry:
        latest = self.latest_ts()
        if ts > latest:
            # Neither a cached entry nor a run may answer for a ts nobody committed yet: a
            # commit in flight below it could still change the result.
            raise DatabaseError(
                f"Timestamp {ts} is in the future (the latest commit is at {latest})",
                code="TooEarly",
            )
        shared_key, own_key = self._keys(path, args, identity, journal)
        while True:
            entry = self.cache.lookup(shared_key, ts) or self.cache.lookup(own_key, ts)
            if entry is not None:
                return entry
            fut = self._inflight.get(own_key)
            if fut is not None:
                got = await asyncio.shield(fut)
                if got is not None and got.valid_at(ts):
                    return got
                continue
            loop = asyncio.get_running_loop()
            self._loop = loop
            fut = loop.create_future()
            self._inflight[own_key] = fut
            args_bytes = len(shared_key[1])
            key = shared_key[0]
            generation = self.cache.generation
            try:
                if self.inline.allows(key):
                    # Short queries run here, on the loop: no worker-thread hand-off.
                    cpu, wall = time.thread_time(), time.perf_counter()
                    try:
                        entry = self._execute_query(path, args, identity, journal, ts, args_bytes)
                    except StorageFailure as exc:
                        self.db.committer.storage_failed(exc)
                        raise
                    self.inline.observe(key, time.thread_time() - cpu, time.perf_counter() - wall, True)
                else:
                    entry = cast(
                        CacheEntry,
                        await self._in_lane(
                            path,
                            lambda: self._timed(
                                key, lambda: self._execute_query(path, args, identity, journal, ts, args_bytes)
                            ),
                        ),
                    )
                if self.cache.generation != generation:
                    # invalidate_all (env vars, code) ran meanwhile: not cached, and anyone
                    # subscribing to this result reruns it.
                    entry.subscription.force_invalidate(self.latest_ts())
                elif entry.outcome.success:
                    self.cache.store(own_key if entry.identity_read else shared_key, entry)
                fut.set_result(entry)
                return entry
            except BaseException as exc:
                fut.set_result(None)
                raise exc
            finally:
                self._inflight.pop(own_key, None)

    def _execute_query(
        self, path: str, args: Any, identity: Identity, journal: str | None, ts: int, args_bytes: int = 0
    ) -> CacheEntry:
        self.cache.misses += 1
        ex = self.runner.run_query(path, args, identity, ts=ts, journal=journal)
        sub = self.db.subscribe(ex.read_set, ex.outcome.ts or ts)
        entry = CacheEntry(
            ex.outcome, sub, ex.identity_read, ex.time_read, deliver=self._deliver,
            request=(path, args, identity, journal), args_bytes=args_bytes,
            on_invalidated=self._entry_invalidated,
        )
        self.cache.track(entry)
        return entry

    def _entry_invalidated(self, entry: CacheEntry) -> None:
        """On the event loop: a commit invalidated ``entry``. Fan-out: when sockets watch it
        and it was a cached success, rerun the query once (single-flight, into the cache)
        before waking them, so each socket's Transition is a cache hit that splices the
        shared encoded result instead of N sockets waiting on one run."""
        if not entry.has_subscribers or not entry.outcome.success or entry.request is None:
            self.cache.discard(entry)
            entry.fire()
            return
        self.cache.discard(entry)
        loop = self._loop
        if loop is None or loop.is_closed():
            entry.fire()
            return
        task = loop.create_task(self._refresh(entry))
        self._refreshing.add(task)
        task.add_done_callback(self._refreshing.discard)

    async def _refresh(self, entry: CacheEntry) -> None:
        path, args, identity, journal = entry.request
        try:
            await self._cached_query(path, args, identity, journal, self.latest_ts())
        except Exception:  # the subscribers rerun it themselves and report the failure
            logger.debug("refreshing %s failed", path, exc_info=True)
        finally:
            entry.fire()

    async def run_query(self, path: str, args: Any, identity: Identity, *, ts: int | None = None) -> FunctionOutcome:
        self.check_identity(identity)
        return await self._query_public(path, args, identity, ts=ts)

    # --- mutations --------------------------------------------------------------------------
    async def run_mutation(
        self,
        path: str,
        args: Any,
        identity: Identity,
        *,
        idempotency_key: tuple[str, int] | None = None,
    ) -> FunctionOutcome:
        self.check_identity(identity)
        try:
            lane = canonical_path(path)
        except Exception:
            lane = str(path)
        if self.inline.allows(lane):
            # A short mutation runs here, on the loop, and awaits its commit; if that attempt
            # conflicts it runs again the usual way, with its retries, in a worker thread.
            check_first, before_commit = self._idempotency(idempotency_key)
            try:
                outcome = await self.runner.run_mutation_inline(
                    path, args, identity, check_first=check_first, before_commit=before_commit,
                    on_ran=lambda cpu, wall: self.inline.observe(lane, cpu, wall, True),
                )
            except StorageFailure as exc:
                self.db.committer.storage_failed(exc)
                raise
            if outcome is not None:
                return outcome
        return await self._in_lane(  # type: ignore[no-any-return]
            # Timed per attempt, without the commit: a pool run's wall time includes waiting for
            # the group commit, which under load is no evidence that the function blocks.
            path, lambda: self._mutation_sync(
                path, args, identity, idempotency_key,
                on_ran=lambda cpu, wall: self.inline.observe(lane, cpu, wall, False),
            )
        )

    def _timed(self, lane: str, fn: Callable[[], T]) -> T:
        """``fn()`` in a worker thread, its CPU time reported to the inline policy."""
        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            return fn()
        finally:
            self.inline.observe(lane, time.thread_time() - cpu, time.perf_counter() - wall, False)

    def _mutation_sync(
        self, path: Any, args: Any, identity: Identity | None, key: tuple[str, int] | None,
        on_ran: Callable[[float, float], None] | None = None,
    ) -> FunctionOutcome:
        check_first, before_commit = self._idempotency(key)
        return self.runner.run_mutation(
            path, args, identity, check_first=check_first, before_commit=before_commit, on_ran=on_ran
        )

    def _idempotency(
        self, key: tuple[str, int] | None
    ) -> tuple[
        Callable[[SystemView], FunctionOutcome | None] | None,
        Callable[[SystemView, FunctionOutcome], None] | None,
    ]:
        """``(check_first, before_commit)`` of a mutation sent with ``(sessionId, requestId)``:
        answer a resend from the stored result; store the result in the same commit. (The
        lookup runs on every connection: a client may resend on a new socket with the same
        session and ``connectionCount`` 0, and the lookup's read is what makes a racing
        resend conflict.)"""
        if key is None:
            return None, None
        session, request = key

        def lookup(system: SystemView) -> FunctionOutcome | None:
            from convection.database.query import Query

            txn = system.txn
            q = Query(txn, MUTATION_RESULTS_TABLE).with_index(
                "by_request", lambda r: r.eq("sessionId", session).eq("requestId", float(request))
            )
            doc = q.first()
            if doc is None:
                return None
            rev = txn.db.persistence.get_document(*_split_id(doc["_id"]), txn.begin_ts)
            value = loads(doc["value"])
            return FunctionOutcome(
                success=True, value=value, value_json=dumps(value), log_lines=list(doc.get("logLines", [])),
                ts=rev.ts if rev is not None else txn.begin_ts,
            )

        def store(system: SystemView, outcome: FunctionOutcome) -> None:
            system.insert(
                MUTATION_RESULTS_TABLE,
                {
                    "sessionId": session,
                    "requestId": float(request),
                    "value": outcome.value_json.decode(),
                    "logLines": outcome.log_lines,
                },
            )

        return lookup, store

    # --- actions ----------------------------------------------------------------------------
    async def run_action(self, path: str, args: Any, identity: Identity) -> FunctionOutcome:
        self.check_identity(identity)
        return await self.runner.run_action(path, args, identity, self.host)

    async def _query_public(self, path: Any, args: Any, identity: Identity, *, ts: int | None) -> FunctionOutcome:
        at = self.latest_ts() if ts is None else ts
        try:
            entry = await self._cached_query(path, args, identity, None, at)
        except StorageFailure:
            raise  # the store failed, not the function: HTTP 503, not a function error
        except Exception as exc:
            return FunctionOutcome(success=False, error_message=str(exc))
        # A one-shot caller holds the entry only for this answer: take and drop a reference,
        # so an entry the cache did not keep (an error, an evicted result) releases its
        # database subscription now instead of never.
        CacheHandle(self.cache, entry).close()
        return entry.outcome

    async def run_function(
        self, path: str, args: Any, identity: Identity, *, kind: FunctionKind | None = None
    ) -> FunctionOutcome:
        self.check_identity(identity)
        try:
            spec = self.runner.resolve(path, identity, kind)
        except FunctionCallError as exc:
            return FunctionOutcome(success=False, error_message=exc.message)
        if spec.kind == "query":
            return await self._query_public(spec.path, args, identity, ts=None)
        if spec.kind == "mutation":
            return await self.run_mutation(spec.path, args, identity)
        return await self.run_action(spec.path, args, identity)

    async def run_http_action(self, request: Any, path: str, identity: Identity) -> Any:
        """Route an HTTP request to the app's ``http.py`` router. Returns a Starlette
        Response (404 when no route matches, 500 when the action fails)."""
        from starlette.responses import PlainTextResponse, Response

        from convection.functions.runner import run_http_action

        router = self.loaded.http
        method = request.method.upper()
        lookup_method = "GET" if method == "HEAD" else method
        route = router.lookup(lookup_method, path) if router is not None else None
        if route is None:
            return PlainTextResponse("No matching routes found", status_code=404)
        result, _lines, exc = await run_http_action(self.runner, route.handler, request, identity, self.host)
        if exc is not None:
            if self.redact_errors and not identity.is_admin:
                return PlainTextResponse("Server Error", status_code=500)
            return PlainTextResponse(f"Server Error\nUncaught {type(exc).__name__}: {exc}", status_code=500)
        if not isinstance(result, Response):
            return PlainTextResponse(
                f"HTTP action {route.pattern} returned {type(result).__name__}, not a Response "
                "(return a starlette Response, e.g. JSONResponse)",
                status_code=500,
            )
        if method == "HEAD":
            result.body = b""
        return result

    # --- auth -------------------------------------------------------------------------------
    def check_admin_key(self, key: str) -> bool:
        return hmac.compare_digest(key.encode(), self.admin_key.encode())

    async def authenticate(
        self, token_type: str, value: str | None, impersonating: dict[str, Any] | None
    ) -> Identity:
        if token_type == "None":
            return ANONYMOUS
        if token_type == "Admin":
            if not value or not self.check_admin_key(value):
                raise AuthFailure("The provided admin key is invalid for this deployment", code="BadAdminKey")
            if impersonating:
                attrs = dict(impersonating)
                if "tokenIdentifier" not in attrs:
                    if "issuer" not in attrs or "subject" not in attrs:
                        raise AuthFailure("impersonating needs tokenIdentifier, or issuer and subject")
                    attrs["tokenIdentifier"] = f"{attrs['issuer']}|{attrs['subject']}"
                return Identity(kind="admin", attributes=attrs)
            return Identity(kind="admin")
        if token_type == "User":
            return await self.verify_user_token(value or "")
        raise AuthFailure(f"Unknown tokenType {token_type!r}")

    async def verify_user_token(self, token: str) -> Identity:
        """Verify a user JWT against the app's auth providers (auth/verifier.py)."""
        try:
            attributes = await self.verifier.verify(token)
        except AuthError as exc:
            raise AuthFailure(exc.message, code=exc.code) from None
        return Identity(kind="user", attributes=attributes, token=token)

    def check_identity(self, identity: Identity) -> None:
        """Raise AuthFailure ``TokenExpired`` when a user identity's token has expired since it
        was accepted (a socket keeps its identity until the client re-authenticates: its
        next request or Transition then gets an AuthError and the client fetches a fresh
        token). Admin and anonymous identities never expire."""
        if identity.kind != "user" or not identity.token:
            return
        try:
            self.verifier.check_unexpired(identity.token)
        except AuthError as exc:
            raise AuthFailure(exc.message, code=exc.code) from None

    def _make_verifier(self, app: LoadedApp) -> TokenVerifier:
        clock = self.db.clock
        return TokenVerifier(app.auth_providers, jwks=self.jwks, now=lambda: clock.now_ms() / 1000)

    def close(self) -> None:
        self.vector_search.close()
        self.cache.clear()
        self.files.close()
        self.executor.shutdown(wait=False, cancel_futures=True)


class _ActionHost(ActionHost):
    """What an action's ``ctx.run_query/run_mutation/run_action`` call: each its own
    transaction; results come back as values, failures as raised errors."""

    def __init__(self, app: Application) -> None:
        self._app = app

    @staticmethod
    def _value(outcome: FunctionOutcome) -> Any:
        if outcome.success:
            return outcome.value
        if outcome.has_error_data:
            raise ConvexError(outcome.error_data)
        raise FunctionCallError(outcome.error_message)

    async def run_query(self, ref: Any, args: Any, identity: Identity | None) -> Any:
        app = self._app
        path = function_path(ref)
        ex = await app._in_lane(path, lambda: app.runner.run_query(path, args or {}, _system_view(identity)))
        return self._value(ex.outcome)

    async def run_mutation(self, ref: Any, args: Any, identity: Identity | None) -> Any:
        app = self._app
        path = function_path(ref)
        outcome = await app._in_lane(path, lambda: app.runner.run_mutation(path, args or {}, _system_view(identity)))
        return self._value(outcome)

    async def run_action(self, ref: Any, args: Any, identity: Identity | None) -> Any:
        app = self._app
        outcome = await app.runner.run_action(function_path(ref), args or {}, _system_view(identity), self)
        return self._value(outcome)


def _system_view(identity: Identity | None) -> Identity | None:
    """Calls from inside functions may reach internal functions: they run with the caller's
    user identity but with system visibility."""
    if identity is None:
        return None
    if identity.kind == "admin":
        return identity
    return Identity(kind="admin", attributes=identity.attributes, token=identity.token) if identity.attributes else None


def _split_id(id_str: str) -> tuple[int, bytes]:
    from convection.values.ids import decode_id

    return decode_id(id_str)
