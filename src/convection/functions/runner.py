"""The runner: executes one registered function with validation, limits, log capture and
error mapping, producing a :class:`FunctionOutcome`.

Queries run in a read-only transaction at a given snapshot; mutations run in a transaction
that is committed (with OCC retries, docs/internals/transactions.md); actions are coroutines (or plain
functions run by the caller in a worker thread). User errors never escape: every failure is
an outcome with a client-facing message (full text and traceback; with ``redact_errors``, as
``convection serve`` sets by default, only ``Server Error`` and the request id for callers
that are not admins) and, for :class:`ConvexError`, its data.

Synchronous entry points block: the application calls them from worker threads.
"""

from __future__ import annotations

import logging
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from convection import knobs
from convection.database.committer import OrderHeld
from convection.database.database import Database
from convection.database.readset import FrozenReadSet
from convection.database.retry import Discard, run_in_transaction
from convection.database.transaction import SystemView, Transaction
from convection.errors import (
    ConvectionError,
    ConvexError,
    OccConflict,
    StorageFailure,
    ValidationError,
    is_user_file,
)
from convection.functions.calllog import CallSink, record_call, record_http_call
from convection.functions.context import ActionCtx, ActionHost, MutationCtx, QueryCtx
from convection.functions.identity import Identity
from convection.functions.limits import WATCHDOG, FunctionTimeout
from convection.functions.loader import FunctionSpec, LoadedApp
from convection.functions.logs import begin_capture, end_capture, server_log
from convection.functions.mistakes import explain, function_location
from convection.functions.outcome import FunctionOutcome
from convection.functions.paths import display_path
from convection.functions.references import function_path
from convection.functions.system import PREFIX as SYSTEM_PREFIX
from convection.functions.system import system_function
from convection.stats import CallStats
from convection.values.json import dumps
from convection.values.model import normalize

CtxT = TypeVar("CtxT", bound=QueryCtx)
log = logging.getLogger("convection.functions")

_KIND_NAMES = {"query": "Query", "mutation": "Mutation", "action": "Action", "httpAction": "HttpAction"}


class FunctionCallError(ConvectionError):
    """A function-level failure that is reported to the caller as an outcome."""

    code = "FunctionError"


@dataclass
class QueryExecution:
    """A query's outcome plus what the cache and subscriptions need."""

    outcome: FunctionOutcome
    read_set: FrozenReadSet
    identity_read: bool
    time_read: bool


def request_id() -> str:
    # 64 random bits from the shared generator: unique enough to find a call in the logs,
    # and no os.urandom syscall per call as uuid4 had (bench/RESULTS.md, W1 profile).
    return f"{random.getrandbits(64):016x}"


class Runner:
    """Executes functions of a loaded app against a database. Thread-safe.

    ``stats`` counts every execution by kind and outcome with its latency (``/metrics``);
    pass the previous runner's ``stats`` when new code replaces it."""

    def __init__(
        self,
        db: Database,
        app: LoadedApp,
        *,
        redact_errors: bool = False,
        on_log: Callable[[str, str, list[str]], None] | None = None,
        stats: CallStats | None = None,
        on_call: CallSink | None = None,
    ) -> None:
        self.db = db
        self.app = app
        self.stats = stats if stats is not None else CallStats()
        self.redact_errors = redact_errors
        self.on_log = on_log
        self.on_call = on_call  # one CallRecord per call: the call log (functions/calllog.py)
        # Hooks the application installs (scheduler, storage) on every ctx: they get the
        # system view of the call's transaction (None for actions), never the user's ctx.db.
        self.decorate_ctx: Callable[[Any, SystemView | None], None] | None = None

    # --- lookup --------------------------------------------------------------------------------
    def resolve(self, path_or_ref: Any, identity: Identity | None, kind: str | None) -> FunctionSpec:
        """The function at a path, visible to the caller, of the expected kind; raises
        FunctionCallError with Convex's messages otherwise."""
        try:
            path = function_path(path_or_ref)
        except ConvectionError:
            path = str(path_or_ref)
        spec = system_function(path) if path.startswith(SYSTEM_PREFIX) else self.app.get(path)
        # identity None = a system caller (scheduler, crons, other functions): sees everything.
        privileged = identity is None or identity.is_admin
        if spec is None or spec.kind == "httpAction" or (spec.visibility == "internal" and not privileged):
            shown = display_path(path) if ":" in path or "/" in path else path
            raise FunctionCallError(f"Could not find public function for '{shown}'.", code="FunctionNotFound")
        if kind is not None and spec.kind != kind:
            raise FunctionCallError(
                f"Trying to execute {display_path(spec.path)} as {_KIND_NAMES.get(kind, kind)}, "
                f"but it is defined as {_KIND_NAMES.get(spec.kind, spec.kind)}.",
                code="WrongFunctionKind",
            )
        return spec

    # --- outcomes --------------------------------------------------------------------------------
    def _error(
        self, exc: BaseException, rid: str, logs: list[str], identity: Identity | None = None
    ) -> FunctionOutcome:
        """The outcome of a failed call. With ``redact_errors`` a non-admin caller gets only
        ``Server Error`` and the request id (the full text goes to the server log, under the
        same request id); admins and system callers (``identity`` None) get everything."""
        if isinstance(exc, ConvexError):
            data = normalize_safe(exc.data)
            return FunctionOutcome(
                success=False,
                error_message=f"[Request ID: {rid}] Server Error\nUncaught ConvexError: {exc}\n",
                has_error_data=True,
                error_data=data,
                error_data_json=dumps(data),
                log_lines=logs,
                error_code="ConvexError",
            )
        if isinstance(exc, FunctionCallError):
            return FunctionOutcome(success=False, error_message=exc.message, log_lines=logs, error_code=exc.code)
        if isinstance(exc, StorageFailure):
            raise exc
        tb = exc.__traceback__
        exc = explain(exc) or exc  # a known mistake (missing await) says so
        code = exc.code if isinstance(exc, ConvectionError) else type(exc).__name__
        full = self._full_message(exc, rid, tb)
        if self.redact_errors and identity is not None and not identity.is_admin:
            server_log(log, logging.WARNING, "function error, redacted for the caller: %s", full.rstrip())
            return FunctionOutcome(success=False, error_message=f"[Request ID: {rid}] Server Error", log_lines=logs, error_code=code)
        return FunctionOutcome(success=False, error_message=full, log_lines=logs, error_code=code)

    @staticmethod
    def _full_message(exc: BaseException, rid: str, tb: TracebackType | None) -> str:
        """``tb``: the traceback of the original exception (``exc`` may be its explanation)."""
        name = exc.code if isinstance(exc, ConvectionError) else type(exc).__name__
        if isinstance(exc, ValidationError) and getattr(exc, "_arguments", False):
            name = "ArgumentValidationError"
        frames = traceback.extract_tb(tb)
        user_frames = [f for f in frames if is_user_file(f.filename)]
        text = "".join(
            f"    at {f.name} ({f.filename}:{f.lineno})\n" for f in reversed(user_frames)
        )
        return f"[Request ID: {rid}] Server Error\nUncaught {name}: {exc}\n{text}"

    def _success(self, value: Any, spec: FunctionSpec, logs: list[str]) -> FunctionOutcome:
        rv = spec.function.returns_validator
        if rv is not None:
            try:
                value = rv.check(value, "", id_checker=None)
            except ValidationError as exc:
                raise FunctionCallError(
                    f"ReturnsValidationError: the value returned by {display_path(spec.path)} does "
                    f"not match its returns validator: {exc.message}",
                    code="ReturnsValidationError",
                ) from None
        else:
            try:
                value = normalize(value)
            except ConvectionError as exc:
                raise FunctionCallError(
                    f"The value returned by {display_path(spec.path)} "
                    f"({function_location(spec.function.handler)}) cannot be sent to the "
                    f"client: {exc.message}",
                    code=exc.code,
                ) from None
        value_json = dumps(value)
        # The encoded size bounds the value's size (JSON is never smaller than the value's
        # accounting by more than a few bytes per field), and it is computed anyway.
        if len(value_json) > knobs.MAX_FUNCTION_RESULT_SIZE_BYTES:
            raise FunctionCallError(
                f"The value returned by {display_path(spec.path)} is larger than "
                f"{knobs.MAX_FUNCTION_RESULT_SIZE_BYTES} bytes",
                code="ResultTooLarge",
            )
        return FunctionOutcome(success=True, value=value, value_json=value_json, log_lines=logs)

    def _check_args(self, spec: FunctionSpec, args: Any, txn: Transaction | None) -> dict[str, Any]:
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise FunctionCallError(
                f"ArgumentValidationError: arguments of {display_path(spec.path)} must be an object, got {type(args).__name__}",
                code="ArgumentValidationError",
            )
        av = spec.function.args_validator
        if av is None:
            return normalize(args)  # type: ignore[no-any-return]
        checker = None if txn is None else txn.id_belongs_to
        try:
            return av.check(args, "", id_checker=checker)  # type: ignore[no-any-return]
        except ValidationError as exc:
            raise FunctionCallError(
                f"ArgumentValidationError: {exc.message}\nFunction: {display_path(spec.path)}",
                code="ArgumentValidationError",
            ) from None

    def _log(self, spec: FunctionSpec, lines: list[str]) -> None:
        if self.on_log is not None and lines:
            self.on_log(spec.path, spec.kind, lines)

    # --- contexts ------------------------------------------------------------------------------
    def make_ctx(
        self, cls: type[CtxT], system: SystemView, identity: Identity | None, now_ms: float, seed: int, depth: int
    ) -> CtxT:
        """A query or mutation ctx over ``system.txn`` at nesting ``depth`` (0 = the call the
        client made), decorated with the application's services."""
        ctx = cls(system.txn, identity, now_ms, seed, _NestedCalls(self, system, depth, now_ms))
        if self.decorate_ctx is not None:
            self.decorate_ctx(ctx, system)
        return ctx

    # --- queries ---------------------------------------------------------------------------------
    def run_query(
        self,
        path: Any,
        args: Any,
        identity: Identity | None,
        *,
        ts: int | None = None,
        journal: str | None = None,
    ) -> QueryExecution:
        started = time.perf_counter()
        ex = self._run_query(path, args, identity, ts=ts, journal=journal)
        self.stats.record("query", ex.outcome.success, time.perf_counter() - started)
        record_call(self.on_call, "query", path, identity, ex.outcome, started)
        return ex

    def _run_query(
        self,
        path: Any,
        args: Any,
        identity: Identity | None,
        *,
        ts: int | None,
        journal: str | None,
    ) -> QueryExecution:
        rid = request_id()
        cap, token = begin_capture()
        txn: Transaction | None = None
        spec: FunctionSpec | None = None
        try:
            spec = self.resolve(path, identity, "query")
            txn = self.db.begin(read_only=True, ts=ts)
            txn.journal_in = journal
            txn.source = spec.path
            checked = self._check_args(spec, args, txn)
            ctx = self.make_ctx(QueryCtx, SystemView(txn), identity, self.db.clock.now_ms(), random.getrandbits(63), 0)
            handler = spec.function.handler
            value = WATCHDOG.run(lambda: handler(ctx, **checked), knobs.QUERY_TIMEOUT_MS / 1000, f"Query {display_path(spec.path)}")
            outcome = self._success(value, spec, cap.finish())
            outcome.ts = txn.begin_ts
            outcome.journal = txn.journal_out
            return QueryExecution(outcome, txn.reads.freeze(), ctx.observer.identity_read, ctx.observer.time_read)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            outcome = self._error(exc, rid, cap.finish(), identity)
            outcome.ts = txn.begin_ts if txn is not None else self.db.latest_ts()
            rs = txn.reads.freeze() if txn is not None else FrozenReadSet({})
            return QueryExecution(outcome, rs, True, False)
        finally:
            end_capture(token)
            if spec is not None:
                self._log(spec, cap.lines)

    # --- mutations -------------------------------------------------------------------------------
    def run_mutation(
        self,
        path: Any,
        args: Any,
        identity: Identity | None,
        *,
        before_commit: Callable[[SystemView, FunctionOutcome], None] | None = None,
        check_first: Callable[[SystemView], FunctionOutcome | None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_retries: int | None = None,
        on_ran: Callable[[float, float], None] | None = None,
    ) -> FunctionOutcome:
        """Run a mutation to completion. ``check_first(system)`` may answer from a stored
        result (idempotency); ``before_commit(system, outcome)`` may add writes to the same
        transaction (the stored result). Both get the transaction's system view.
        ``on_ran(cpu, wall)`` gets the seconds each attempt's function run took (CPU on this
        thread, and wall), not counting the commit: waiting for the group commit is not the
        function's own work."""
        started = time.perf_counter()
        outcome = self._run_mutation(path, args, identity, before_commit, check_first, sleep, max_retries, on_ran)
        self.stats.record("mutation", outcome.success, time.perf_counter() - started)
        record_call(self.on_call, "mutation", path, identity, outcome, started)
        return outcome

    async def run_mutation_inline(
        self,
        path: Any,
        args: Any,
        identity: Identity | None,
        *,
        before_commit: Callable[[SystemView, FunctionOutcome], None] | None = None,
        check_first: Callable[[SystemView], FunctionOutcome | None] | None = None,
        on_ran: Callable[[float, float], None] | None = None,
    ) -> FunctionOutcome | None:
        """One optimistic attempt of a mutation on the calling thread (the event loop): the
        function runs here and its commit is awaited, not blocked on, so a short mutation
        costs no worker-thread hand-off. None when that attempt conflicted or the serialized
        lane was held: nothing was applied, and the caller runs the mutation the usual way
        (:meth:`run_mutation` in a worker thread, with its retries). ``on_ran(cpu, wall)``
        gets the seconds the function itself took: CPU on this thread, and wall."""
        started = time.perf_counter()
        attempt, attempt_lines, rid = self._mutation_attempt(path, args, identity, before_commit, check_first)
        cpu = time.thread_time()
        txn = self.db.begin()
        result = attempt(txn)
        if on_ran is not None:
            on_ran(time.thread_time() - cpu, time.perf_counter() - started)
        if isinstance(result, Discard):
            outcome = result.value
        else:
            outcome = result
            try:
                outcome.ts = await self.db.commit_async(txn)
            except (OccConflict, OrderHeld):
                self.stats.occ_retries.inc()
                return None
            except StorageFailure:
                raise
            except Exception as exc:  # the commit failed otherwise
                outcome = self._error(exc, rid, attempt_lines())
        self.stats.record("mutation", outcome.success, time.perf_counter() - started)
        record_call(self.on_call, "mutation", path, identity, outcome, started)
        return outcome

    def _mutation_attempt(
        self,
        path: Any,
        args: Any,
        identity: Identity | None,
        before_commit: Callable[[SystemView, FunctionOutcome], None] | None,
        check_first: Callable[[SystemView], FunctionOutcome | None] | None,
    ) -> tuple[Callable[[Transaction], FunctionOutcome | Discard[FunctionOutcome]], Callable[[], list[str]], str]:
        """``(attempt, lines, request id)``: ``attempt(txn)`` runs the mutation once in
        ``txn`` (for the retry loop); ``lines()`` are the log lines of the latest attempt."""
        rid = request_id()
        lines: list[str] = []

        def attempt(txn: Transaction) -> FunctionOutcome | Discard[FunctionOutcome]:
            nonlocal lines
            spec: FunctionSpec | None = None
            cap, token = begin_capture()
            lines = cap.lines
            try:
                spec = self.resolve(path, identity, "mutation")
                txn.source = spec.path
                system = SystemView(txn)
                if check_first is not None:
                    stored = check_first(system)
                    if stored is not None:
                        return Discard(stored)
                checked = self._check_args(spec, args, txn)
                ctx = self.make_ctx(MutationCtx, system, identity, self.db.clock.now_ms(), random.getrandbits(63), 0)
                handler = spec.function.handler
                value = WATCHDOG.run(lambda: handler(ctx, **checked), knobs.QUERY_TIMEOUT_MS / 1000, f"Mutation {display_path(spec.path)}")
                outcome = self._success(value, spec, cap.finish())
                if before_commit is not None:
                    before_commit(system, outcome)
                return outcome
            except StorageFailure:
                raise
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise
                return Discard(self._error(exc, rid, cap.finish(), identity))
            finally:
                end_capture(token)
                if spec is not None:
                    self._log(spec, cap.lines)

        return attempt, lambda: lines, rid

    def _run_mutation(
        self,
        path: Any,
        args: Any,
        identity: Identity | None,
        before_commit: Callable[[SystemView, FunctionOutcome], None] | None,
        check_first: Callable[[SystemView], FunctionOutcome | None] | None,
        sleep: Callable[[float], None],
        max_retries: int | None,
        on_ran: Callable[[float, float], None] | None = None,
    ) -> FunctionOutcome:
        retries = knobs.MUTATION_MAX_OCC_RETRIES_COUNT if max_retries is None else max_retries
        attempt, lines, rid = self._mutation_attempt(path, args, identity, before_commit, check_first)
        if on_ran is not None:
            run_once, report = attempt, on_ran

            def attempt(txn: Transaction) -> FunctionOutcome | Discard[FunctionOutcome]:
                cpu, wall = time.thread_time(), time.perf_counter()
                try:
                    return run_once(txn)
                finally:
                    report(time.thread_time() - cpu, time.perf_counter() - wall)

        try:
            outcome, ts = run_in_transaction(
                self.db, attempt, max_retries=retries, sleep=sleep,
                on_conflict=lambda _n, _exc: self.stats.occ_retries.inc(),
            )
        except OccConflict as conflict:
            # Rare: the serialized lane excludes this process's commits, so only another
            # process's commits (or a snapshot out of retention) can still conflict there.
            return FunctionOutcome(
                success=False,
                error_message=f"[Request ID: {rid}] Server Error\nThe mutation conflicted with "
                f"concurrent writes of another process sharing the store even in the serialized "
                "lane and was not applied. Retry it, or make it touch fewer hot documents.",
                log_lines=lines(),
                error_code=conflict.code,
            )
        except StorageFailure:
            raise
        except BaseException as exc:  # the commit failed otherwise
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            return self._error(exc, rid, lines())
        if ts is not None:
            outcome.ts = ts
        return outcome

    # --- actions ---------------------------------------------------------------------------------
    async def run_action(self, path: Any, args: Any, identity: Identity | None, host: ActionHost) -> FunctionOutcome:
        started = time.perf_counter()
        outcome = await self._run_action(path, args, identity, host)
        self.stats.record("action", outcome.success, time.perf_counter() - started)
        record_call(self.on_call, "action", path, identity, outcome, started)
        return outcome

    async def _run_action(self, path: Any, args: Any, identity: Identity | None, host: ActionHost) -> FunctionOutcome:
        import asyncio

        rid = request_id()
        cap, token = begin_capture()
        spec: FunctionSpec | None = None
        try:
            spec = self.resolve(path, identity, "action")
            checked = self._check_args(spec, args, None)
            ctx = ActionCtx(host, identity, self.db.clock.now_ms(), random.getrandbits(63))
            if self.decorate_ctx is not None:
                self.decorate_ctx(ctx, None)
            handler = spec.function.handler
            timeout = knobs.ACTION_TIMEOUT_MS / 1000
            if spec.function.is_async:
                value = await asyncio.wait_for(handler(ctx, **checked), timeout)
            else:
                import contextvars

                context = contextvars.copy_context()
                loop = asyncio.get_running_loop()
                value = await loop.run_in_executor(None, lambda: context.run(handler, ctx, **checked))
            return self._success(value, spec, cap.finish())
        except TimeoutError:
            return self._error(FunctionTimeout(f"Action timed out after {knobs.ACTION_TIMEOUT_MS / 1000:g} s"), rid, cap.finish(), identity)
        except StorageFailure:
            raise
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit | asyncio.CancelledError):
                raise
            return self._error(exc, rid, cap.finish(), identity)
        finally:
            end_capture(token)
            if spec is not None:
                self._log(spec, cap.lines)


async def run_http_action(
    runner: Runner, function: Any, request: Any, identity: Identity | None, host: ActionHost
) -> tuple[Any, list[str], BaseException | None]:
    """Run an HTTP action ``handler(ctx, request)``; returns (response or None, log lines,
    the exception if it failed). The server turns the result into an HTTP response."""
    import asyncio

    started = time.perf_counter()
    failed = True
    failure: BaseException | None = None
    cap, token = begin_capture()
    try:
        ctx = ActionCtx(host, identity, runner.db.clock.now_ms(), random.getrandbits(63))
        if runner.decorate_ctx is not None:
            runner.decorate_ctx(ctx, None)
        result = await asyncio.wait_for(function.handler(ctx, request), knobs.ACTION_TIMEOUT_MS / 1000)
        failed = False
        return result, cap.finish(), None
    except StorageFailure:
        raise
    except Exception as exc:
        failure = exc
        return None, cap.finish(), exc
    finally:
        end_capture(token)
        runner.stats.record("httpAction", not failed, time.perf_counter() - started)
        lines = cap.lines
        if runner.on_log is not None and lines:
            runner.on_log(getattr(function, "path", None) or "http", "httpAction", lines)
        record_http_call(runner.on_call, getattr(function, "path", None) or "http", identity, started, lines, failure)


class _NestedCalls:
    """``ctx.run_query``/``ctx.run_mutation`` inside a query or mutation: the call runs in
    the same transaction, one level deeper (at most ``MAX_CALL_DEPTH_COUNT``); a failed nested
    mutation's writes are rolled back. Each ctx holds the one for its own depth."""

    __slots__ = ("_depth", "_now_ms", "_runner", "_system")

    def __init__(self, runner: Runner, system: SystemView, depth: int, now_ms: float) -> None:
        self._runner = runner
        self._system = system
        self._depth = depth
        self._now_ms = now_ms  # nested calls see the same frozen time as the call itself

    def __call__(self, ctx: QueryCtx, ref: Any, args: Any, is_mutation: bool) -> Any:
        if self._depth >= knobs.MAX_CALL_DEPTH_COUNT:
            raise ConvectionError(f"Nested run_query/run_mutation deeper than {knobs.MAX_CALL_DEPTH_COUNT}", code="CallDepthExceeded")
        runner = self._runner
        txn = self._system.txn
        spec = runner.resolve(ref, Identity(kind="admin"), "mutation" if is_mutation else "query")
        checked = runner._check_args(spec, args, txn)
        saved = {k: _copy_write(w) for k, w in txn.writes.items()} if is_mutation else None
        try:
            cls = MutationCtx if is_mutation else QueryCtx
            inner = runner.make_ctx(cls, self._system, ctx.identity, self._now_ms, ctx.random.getrandbits(63), self._depth + 1)
            result = spec.function.handler(inner, **checked)
            ctx.observer.identity_read |= inner.observer.identity_read
            ctx.observer.time_read |= inner.observer.time_read
            return normalize(result)
        except BaseException:
            if saved is not None:
                txn.writes.clear()
                txn.writes.update(saved)
            raise


def normalize_safe(value: Any) -> Any:
    try:
        return normalize(value)
    except ConvectionError:
        return repr(value)


def _copy_write(w: Any) -> Any:
    import copy

    return copy.copy(w)
