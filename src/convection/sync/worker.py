"""The asyncio shell around one sync connection's :class:`~convection.sync.state.SyncState`.

Transport-agnostic: the server gives it an ``async send(text)`` (one WebSocket *text* frame)
and an ``async close(code, reason)``, feeds it every inbound frame with
:meth:`SyncWorker.handle_text` / :meth:`SyncWorker.handle_bytes`, one at a time and in order,
and calls :meth:`SyncWorker.aclose` when the socket is gone::

    async with SyncWorker(app, send=ws.send_text, close=close_ws) as worker:
        while not worker.closed:
            frame = await ws.receive()
            if frame["type"] == "websocket.disconnect":
                break
            if frame.get("text") is not None:
                await worker.handle_text(frame["text"])
            else:
                await worker.handle_bytes(frame.get("bytes") or b"")

The worker holds no protocol decisions; it carries out the state machine's effects:

* Mutations of a socket run one at a time, in arrival order (a bounded queue; overflow closes
  with 1013 ``TooManyConcurrentMutations``); actions run concurrently (bounded likewise).
* Every outbound message goes through one FIFO :class:`Outbox`, so a MutationResponse is
  always sent before the Transition computed after it.
* Transitions are computed one at a time; triggers arriving meanwhile are coalesced into the
  next one, and none is started while ``max_unsent_transitions`` are queued unsent
  (back-pressure on slow clients).
* An app-level Ping is sent after ``heartbeat_interval_s`` without any outbound message. Time
  comes from an injected :class:`Timer` so tests never sleep.
* ``handle_text`` awaits an Authenticate's ``app.authenticate`` before returning, so the
  messages after it run under the new identity.

Subscription callbacks: ``QuerySubscription.set_callback`` callbacks are expected on the
event loop; one arriving from another thread is handed over with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType

import orjson

from convection import knobs
from convection.application.interface import (
    ApplicationInterface,
    AuthFailure,
    FunctionOutcome,
    QueryRun,
    QuerySubscription,
)
from convection.clock import Clock, SystemClock
from convection.errors import StorageFailure
from convection.protocol import messages as msgs
from convection.sync.outbox import AsyncioTimer, Outbox, SendText, Timer
from convection.sync.state import (
    Close,
    Effect,
    RunAction,
    RunAuthenticate,
    RunMutation,
    ScheduleTransition,
    Send,
    SyncState,
    TransitionPlan,
)

logger = logging.getLogger(__name__)

CloseSocket = Callable[[int, str], Awaitable[None]]
"""Closes the socket with a close code and reason."""


class SyncWorker:
    """Runs the sync protocol for one WebSocket connection.

    Lifecycle: construct, :meth:`start` (or ``async with``), feed frames, :meth:`aclose`.
    When the protocol decides to close (FatalError, AuthError, overload, internal error) the
    worker sends what is queued, calls ``close(code, reason)`` and shuts down by itself;
    ``closed`` becomes True and :meth:`wait_closed` returns. ``aclose`` is idempotent and is
    what the server calls once the socket is gone (it does not call ``close``).
    """

    def __init__(
        self,
        app: ApplicationInterface,
        send: SendText,
        close: CloseSocket,
        *,
        clock: Clock | None = None,
        timer: Timer | None = None,
        heartbeat_interval_s: float = knobs.SYNC_HEARTBEAT_INTERVAL_MS / 1000,
        max_unsent_transitions: int = knobs.SYNC_MAX_UNSENT_TRANSITIONS_COUNT,
        max_queued_mutations: int = knobs.SYNC_MAX_QUEUED_MUTATIONS_COUNT,
        max_inflight_actions: int = knobs.SYNC_MAX_INFLIGHT_ACTIONS_COUNT,
        query_concurrency: int = knobs.SYNC_QUERY_CONCURRENCY_COUNT,
        max_message_size_bytes: int = knobs.SYNC_MAX_MESSAGE_SIZE_BYTES,
        close_timeout_s: float = knobs.SYNC_CLOSE_TIMEOUT_MS / 1000,
        max_queries_per_modify: int = knobs.SYNC_MAX_QUERIES_PER_MODIFY_COUNT,
        max_queries: int = knobs.SYNC_MAX_QUERIES_PER_SOCKET_COUNT,
        max_outbox_bytes: int = knobs.SYNC_OUTBOX_MAX_BYTES,
    ) -> None:
        self._app = app
        self._max_outbox_bytes = max_outbox_bytes
        self._close_timeout_s = close_timeout_s
        self._close_socket = close
        self._clock: Clock = clock or SystemClock()
        self._timer: Timer = timer or AsyncioTimer()
        self._heartbeat_interval_s = heartbeat_interval_s
        self._max_unsent_transitions = max(1, max_unsent_transitions)
        self._max_queued_mutations = max_queued_mutations
        self._max_inflight_actions = max_inflight_actions
        self._query_concurrency = max(1, query_concurrency)
        self.state = SyncState(
            max_message_size_bytes=max_message_size_bytes,
            max_queries_per_modify=max_queries_per_modify,
            max_queries=max_queries,
        )
        self._outbox_send = send
        self._outbox: Outbox | None = None
        self._mutations: deque[RunMutation] = deque()
        self._mutations_ready = asyncio.Event()
        self._actions: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._transition_scheduled = False
        self._transition_wakeup = asyncio.Event()
        self._in_transition = False  # a Transition is being computed (it may be awaiting)
        self._fast_pending = False  # _fast_transition is scheduled (call_soon)
        # A Transition begun on receipt (_transition_on_receipt) whose queries were not all
        # cached: the plan and the runs it has, for the transition task to finish.
        self._handoff: tuple[TransitionPlan, dict[int, QueryRun]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._close_task: asyncio.Task[None] | None = None
        self._shut_down = False
        self._closing = False
        self._connect_checked = False
        self._closed_event = asyncio.Event()

    # ----------------------------------------------------------------------------------
    # Public surface

    @property
    def closed(self) -> bool:
        """True once the connection is over (closing, closed, or shut down)."""
        return self._closing or self._shut_down or self.state.closed

    @property
    def outbox(self) -> Outbox:
        if self._outbox is None:
            raise RuntimeError("SyncWorker.start() was not called")
        return self._outbox

    def start(self) -> None:
        """Start the background tasks on the running loop (sender, mutations, transitions,
        heartbeat)."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._outbox = Outbox(
            self._outbox_send,
            self._timer,
            max_bytes=self._max_outbox_bytes,
            on_transition_sent=self._on_transition_sent,
            on_broken=self._on_send_failed,
            on_overflow=self._on_outbox_overflow,
        )
        self._tasks = [
            self._loop.create_task(self._outbox.run(), name="sync-outbox"),
            self._loop.create_task(self._mutation_loop(), name="sync-mutations"),
            self._loop.create_task(self._transition_loop(), name="sync-transitions"),
            self._loop.create_task(self._heartbeat_loop(), name="sync-heartbeat"),
        ]

    async def __aenter__(self) -> SyncWorker:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def handle_text(self, text: str) -> None:
        """Feed one inbound text frame (call sequentially, in arrival order)."""
        if self.closed:
            return
        # The wall clock only matters for Connect (the client's clock skew).
        now_ms = self._clock.now_ms() if self.state.session_id is None else 0.0
        effects = self.state.receive_text(text, now_ms=now_ms)
        await self._apply(effects)
        if not self._connect_checked and self.state.session_id is not None:
            self._connect_checked = True
            self._apply_sync(self._check_max_observed())

    async def handle_bytes(self, data: bytes) -> None:
        """Feed one inbound binary frame (a protocol violation: FatalError, then close)."""
        if self.closed:
            return
        await self._apply(self.state.receive_bytes(data))

    async def wait_closed(self) -> None:
        """Return once the worker has shut down (after a protocol close or aclose)."""
        await self._closed_event.wait()

    async def aclose(self) -> None:
        """The socket is gone (or the server stops): cancel all work and release every
        subscription. Idempotent. Does not call ``close`` itself, but lets a close the
        protocol already started finish first (send the FatalError/AuthError, then the close
        frame), for at most ``close_timeout_s``."""
        current = asyncio.current_task()
        closing = self._close_task
        if closing is not None and closing is not current and not closing.done():
            await self._wait_at_most(closing, self._close_timeout_s)
        tasks = [*self._tasks, *self._actions]
        if self._close_task is not None:
            tasks.append(self._close_task)
        self._shutdown()
        for task in tasks:
            if task is not current:
                task.cancel()
        waiting = [t for t in tasks if t is not current]
        if waiting:
            await asyncio.gather(*waiting, return_exceptions=True)
        self._closed_event.set()

    # ----------------------------------------------------------------------------------
    # Effects

    async def _apply(self, effects: list[Effect]) -> None:
        transition = False
        for effect in effects:
            if isinstance(effect, ScheduleTransition):
                transition = True  # computed once the frame's other effects are applied
            elif isinstance(effect, Send):
                self._push(effect.message)
            elif isinstance(effect, RunMutation):
                self._enqueue_mutation(effect)
            elif isinstance(effect, RunAction):
                self._start_action(effect)
            elif isinstance(effect, RunAuthenticate):
                await self._authenticate(effect)
            else:
                assert isinstance(effect, Close)
                self._begin_close(effect)
        if transition and not self._transition_on_receipt():
            self._schedule_transition()

    def _push(self, message: msgs.ServerMessage) -> None:
        if self._shut_down:
            return
        data = orjson.dumps(message)
        self.outbox.push(data.decode("utf-8"), size=len(data))

    def _enqueue_mutation(self, job: RunMutation) -> None:
        if len(self._mutations) >= self._max_queued_mutations:
            self._apply_sync(
                self.state.overloaded(
                    "TooManyConcurrentMutations",
                    f"more than {self._max_queued_mutations} mutations queued on one socket",
                )
            )
            return
        self._mutations.append(job)
        self._mutations_ready.set()

    def _start_action(self, job: RunAction) -> None:
        if len(self._actions) >= self._max_inflight_actions:
            self._apply_sync(
                self.state.overloaded(
                    "TooManyConcurrentActions",
                    f"more than {self._max_inflight_actions} actions running on one socket",
                )
            )
            return
        task = asyncio.get_running_loop().create_task(self._run_action(job), name="sync-action")
        self._actions.add(task)
        task.add_done_callback(self._actions.discard)

    def _apply_sync(self, effects: list[Effect]) -> None:
        """Apply effects that never include RunAuthenticate (completions, closes)."""
        for effect in effects:
            if isinstance(effect, Send):
                self._push(effect.message)
            elif isinstance(effect, ScheduleTransition):
                self._schedule_transition()
            elif isinstance(effect, Close):
                self._begin_close(effect)
            else:  # pragma: no cover - the state machine never returns these here
                raise AssertionError(f"unexpected effect {effect!r}")

    async def _authenticate(self, effect: RunAuthenticate) -> None:
        try:
            identity = await self._app.authenticate(
                effect.token_type, effect.value, effect.impersonating
            )
        except AuthFailure as failure:
            effects = self.state.auth_failed(failure.message, code=failure.code)
        except Exception:
            logger.exception("sync: app.authenticate raised")
            effects = self.state.internal_error("app.authenticate raised")
        else:
            effects = self.state.auth_succeeded(identity)
        self._apply_sync(effects)

    # ----------------------------------------------------------------------------------
    # Mutations and actions

    async def _mutation_loop(self) -> None:
        while True:
            while not self._mutations:
                self._mutations_ready.clear()
                await self._mutations_ready.wait()
            job = self._mutations.popleft()
            if self.closed:
                return
            effects: list[Effect]
            try:
                if job.args_error is not None:
                    outcome = FunctionOutcome(success=False, error_message=job.args_error)
                else:
                    self.state.mutation_started(self._app.latest_ts())
                    outcome = await self._app.run_mutation(
                        job.udf_path,
                        job.args,
                        job.identity,
                        idempotency_key=job.idempotency_key,
                    )
            except AuthFailure as failure:
                effects = self.state.auth_lost(failure.message, code=failure.code)
            except StorageFailure as failure:
                # Retryable: the client reconnects with backoff and re-sends the mutation,
                # de-duplicated by (sessionId, requestId) if it did commit.
                effects = self.state.overloaded("StorageUnavailable", str(failure))
            except Exception:
                logger.exception("sync: mutation %s raised", job.udf_path)
                effects = self.state.internal_error(f"mutation {job.udf_path} raised")
            else:
                effects = self.state.mutation_completed(job.request_id, outcome)
            self._apply_sync(effects)

    async def _run_action(self, job: RunAction) -> None:
        effects: list[Effect]
        try:
            if job.args_error is not None:
                outcome = FunctionOutcome(success=False, error_message=job.args_error)
            else:
                outcome = await self._app.run_action(job.udf_path, job.args, job.identity)
        except AuthFailure as failure:
            effects = self.state.auth_lost(failure.message, code=failure.code)
        except StorageFailure as failure:
            effects = self.state.overloaded("StorageUnavailable", str(failure))
        except Exception:
            logger.exception("sync: action %s raised", job.udf_path)
            effects = self.state.internal_error(f"action {job.udf_path} raised")
        else:
            effects = self.state.action_completed(job.request_id, outcome)
        self._apply_sync(effects)

    # ----------------------------------------------------------------------------------
    # Transitions

    def _schedule_transition(self) -> None:
        self._transition_scheduled = True
        self._transition_wakeup.set()

    def _on_transition_sent(self) -> None:
        # Only a trigger held back by back-pressure needs the loop again (no wasted wake-up
        # per Transition sent).
        if self._transition_scheduled:
            self._transition_wakeup.set()

    def _on_invalidated(self) -> None:
        """A subscription's callback (any thread)."""
        if self._shut_down or self._loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            # Not right here: the other entries this commit invalidated are being rerun in
            # this same loop iteration, and one Transition should carry them all (a socket
            # with many queries would otherwise send one Transition per query).
            if not self._fast_pending:
                self._fast_pending = True
                self._loop.call_soon(self._fast_transition)
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to do
                self._loop.call_soon_threadsafe(self._schedule_transition)

    async def _transition_loop(self) -> None:
        while True:
            await self._transition_wakeup.wait()
            self._transition_wakeup.clear()
            while self._handoff is not None or (
                self._transition_scheduled
                and not self.closed
                and self.outbox.pending_transitions < self._max_unsent_transitions
            ):
                begun, self._handoff = self._handoff, None
                if begun is None:
                    self._transition_scheduled = False
                elif self.closed:  # closing: nothing more is sent
                    for run in begun[1].values():
                        run.subscription.close()
                    self._end_plan(begun[0])
                    self._in_transition = False
                    continue
                try:
                    await self._run_transition(begun)
                except AuthFailure as failure:
                    self._apply_sync(self.state.auth_lost(failure.message, code=failure.code))
                except StorageFailure as failure:
                    self._apply_sync(self.state.overloaded("StorageUnavailable", str(failure)))
                except Exception:
                    logger.exception("sync: computing a transition failed")
                    self._apply_sync(self.state.internal_error("computing a transition failed"))

    async def _run_transition(
        self, begun: tuple[TransitionPlan, dict[int, QueryRun]] | None = None
    ) -> None:
        """Compute and send one Transition; ``begun``: a plan begun on receipt, with the
        cached runs it already has (the rest run here)."""
        self._in_transition = True
        try:
            if begun is None:
                plan = self.state.begin_transition(self._app.latest_ts())
                runs: dict[int, QueryRun] = {}
            else:
                plan, runs = begun
            try:
                try:
                    await self._run_queries(plan, runs)
                except BaseException:
                    for run in runs.values():
                        run.subscription.close()
                    raise
                if self.closed:
                    for run in runs.values():
                        run.subscription.close()
                    return
                self._finish_transition(plan, runs)
            finally:
                self._end_plan(plan)
        finally:
            self._in_transition = False

    def _fast_transition(self) -> None:
        self._fast_pending = False
        if not self._transition_now():
            self._schedule_transition()

    def _transition_now(self) -> bool:
        """Fan-out fast path, on the loop, soon after an invalidation: when every query the
        next Transition must run is answered by the query cache (the invalidated entry was
        just rerun into it, application/app.py ``_entry_invalidated``), compute and send the
        Transition here and now, without waking the transition task (a task switch and two
        event operations per socket). False (nothing changed that the task will not redo)
        when it cannot: a Transition is in progress or pending, back-pressure, or a query
        that is not in the cache (then the plan is abandoned and its queries run again)."""
        if (
            self._in_transition
            or self._transition_scheduled
            or self.closed
            or self._shut_down
            or self.outbox.pending_transitions >= self._max_unsent_transitions
        ):
            return False
        self._in_transition = True
        try:
            plan = self.state.begin_transition(self._app.latest_ts())
            runs: dict[int, QueryRun] = {}
            try:
                if not plan.to_run:
                    return False  # e.g. invalidated beyond the latest ts: the task waits for it
                for item in plan.to_run:
                    run = self._app.cached_query_run(item.udf_path, item.args, plan.identity, item.journal, plan.ts)
                    if run is None:
                        for got in runs.values():
                            got.subscription.close()
                        return False
                    runs[item.query_id] = run
                self._finish_transition(plan, runs)
            finally:
                self._end_plan(plan)
        except Exception:  # let the transition task meet it and report it as usual
            return False
        finally:
            self._in_transition = False
        # Done, unless a subscription is invalidated beyond this Transition's ts.
        return not any(
            q.subscription is not None and q.subscription.invalidated_at is not None
            for q in self.state.queries.values()
        )

    def _transition_on_receipt(self) -> bool:
        """An inbound frame changed the query set (or identity): compute its Transition here,
        in the receiving task, instead of waking the transition task (an event, a task
        switch and four coroutines per frame). The queries the query cache answers are taken
        from it at once; if one is not cached, the plan and the runs it has are handed to the
        transition task, which runs the rest (nothing is done twice). False (the caller
        schedules the task as usual) when a Transition is in progress or pending, under
        back-pressure, or closing: the change is folded into that next Transition."""
        if (
            self._in_transition
            or self._transition_scheduled
            or self._handoff is not None
            or self._shut_down
            or self.closed
            or self.outbox.pending_transitions >= self._max_unsent_transitions
        ):
            return False
        self._in_transition = True
        handed_off = False
        try:
            plan = self.state.begin_transition(self._app.latest_ts())
            runs: dict[int, QueryRun] = {}
            try:
                cached_query_run = self._app.cached_query_run
                for item in plan.to_run:
                    try:
                        run = cached_query_run(
                            item.udf_path, item.args, plan.identity, item.journal, plan.ts
                        )
                    except Exception:  # the task runs it again and reports what fails
                        run = None
                    if run is None:
                        # _in_transition stays set until the task has finished the plan.
                        self._handoff = (plan, runs)
                        handed_off = True
                        self._transition_wakeup.set()
                        return True
                    runs[item.query_id] = run
                self._finish_transition(plan, runs)  # (it ends the plan)
            except BaseException:
                self._end_plan(plan)
                raise
        except Exception:  # as the transition task reports a failed Transition
            logger.exception("sync: computing a transition failed")
            self._apply_sync(self.state.internal_error("computing a transition failed"))
            return True
        finally:
            if not handed_off:
                self._in_transition = False
        if any(
            q.subscription is not None and q.subscription.invalidated_at is not None
            for q in self.state.queries.values()
        ):
            self._schedule_transition()  # invalidated beyond this Transition's ts
        return True

    def _finish_transition(self, plan: TransitionPlan, runs: dict[int, QueryRun]) -> None:
        result = self.state.finish_transition(plan, runs, now_ns=self._clock.now_ns())
        self._end_plan(plan)
        for subscription in result.new_subscriptions:
            self._watch(subscription)
        if result.encoded is not None and not self._shut_down:
            self.outbox.push(
                result.encoded.decode("utf-8"), size=len(result.encoded), transition=True
            )

    def _end_plan(self, plan: TransitionPlan) -> None:
        """Forget ``plan`` if it was not finished, and close the subscriptions it replaced
        (once: the list is emptied)."""
        self.state.abandon_transition(plan)
        to_close, plan.subscriptions_to_close = plan.subscriptions_to_close, []
        for subscription in to_close:
            subscription.close()

    async def _run_queries(self, plan: TransitionPlan, runs: dict[int, QueryRun]) -> None:
        app = self._app
        todo = [item for item in plan.to_run if item.query_id not in runs] if runs else plan.to_run
        if not todo:
            return
        if len(todo) == 1:
            item = todo[0]
            runs[item.query_id] = await app.subscribe_query(
                item.udf_path, item.args, plan.identity, item.journal, plan.ts
            )
            return
        semaphore = asyncio.Semaphore(self._query_concurrency)

        async def run_one(query_id: int, path: str, args: object, journal: str | None) -> None:
            async with semaphore:
                run = await app.subscribe_query(path, args, plan.identity, journal, plan.ts)
            runs[query_id] = run

        try:
            async with asyncio.TaskGroup() as group:
                for item in todo:
                    group.create_task(
                        run_one(item.query_id, item.udf_path, item.args, item.journal)
                    )
        except BaseExceptionGroup as failures:
            raise failures.exceptions[0] from None

    def _watch(self, subscription: QuerySubscription) -> None:
        subscription.set_callback(self._on_invalidated)
        if subscription.invalidated_at is not None:
            self._schedule_transition()

    # ----------------------------------------------------------------------------------
    # Heartbeat, closing

    async def _heartbeat_loop(self) -> None:
        interval = self._heartbeat_interval_s
        outbox = self.outbox
        while True:
            idle_for = self._timer.monotonic() - outbox.last_activity
            if idle_for >= interval:
                self._push(msgs.ping())
                continue
            await self._timer.sleep(interval - idle_for)

    def _check_max_observed(self) -> list[Effect]:
        """docs/internals/protocol.md: a client must never be served a ts below one it has observed.

        Our commit ts is wall-clock ns kept monotonic across restarts, so a
        ``maxObservedTimestamp`` above the latest commit means a data reset, a clock moved
        back, or a forged value. Up to ``SYNC_MAX_OBSERVED_TS_AHEAD_MS`` past the wall clock
        the commit clock is moved past it (the protocol's alternative; it costs nothing and keeps the
        client's view monotonic). Further ahead it cannot be a ts we would ever produce:
        the socket is closed 1011 ``InternalServerError``, as the reference server does."""
        max_observed = self.state.max_observed_ts
        if max_observed is None:
            return []
        latest = self._app.latest_ts()
        if max_observed <= latest:
            return []
        horizon = self._clock.now_ns() + knobs.SYNC_MAX_OBSERVED_TS_AHEAD_MS * 1_000_000
        if max_observed > horizon:
            return self.state.internal_error(
                f"Connect maxObservedTimestamp {max_observed} is beyond the latest commit "
                f"ts {latest} and more than {knobs.SYNC_MAX_OBSERVED_TS_AHEAD_MS} ms ahead "
                "of the wall clock (knob SYNC_MAX_OBSERVED_TS_AHEAD_MS)"
            )
        logger.info(
            "sync: client %s observed ts %d, ahead of the latest commit ts %d; moving the "
            "commit clock past it",
            self.state.session_id,
            max_observed,
            latest,
        )
        self._app.bump_ts(max_observed)
        return []

    async def _wait_at_most(self, task: asyncio.Task[None], seconds: float) -> None:
        timeout = asyncio.get_running_loop().create_task(self._timer.sleep(seconds))
        try:
            await asyncio.wait({task, timeout}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timeout.cancel()
            await asyncio.gather(timeout, return_exceptions=True)

    def _on_outbox_overflow(self, wanted: int) -> None:
        # The client stopped reading: everything queued is dropped; close (the close frame
        # reaches it if it ever reads again; the server stops waiting after the close timeout).
        self._begin_close(
            Close(
                msgs.CLOSE_TRY_AGAIN_LATER,
                "OutboxFull",
                f"{wanted} bytes queued unsent, over the {self._max_outbox_bytes}-byte budget "
                "(SYNC_OUTBOX_MAX_BYTES): the client stopped reading",
            )
        )

    def _on_send_failed(self, exc: BaseException) -> None:
        # The client is gone: nothing more can be sent; release everything.
        self._begin_close(Close(msgs.CLOSE_NORMAL, "ClientDisconnect", f"send failed: {exc!r}"))

    def _begin_close(self, effect: Close) -> None:
        if self._close_task is not None or self._shut_down:
            return
        self._closing = True
        if effect.code == msgs.CLOSE_INTERNAL_ERROR:
            logger.warning("sync: closing 1011 (%s)", effect.detail)
        else:
            logger.info("sync: closing %d %s (%s)", effect.code, effect.reason, effect.detail)
        self._close_task = asyncio.get_running_loop().create_task(
            self._close_after_flush(effect), name="sync-close"
        )

    async def _close_after_flush(self, effect: Close) -> None:
        # Stop every producer first, so the outbox only holds what precedes the close.
        current = asyncio.current_task()
        producers = [t for t in (*self._tasks[1:], *self._actions) if t is not current]
        for task in producers:
            task.cancel()
        await asyncio.gather(*producers, return_exceptions=True)
        outbox = self.outbox
        if outbox.overflowed:
            # The client stopped reading: what was queued is already dropped and the sender
            # may be stuck on it. Release everything now, then send the close frame; it goes
            # out once the client reads again (the server's keepalive ends a dead one).
            self._tasks[0].cancel()
            await asyncio.gather(self._tasks[0], return_exceptions=True)
            self._shutdown()
            await self._close_quietly(effect.code, effect.reason)
        elif outbox.broken is None:
            flush = asyncio.get_running_loop().create_task(outbox.flush())
            await self._wait_at_most(flush, self._close_timeout_s)
            flush.cancel()
            await asyncio.gather(flush, return_exceptions=True)
            await self._close_quietly(effect.code, effect.reason)
        self._shutdown()
        self._tasks[0].cancel()
        await asyncio.gather(self._tasks[0], return_exceptions=True)
        self._closed_event.set()

    async def _close_quietly(self, code: int, reason: str) -> None:
        try:
            await self._close_socket(code, reason)
        except Exception as exc:
            logger.debug("sync: close failed: %r", exc)

    def _shutdown(self) -> None:
        """Release every subscription; the state machine becomes CLOSED."""
        if self._shut_down:
            return
        self._shut_down = True
        handoff, self._handoff = self._handoff, None
        if handoff is not None:
            plan, runs = handoff
            for run in runs.values():
                run.subscription.close()
            self._end_plan(plan)
        for subscription in self.state.close():
            subscription.close()
        self._mutations.clear()
