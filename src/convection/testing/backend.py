"""``TestBackend``: the real engine in-process on a temporary store, driven from synchronous
test code (docs/testing.md).

A backend owns a temporary data directory (SQLite database, instance secret), a
:class:`~convection.clock.ManualClock`, the deployment built by
:func:`convection.server.compose.open_deployment` (the composition root) and an
asyncio event loop running in a daemon thread. Every public method is synchronous: it hands a
coroutine to that loop and waits for it, so the async :class:`Application` API serves plain
``def test_...`` functions (and async tests too: the backend's loop is not the test's loop).
``close()`` (or leaving the ``with`` block) stops the loop and the engine and deletes the
directory; it is idempotent.

Calls go through the same application facade as the HTTP and sync protocols (query cache,
validation, error mapping). The backend itself calls as an *admin* without a user identity
(tests are privileged: internal functions are reachable; ``ctx.auth.get_user_identity()`` is
None); :meth:`TestBackend.with_identity` gives a view calling as a user (an admin acting as
that user, so internal functions stay reachable).

Outcomes become Python results: the value on success, :class:`~convection.errors.ConvexError`
(with ``.data``) when the function raised one, :class:`FunctionError` (``.message``,
``.code``) for every other failure. Both carry the call's ``log_lines``.

Time never moves by itself: ``advance_time(ms)`` moves the manual clock, drops cached query
results (a query that read ``ctx.now`` must see the new time) and runs ``time_hooks``;
``finish_scheduled_functions()`` runs ``scheduler_hooks`` until none has work left. The
scheduler registers itself in those two lists (see their docs on :class:`TestBackend`); with
no scheduler installed both are no-ops apart from moving the clock.

Subscriptions (:class:`TestSubscription`) are driven by the engine's invalidation: a commit
that writes into a subscribed query's read set marks it invalid before the mutation returns,
so ``.value`` right after a mutation is already the new result, and ``wait_for_change()``
blocks on the invalidation callback (never on a sleep) when the change comes from elsewhere.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime
import fractions
import inspect
import random
import re
import shutil
import tempfile
import threading
import time
import types
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from convection.application.app import Application
from convection.application.interface import QueryRun
from convection.clock import ManualClock
from convection.database.database import Database
from convection.database.query import Query
from convection.database.retry import run_in_transaction
from convection.database.transaction import SystemView, Transaction
from convection.errors import ConvectionError, ConvexError
from convection.functions.context import MutationCtx, UserIdentity
from convection.functions.decorators import ConvexFunction
from convection.functions.identity import Identity
from convection.functions.loader import LoadedApp
from convection.functions.outcome import FunctionOutcome
from convection.functions.references import function_path
from convection.functions.runner import FunctionCallError
from convection.server.compose import Deployment, open_deployment
from convection.values.model import normalize

__all__ = [
    "DEFAULT_ISSUER",
    "FunctionError",
    "IdentityView",
    "TestBackend",
    "TestClock",
    "TestSubscription",
]

T = TypeVar("T")

DEFAULT_ISSUER = "https://convection.test"
"""The ``issuer`` of :meth:`TestBackend.with_identity` when none is given."""

DEFAULT_SUBJECT = "test-user"
"""The ``subject`` of :meth:`TestBackend.with_identity` when none is given."""

WAIT_FOR_CHANGE_TIMEOUT_S = 10.0
"""How long :meth:`TestSubscription.wait_for_change` waits by default before TimeoutError."""

MAX_SCHEDULER_ROUNDS = 100
"""Default bound of :meth:`TestBackend.finish_scheduled_functions` (functions that keep
scheduling more functions would otherwise never finish)."""

_CODE_PREFIX = re.compile(r"([A-Z][A-Za-z]*Error): ")
_UNCAUGHT = re.compile(r"Uncaught ([A-Za-z_][A-Za-z0-9_]*):")
_SNAKE_TO_CAMEL = dict(UserIdentity._ALIASES)


class FunctionError(ConvectionError):
    """A function call failed with something other than a :class:`ConvexError`.

    ``message`` is the message a client would receive (with the traceback text: the backend
    runs in dev mode); ``code`` is ``"ArgumentValidationError"``,
    ``"ReturnsValidationError"``, ``"FunctionNotFound"``, ``"WrongFunctionKind"`` and the
    like when the engine rejected the call, otherwise ``"FunctionError"``. ``error_type``
    names the exception the function raised (``"ValueError"``) when there was one.
    ``log_lines`` are the lines the function logged before failing.
    """

    code = "FunctionError"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        log_lines: list[str] | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.log_lines = log_lines or []
        self.error_type = error_type


def _function_error(outcome: FunctionOutcome) -> FunctionError:
    message = outcome.error_message
    code: str | None = None
    error_type: str | None = None
    prefix = _CODE_PREFIX.match(message)
    if prefix is not None:
        code = prefix.group(1)
    uncaught = _UNCAUGHT.search(message)
    if uncaught is not None:
        error_type = uncaught.group(1)
        if error_type in ("ArgumentValidationError", "ReturnsValidationError"):
            code = error_type
    return FunctionError(message, code=code, log_lines=list(outcome.log_lines), error_type=error_type)


def _result(outcome: FunctionOutcome) -> Any:
    """The value of a successful outcome; raise what the caller of a client would see."""
    if outcome.success:
        return outcome.value
    if outcome.has_error_data:
        err = ConvexError(outcome.error_data)
        err.log_lines = list(outcome.log_lines)  # type: ignore[attr-defined]
        raise err
    raise _function_error(outcome)


def _ms(value: float | datetime.timedelta) -> float:
    if isinstance(value, datetime.timedelta):
        return value.total_seconds() * 1000.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"a duration is milliseconds (a number) or a timedelta, got {value!r}")
    return float(value)


def _ms_to_ns(ms: float) -> int:
    return round(fractions.Fraction(ms) * 1_000_000)


class TestClock(ManualClock):
    """The :class:`ManualClock` of a TestBackend, with exact arithmetic: nanoseconds are an
    integer and milliseconds are derived by exact division, so after ``advance_ms(1500)``
    ``now_ms()`` is exactly 1500 more (a float ``ms * 1e6`` would be off by up to 128 ns at
    today's epoch values)."""

    __test__ = False

    def __init__(self, start_ms: float) -> None:
        super().__init__(start_ms)
        self._exact_lock = threading.Lock()
        self._exact_ns = _ms_to_ns(start_ms)

    def now_ns(self) -> int:
        with self._exact_lock:
            return self._exact_ns

    def now_ms(self) -> float:
        return self.now_ns() / 1_000_000  # int / int: correctly rounded

    def advance_ms(self, ms: float) -> None:
        if ms < 0:
            raise ValueError("a clock cannot go backwards")
        with self._exact_lock:
            self._exact_ns += _ms_to_ns(ms)

    def set_ms(self, ms: float) -> None:
        with self._exact_lock:
            self._exact_ns = max(self._exact_ns, _ms_to_ns(ms))


class _LoopThread:
    """An asyncio event loop running forever in a daemon thread, and a way to run
    coroutines on it from other threads."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(ready.set)
            self.loop.run_forever()

        self.thread = threading.Thread(target=main, name="convection-test-backend", daemon=True)
        self.thread.start()
        ready.wait()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError(
                "TestBackend methods are synchronous and cannot be called from the backend's "
                "own event loop (from inside a function or a hook coroutine); await the "
                "engine directly there."
            )
        if self.loop.is_closed() or not self.thread.is_alive():
            coro.close()
            raise RuntimeError("this TestBackend is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def stop(self) -> None:
        if self.loop.is_closed():
            return

        async def shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()
            await self.loop.shutdown_default_executor()

        if self.thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(timeout=30)
            except (concurrent.futures.TimeoutError, RuntimeError):
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=30)
        if not self.thread.is_alive():
            self.loop.close()


class _Caller:
    """Calls functions of a :class:`TestBackend` as one identity (shared by the backend
    itself and its :class:`IdentityView` s)."""

    _backend: TestBackend
    identity: Identity

    # --- calls -----------------------------------------------------------------------------
    def query(self, path: Any, args: dict[str, Any] | None = None) -> Any:
        """Run a query at the latest timestamp; returns its value."""
        b = self._backend
        p = b._prepare(path, self.identity, "query")
        return _result(b._call(b.app.run_query(p, _args(args), self.identity)))

    def mutation(self, path: Any, args: dict[str, Any] | None = None) -> Any:
        """Run a mutation to completion (committed when this returns); returns its value."""
        b = self._backend
        p = b._prepare(path, self.identity, "mutation")
        return _result(b._call(b.app.run_mutation(p, _args(args), self.identity)))

    def action(self, path: Any, args: dict[str, Any] | None = None) -> Any:
        """Run an action to completion; returns its value."""
        b = self._backend
        p = b._prepare(path, self.identity, "action")
        return _result(b._call(b.app.run_action(p, _args(args), self.identity)))

    def subscribe(self, path: Any, args: dict[str, Any] | None = None) -> TestSubscription:
        """Subscribe to a query: ``.value`` is its current result, ``.wait_for_change()`` the
        next different one."""
        b = self._backend
        p = b._prepare(path, self.identity, "query")
        sub = TestSubscription(b, p, _args(args), self.identity)
        b._subscriptions.add(sub)
        return sub

    def run(self, fn: Callable[[MutationCtx], T]) -> T:
        """Run ``fn(ctx)`` in a mutation transaction (``ctx`` as a mutation's: ``ctx.db``
        reads and writes any table, ``ctx.auth`` is this caller's identity) and commit it;
        returns what ``fn`` returned. For seeding data and for looking at it in ways no
        function of the app offers. Retried when it conflicts with a concurrent commit."""
        return self._backend._run_in_transaction(fn, self.identity)

    def with_identity(
        self,
        subject: str | None = None,
        issuer: str | None = None,
        **claims: Any,
    ) -> IdentityView:
        """A view of the backend calling as the user ``subject`` of ``issuer``.

        ``claims`` become the identity's fields: the standard ones may be given in
        snake_case (``given_name=`` is stored as ``givenName``, ``email_verified=`` as
        ``emailVerified``); other names are kept as given (custom claims). The
        ``tokenIdentifier`` is ``"<issuer>|<subject>"`` unless given. The view can still call
        internal functions (it is an admin acting as that user).
        """
        sub = DEFAULT_SUBJECT if subject is None else subject
        iss = DEFAULT_ISSUER if issuer is None else issuer
        attrs: dict[str, Any] = {"subject": sub, "issuer": iss}
        for key, value in claims.items():
            attrs[_SNAKE_TO_CAMEL.get(key, key)] = value
        attrs.setdefault("tokenIdentifier", f"{iss}|{sub}")
        return IdentityView(self._backend, Identity(kind="admin", attributes=normalize(attrs)))


def _args(args: Any) -> Any:
    return {} if args is None else args


class IdentityView(_Caller):
    """The backend seen by one user (made by :meth:`TestBackend.with_identity`). Calls run as
    that user; everything else (clock, tables, scheduler) is the backend's."""

    def __init__(self, backend: TestBackend, identity: Identity) -> None:
        self._backend = backend
        self.identity = identity

    @property
    def backend(self) -> TestBackend:
        return self._backend

    def __repr__(self) -> str:
        token = (self.identity.attributes or {}).get("tokenIdentifier")
        return f"<IdentityView {token!r} of {self._backend!r}>"


class TestBackend(_Caller):
    """The engine on a temporary store, for tests. See the module docstring.

    ``TestBackend(functions_dir)`` loads the functions folder (raising
    :class:`~convection.errors.ModuleLoadError` when it does not load) and starts the engine
    with a :class:`ManualClock` at ``start_time_ms`` (default: the current wall time in whole
    milliseconds).

    Hooks for the scheduler (and anything else that reacts to time):

    * ``time_hooks``: ``hook(backend)`` is called after :meth:`advance_time` moved the clock
      (to run what became due);
    * ``scheduler_hooks``: ``hook(backend) -> int`` runs the scheduled functions that are
      pending (advancing ``backend.clock`` to a function's scheduled time if it must) and
      returns how many it ran; :meth:`finish_scheduled_functions` calls every hook again
      until a whole round ran nothing.

    A hook may return an awaitable: it is awaited on the backend's event loop (the loop the
    application's coroutines run on), so it may call ``backend.app`` coroutines directly.
    """

    __test__ = False  # not a pytest test class despite its name

    def __init__(
        self,
        functions_dir: str | Path,
        *,
        start_time_ms: float | None = None,
    ) -> None:
        self._closed = False
        self._backend = self
        self.identity = Identity(kind="admin")
        if start_time_ms is None:
            # Whole milliseconds, so that start + advance_time(n) is exact in float ms.
            start_time_ms = float(time.time_ns() // 1_000_000)
        self.clock = TestClock(start_time_ms)
        self.time_hooks: list[Callable[[TestBackend], Any]] = []
        self.scheduler_hooks: list[Callable[[TestBackend], int | Awaitable[int] | None]] = []
        self._subscriptions: weakref.WeakSet[TestSubscription] = weakref.WeakSet()
        self._paths: dict[int, str] = {}
        self._lock = threading.Lock()
        self._data_dir = Path(tempfile.mkdtemp(prefix="convection-test-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._data_dir, ignore_errors=True)
        self._loop: _LoopThread | None = None
        try:
            self.deployment: Deployment = open_deployment(
                functions_dir, self._data_dir, clock=self.clock, dev=True
            )
            self._loop = _LoopThread()
        except BaseException:
            self._teardown()
            raise
        for spec in self.loaded.functions.values():
            self._paths.setdefault(id(spec.function), spec.path)
        # The scheduler runs only when time moves or when asked to finish (no background
        # loop: nothing runs behind the test's back).
        scheduler = self.app.scheduler
        self.time_hooks.append(lambda b: scheduler.run_due_jobs())
        self.scheduler_hooks.append(lambda b: scheduler.run_next(b._scheduler_advance_to))
        try:
            self.run_async(scheduler.start(background=False))
        except BaseException:
            self._teardown()
            raise

    def _scheduler_advance_to(self, ms: float) -> None:
        """Move the clock to ``ms`` for the scheduler (on the backend's loop: no hooks)."""
        self.clock.set_ms(ms)
        self.app.cache.invalidate_all(self.app.latest_ts())

    # --- parts -----------------------------------------------------------------------------
    @property
    def app(self) -> Application:
        """The application facade (async API; run its coroutines with :meth:`run_async`)."""
        return self.deployment.app

    @property
    def db(self) -> Database:
        """The engine's database (transactions, catalog, subscriptions)."""
        return self.deployment.db

    @property
    def loaded(self) -> LoadedApp:
        """The loaded functions folder (registry, schema, crons, HTTP router)."""
        return self.deployment.app.loaded

    @property
    def functions_dir(self) -> Path:
        return self.deployment.functions_dir

    @property
    def data_dir(self) -> Path:
        """The temporary data directory (deleted by :meth:`close`)."""
        return self._data_dir

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the application's coroutines run on."""
        assert self._loop is not None
        return self._loop.loop

    def module(self, name: str) -> types.ModuleType:
        """The loaded module of the functions folder at module path ``name``
        (``"messages"``, ``"queries/orders"``): its decorated functions may be passed to
        :meth:`query` and friends."""
        import importlib

        if name not in self.loaded.modules:
            raise ConvectionError(
                f"{name!r} is not a module of {self.functions_dir}; modules: {self.loaded.modules}",
                code="InvalidArgument",
            )
        return importlib.import_module(self.loaded.package + "." + name.replace("/", "."))

    # --- running coroutines ----------------------------------------------------------------
    def run_async(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` on the backend's event loop and return its result."""
        self._check_open()
        assert self._loop is not None

        async def wrap() -> T:
            return await awaitable

        return self._loop.run(wrap())

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed or self._loop is None:
            coro.close()
            self._check_open()
        assert self._loop is not None
        return self._loop.run(coro)

    def _check_open(self) -> None:
        if self._closed:
            raise ConvectionError("This TestBackend is closed.", code="BackendClosed")

    def _prepare(self, ref: Any, identity: Identity, kind: str) -> str:
        """The canonical path of ``ref``, checked to name a ``kind`` the caller may call."""
        self._check_open()
        path = self._path_of(ref)
        try:
            spec = self.app.runner.resolve(path, identity, kind)
        except FunctionCallError as exc:
            raise FunctionError(exc.message, code=exc.code) from None
        return spec.path

    def _path_of(self, ref: Any) -> str:
        if isinstance(ref, ConvexFunction):
            known = self._paths.get(id(ref))
            if known is not None:
                return known
            if ref.path is not None:
                return ref.path
            derived = self._derive_path(ref)
            if derived is not None:
                return derived
        try:
            return function_path(ref)
        except ConvectionError as exc:
            raise FunctionError(exc.message, code=exc.code) from None

    def _derive_path(self, fn: ConvexFunction) -> str | None:
        """The path of a decorated function imported from the functions folder some other
        way than through this backend's load (its file and name tell where it lives)."""
        handler: Any = inspect.unwrap(fn.handler)
        code = getattr(handler, "__code__", None)
        if code is None:
            return None
        try:
            rel = Path(code.co_filename).resolve().relative_to(self.functions_dir.resolve())
        except (ValueError, OSError):
            return None
        module = rel.with_suffix("").as_posix()
        for path in (f"{module}:{fn.__name__}", f"{module}:default"):
            spec = self.loaded.get(path)
            if spec is None:
                continue
            # The same source compiled twice: same file and first line, not the same object.
            other = getattr(inspect.unwrap(spec.handler), "__code__", None)
            if (
                other is not None
                and other.co_firstlineno == code.co_firstlineno
                and Path(other.co_filename).resolve() == Path(code.co_filename).resolve()
            ):
                return spec.path
        return None

    # --- data helpers ----------------------------------------------------------------------
    def _run_in_transaction(self, fn: Callable[[MutationCtx], T], identity: Identity) -> T:
        self._check_open()
        app = self.app

        def attempt(txn: Transaction) -> T:
            txn.source = "TestBackend.run"
            ctx = app.runner.make_ctx(
                MutationCtx, SystemView(txn), identity, self.clock.now_ms(), random.getrandbits(63), 0
            )
            value = fn(ctx)
            if inspect.isawaitable(value):
                close = getattr(value, "close", None)
                if close is not None:
                    close()
                raise TypeError(
                    "TestBackend.run(fn) runs a plain function fn(ctx) in a mutation "
                    "transaction; got a coroutine function"
                )
            return value

        return run_in_transaction(self.db, attempt)[0]

    def table(self, name: str) -> list[dict[str, Any]]:
        """Every document of table ``name`` at the latest timestamp, in creation order."""
        self._check_open()
        txn = self.db.begin(read_only=True)
        return Query(txn, name).collect()

    def get(self, id: str) -> dict[str, Any] | None:
        """The document with id ``id`` at the latest timestamp, or None."""
        self._check_open()
        txn = self.db.begin(read_only=True)
        return txn.get(id)

    # --- time ------------------------------------------------------------------------------
    def now_ms(self) -> float:
        """The manual clock's time: milliseconds since the epoch (``ctx.now`` of new calls)."""
        return self.clock.now_ms()

    def advance_time(self, ms: float | datetime.timedelta) -> None:
        """Move the manual clock forward by ``ms`` milliseconds (or a timedelta), then run the
        ``time_hooks``. Cached query results are dropped, so queries that read ``ctx.now``
        run again (subscriptions whose result did not change report no change)."""
        self._check_open()
        self.clock.advance_ms(_ms(ms))
        self.app.cache.invalidate_all(self.app.latest_ts())
        for hook in list(self.time_hooks):
            self._hook_result(hook(self))

    def finish_scheduled_functions(self, *, max_rounds: int = MAX_SCHEDULER_ROUNDS) -> int:
        """Run scheduled functions until none is left (every ``scheduler_hooks`` hook reports
        nothing to run); returns how many ran. Raises FunctionError (``TooManyRounds``) when
        functions keep scheduling more after ``max_rounds`` rounds."""
        self._check_open()
        total = 0
        for _ in range(max_rounds):
            ran = 0
            for hook in list(self.scheduler_hooks):
                ran += int(self._hook_result(hook(self)) or 0)
            if ran == 0:
                return total
            total += ran
        raise FunctionError(
            f"Scheduled functions were still pending after {max_rounds} rounds: functions "
            "keep scheduling more. Pass a larger max_rounds, or advance time step by step.",
            code="TooManyRounds",
        )

    def _hook_result(self, result: Any) -> Any:
        if inspect.isawaitable(result):
            return self.run_async(result)
        return result

    # --- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the engine and delete the temporary store (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for sub in list(self._subscriptions):
            sub.close()
        self._teardown()

    def _teardown(self) -> None:
        deployment: Deployment | None = getattr(self, "deployment", None)
        if self._loop is not None:
            if deployment is not None:
                # Background services (scheduler, crons) stop before the loop does.
                with contextlib.suppress(Exception):
                    self._loop.run(deployment.app.stop())
            self._loop.stop()
        if deployment is not None:
            try:
                deployment.close()
            finally:
                deployment.app.loaded.unload()
        self._cleanup()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> TestBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        folder = getattr(getattr(self, "deployment", None), "functions_dir", "?")
        return f"<TestBackend {folder} ({state})>"


class TestSubscription:
    """A subscribed query of a :class:`TestBackend`.

    ``value`` is the query's current result (recomputed when a commit invalidated the last
    one; raises like :meth:`TestBackend.query` when the current outcome is an error).
    ``wait_for_change()`` returns the next result that differs from the last one seen through
    ``value`` or ``wait_for_change()``, waiting for the engine's invalidation if there is none
    yet; ``updates()`` iterates such results forever. ``close()`` releases the subscription
    (also done by the backend's ``close()``); a subscription is a context manager.
    """

    __test__ = False

    def __init__(self, backend: TestBackend, path: str, args: Any, identity: Identity) -> None:
        self._backend = backend
        self.path = path
        self.args = args
        self.identity = identity
        self._lock = threading.RLock()
        self._closed = False
        self._run: QueryRun | None = None
        self._woken = threading.Event()
        self._seen: bytes | None = None
        self._subscribe()
        assert self._run is not None
        self._seen = self._run.fingerprint  # the first result counts as seen

    def _subscribe(self) -> None:
        app = self._backend.app
        woken = threading.Event()

        async def go() -> QueryRun:
            return await app.subscribe_query(self.path, self.args, self.identity, None, app.latest_ts())

        run = self._backend._call(go())
        old, self._run, self._woken = self._run, run, woken
        if old is not None:
            old.subscription.close()
        run.subscription.set_callback(woken.set)

    def _refresh(self) -> QueryRun:
        with self._lock:
            if self._closed:
                raise ConvectionError("This subscription is closed.", code="SubscriptionClosed")
            assert self._run is not None
            if self._run.subscription.invalidated_at is not None:
                self._subscribe()
            assert self._run is not None
            return self._run

    @property
    def outcome(self) -> FunctionOutcome:
        """The current outcome (success or error, with its log lines), without raising."""
        return self._refresh().outcome

    @property
    def value(self) -> Any:
        with self._lock:
            run = self._refresh()
            self._seen = run.fingerprint
            return _result(run.outcome)

    def wait_for_change(self, timeout: float | None = WAIT_FOR_CHANGE_TIMEOUT_S) -> Any:
        """The next result different from the last one seen; waits (up to ``timeout``
        seconds, None = forever) for a commit to change it. Raises TimeoutError."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                run = self._refresh()
                if run.fingerprint != self._seen:
                    self._seen = run.fingerprint
                    return _result(run.outcome)
                woken = self._woken
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(
                    f"The result of {self.path} did not change within {timeout} s."
                )
            woken.wait(remaining)

    def updates(self, timeout: float | None = WAIT_FOR_CHANGE_TIMEOUT_S) -> Iterator[Any]:
        """Each next different result, forever (each waits up to ``timeout`` seconds)."""
        while True:
            yield self.wait_for_change(timeout)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            run, self._run = self._run, None
        if run is not None:
            run.subscription.close()
        self._woken.set()

    def __enter__(self) -> TestSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<TestSubscription {self.path} {self.args!r}>"
