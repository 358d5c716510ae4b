"""The protocol state of one sync connection: a pure, synchronous state machine.

No I/O and no asyncio here. The asyncio shell (:mod:`convection.sync.worker`) feeds it, in
order, the inbound frames (:meth:`SyncState.receive_text`, :meth:`SyncState.receive_bytes`)
and the completions of the work it asked for (:meth:`SyncState.auth_succeeded`,
:meth:`SyncState.mutation_completed`, ...), and carries out the :data:`Effect` lists it gets
back in order. Transitions are computed in two steps around the asynchronous query runs:
:meth:`SyncState.begin_transition` says what to run and at which ts;
:meth:`SyncState.finish_transition` turns the results into the Transition message.

Invariants (docs/internals/protocol.md):

* Every Transition starts exactly at the end version of the previous one (``sent_version``;
  ``{0, 0, 0}`` first) and ends at ``{received querySet, received identity, ts}``.
* ``ts`` never decreases and is at least the ts of every MutationResponse already emitted.
  While a mutation runs (between :meth:`mutation_started` and :meth:`mutation_completed`),
  ``ts`` stays at or below the latest ts seen when it started: its commit ts is above that,
  so no Transition can cover a mutation whose response has not been emitted yet.
* A query result is emitted only when its fingerprint (value or error, plus log lines)
  differs from the last one emitted for that query on this connection.
* Removed queries get one ``QueryRemoved`` and never a result afterwards.
* A Transition that would change nothing (same versions, no modifications) is not sent,
  unless a MutationResponse/ActionResponse was emitted since the last one: clients settle
  requests on the next Transition (even an empty one), and the Rust/Python client re-delivers
  every subscribed value on any Transition.
* After an identity change every query is rerun under the new identity.
* Query-set changes and identity changes received while a Transition is being computed are
  folded into the next one (they are only applied in :meth:`begin_transition`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeAlias

import orjson

from convection import knobs
from convection.application.interface import (
    ANONYMOUS,
    FunctionOutcome,
    Identity,
    QueryRun,
    QuerySubscription,
)
from convection.errors import ConvectionError
from convection.protocol import messages as msgs
from convection.protocol import splice
from convection.protocol.messages import (
    INITIAL_VERSION,
    Action,
    AddQuery,
    Authenticate,
    ClientMessage,
    Connect,
    Event,
    ModifyQuerySet,
    Mutation,
    ProtocolError,
    QuerySetModification,
    RemoveQuery,
    ServerMessage,
    StateVersion,
    TokenType,
)

_ARGS_ERROR_FINGERPRINT = b"\x00convection:args-error"


class SyncStateError(ConvectionError):
    """The shell used the state machine out of order (a bug in the caller, not the client)."""

    code = "InternalError"


class Phase(enum.Enum):
    """Lifecycle of one connection.

    ::

        AWAITING_CONNECT --Connect--> CONNECTED
        CONNECTED --Authenticate--> AUTHENTICATING   (the shell runs app.authenticate)
        AUTHENTICATING --auth_succeeded--> CONNECTED
        AUTHENTICATING --auth_failed--> CLOSED       (AuthError, then close)
        any --protocol error / overload / internal error / close()--> CLOSED

    In AUTHENTICATING no inbound frame may be fed (the shell awaits the authentication before
    reading on, so later messages see the new identity). CLOSED is terminal: inbound frames
    and completions are ignored and produce no effects.
    """

    AWAITING_CONNECT = "awaiting_connect"
    CONNECTED = "connected"
    AUTHENTICATING = "authenticating"
    CLOSED = "closed"


# --------------------------------------------------------------------------------------
# Effects: what the shell must do, in list order.


@dataclass(frozen=True, slots=True)
class Send:
    """Queue ``message`` for sending (after everything queued before it)."""

    message: ServerMessage


@dataclass(frozen=True, slots=True)
class RunMutation:
    """Queue a mutation behind the socket's other mutations (they run one at a time).

    With ``args_error`` set, do not run anything: complete it with a failed outcome carrying
    that message (still in queue order)."""

    request_id: int
    udf_path: str
    args: Any
    args_error: str | None
    identity: Identity
    idempotency_key: tuple[str, int] | None


@dataclass(frozen=True, slots=True)
class RunAction:
    """Start an action now (actions run concurrently). ``args_error`` as in RunMutation."""

    request_id: int
    udf_path: str
    args: Any
    args_error: str | None
    identity: Identity


@dataclass(frozen=True, slots=True)
class RunAuthenticate:
    """Call ``app.authenticate`` and report with auth_succeeded / auth_failed before feeding
    the next inbound frame."""

    base_version: int
    token_type: TokenType
    value: str | None
    impersonating: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ScheduleTransition:
    """Compute a Transition soon (coalesced with any other pending request)."""


@dataclass(frozen=True, slots=True)
class Close:
    """Send what is queued, then close the socket with ``code`` and ``reason``.

    ``detail`` is for the server log only (never sent)."""

    code: int
    reason: str
    detail: str = ""


Effect: TypeAlias = Send | RunMutation | RunAction | RunAuthenticate | ScheduleTransition | Close


# --------------------------------------------------------------------------------------
# Query bookkeeping and transition plans


@dataclass(slots=True)
class TrackedQuery:
    """One query of the client's query set, as this connection last computed it."""

    query_id: int
    udf_path: str
    args: Any
    args_error: str | None
    journal: str | None
    fingerprint: bytes | None = None
    """Fingerprint of the last result emitted; None until one was."""
    subscription: QuerySubscription | None = None
    """The dependency of the last computed result; None before the first run."""


@dataclass(slots=True)
class QueryToRun:
    """One query a plan runs (not frozen: built for every query of every Transition, and a
    frozen dataclass sets each field through ``object.__setattr__``; never mutated)."""

    query_id: int
    udf_path: str
    args: Any
    journal: str | None


@dataclass(slots=True)
class TransitionPlan:
    """What :meth:`SyncState.begin_transition` decided; pass it back to finish_transition.

    The shell runs ``to_run`` with ``app.subscribe_query(path, args, identity, journal, ts)``
    and, once the plan is finished (or abandoned), closes ``subscriptions_to_close`` (those of
    removed queries and of the queries being rerun)."""

    start: StateVersion
    end: StateVersion
    identity: Identity
    to_run: list[QueryToRun]
    removed: list[int]
    args_failures: list[int]
    subscriptions_to_close: list[QuerySubscription] = field(default_factory=list)
    required: bool = False
    """A MutationResponse/ActionResponse was emitted since the last Transition: send this
    one even if it changes nothing (the client settles requests on the next Transition)."""

    @property
    def ts(self) -> int:
        return self.end.ts


@dataclass(slots=True)
class TransitionResult:
    """The Transition to send, encoded (None when it would change nothing: same versions, no
    modifications, not required), and the new subscriptions to watch for invalidation."""

    encoded: bytes | None
    new_subscriptions: list[QuerySubscription]

    @property
    def message(self) -> ServerMessage | None:
        """The Transition decoded (for tests and logs; the shell sends ``encoded``)."""
        return None if self.encoded is None else orjson.loads(self.encoded)


# --------------------------------------------------------------------------------------


class SyncState:
    """Everything one connection remembers about its client (docs/internals/protocol.md).

    Created when the socket opens; discarded when it closes. Not thread-safe: the shell calls
    it from one event loop.
    """

    def __init__(
        self,
        *,
        max_message_size_bytes: int = knobs.SYNC_MAX_MESSAGE_SIZE_BYTES,
        max_queries_per_modify: int = knobs.SYNC_MAX_QUERIES_PER_MODIFY_COUNT,
        max_queries: int = knobs.SYNC_MAX_QUERIES_PER_SOCKET_COUNT,
    ) -> None:
        self._max_message_size = max_message_size_bytes
        self._max_queries_per_modify = max_queries_per_modify
        self._max_queries = max_queries
        self.phase = Phase.AWAITING_CONNECT
        self.session_id: str | None = None
        self.client_clock_skew_ms: int | None = None
        self.max_observed_ts: int | None = None
        """The client's ``maxObservedTimestamp`` from Connect (for the shell to log)."""
        self.received_query_set = 0
        self.received_identity = 0
        self.sent_version = INITIAL_VERSION
        self.identity: Identity = ANONYMOUS
        """The identity of the last Transition; later Authenticates are in pending_identity."""
        self.pending_identity: Identity | None = None
        self.queries: dict[int, TrackedQuery] = {}
        self._live_query_ids: set[int] = set()
        """The query ids live once every received modification is applied (checked on
        receipt: a duplicate Add is refused before anything runs)."""
        self.max_mutation_ts_sent = 0
        self._pending_modifications: list[QuerySetModification] = []
        self._ts_ceiling: int | None = None
        self._transition: TransitionPlan | None = None
        self._transition_required = False

    # ----------------------------------------------------------------------------------
    # Queries about the state

    @property
    def closed(self) -> bool:
        return self.phase is Phase.CLOSED

    @property
    def effective_identity(self) -> Identity:
        """The identity the next mutation/action runs as (latest accepted Authenticate)."""
        return self.pending_identity if self.pending_identity is not None else self.identity

    # ----------------------------------------------------------------------------------
    # Inbound frames

    def receive_text(self, text: str, *, now_ms: float = 0.0) -> list[Effect]:
        """Handle one text frame. ``now_ms`` is the server's wall clock (for clock skew)."""
        self._check_can_receive()
        if self.phase is Phase.CLOSED:
            return []
        if len(text) > self._max_message_size or (
            4 * len(text) > self._max_message_size
            and len(text.encode("utf-8", errors="surrogatepass")) > self._max_message_size
        ):
            return self._close(
                msgs.CLOSE_MESSAGE_TOO_BIG,
                "MessageTooBig",
                f"inbound message over {self._max_message_size} bytes",
            )
        try:
            message = msgs.parse_client_message(text)
        except ProtocolError as exc:
            return self._fatal(exc.code, exc.message)
        return self.receive_message(message, now_ms=now_ms)

    def receive_bytes(self, data: bytes) -> list[Effect]:
        """A binary frame: the protocol is text-only, so this is a client mistake (FatalError)."""
        self._check_can_receive()
        if self.phase is Phase.CLOSED:
            return []
        return self._fatal(
            "WSMessageNotText",
            f"Received a binary WebSocket frame ({len(data)} bytes); the sync protocol uses "
            "text frames holding one JSON message each.",
        )

    def receive_message(self, message: ClientMessage, *, now_ms: float = 0.0) -> list[Effect]:
        """Handle one parsed client message."""
        self._check_can_receive()
        if self.phase is Phase.CLOSED:
            return []
        if self.phase is Phase.AWAITING_CONNECT:
            if not isinstance(message, Connect):
                return self._fatal(
                    "ConnectNotFirst",
                    f"The first message on a socket must be Connect, got {_type_name(message)}.",
                )
        elif isinstance(message, Connect):
            return self._fatal("DuplicateConnect", "Connect was sent twice on one socket.")

        if isinstance(message, Connect):
            self.phase = Phase.CONNECTED
            self.session_id = message.session_id
            self.max_observed_ts = message.max_observed_timestamp
            if message.client_ts is not None:
                self.client_clock_skew_ms = message.client_ts - int(now_ms)
            return []
        if isinstance(message, ModifyQuerySet):
            return self._modify_query_set(message)
        if isinstance(message, Mutation):
            return [
                RunMutation(
                    request_id=message.request_id,
                    udf_path=message.udf_path,
                    args=message.args,
                    args_error=message.args_error,
                    identity=self.effective_identity,
                    idempotency_key=None
                    if self.session_id is None
                    else (self.session_id, message.request_id),
                )
            ]
        if isinstance(message, Authenticate):
            if message.base_version != self.received_identity:
                # The reference closes 1011 here; a wrong version is the client's mistake
                # (docs/internals/protocol.md: BadRequest/Conflict), so it gets a FatalError saying so.
                return self._fatal(
                    "BaseVersionMismatch",
                    f"Authenticate baseVersion {message.base_version} doesn't match the "
                    f"identity version {self.received_identity} (the number of Authenticate "
                    "messages already received on this socket).",
                )
            self.phase = Phase.AUTHENTICATING
            return [
                RunAuthenticate(
                    message.base_version,
                    message.token_type,
                    message.value,
                    message.impersonating,
                )
            ]
        if isinstance(message, Event):
            return []
        assert isinstance(message, Action)
        return [
            RunAction(
                request_id=message.request_id,
                udf_path=message.udf_path,
                args=message.args,
                args_error=message.args_error,
                identity=self.effective_identity,
            )
        ]

    def _modify_query_set(self, message: ModifyQuerySet) -> list[Effect]:
        if message.base_version != self.received_query_set:
            return self._fatal(
                "BaseVersionMismatch",
                f"Base version {message.base_version} passed up doesn't match the current "
                f"version {self.received_query_set}",
            )
        if message.new_version <= message.base_version:
            return self._fatal(
                "BaseVersionMismatch",
                f"ModifyQuerySet newVersion {message.new_version} must be above its "
                f"baseVersion {message.base_version}.",
            )
        if len(message.modifications) > self._max_queries_per_modify:
            return self._fatal(
                "TooManyQueries",
                f"ModifyQuerySet holds {len(message.modifications)} modifications; at most "
                f"{self._max_queries_per_modify} are allowed in one message "
                "(knob SYNC_MAX_QUERIES_PER_MODIFY_COUNT). Split the change into several "
                "messages.",
            )
        live = set(self._live_query_ids)
        for modification in message.modifications:
            if isinstance(modification, AddQuery):
                if modification.query_id in live:
                    return self._fatal(
                        "DuplicateQueryId",
                        f"ModifyQuerySet adds queryId {modification.query_id}, which is "
                        "already in the query set; remove it first or use a new id.",
                    )
                live.add(modification.query_id)
            else:
                live.discard(modification.query_id)
        if len(live) > self._max_queries:
            return self._fatal(
                "TooManyQueries",
                f"The query set would hold {len(live)} queries; at most {self._max_queries} "
                "are allowed on one connection (knob SYNC_MAX_QUERIES_PER_SOCKET_COUNT).",
            )
        self._live_query_ids = live
        self._pending_modifications.extend(message.modifications)
        self.received_query_set = message.new_version
        return [ScheduleTransition()]

    # ----------------------------------------------------------------------------------
    # Completions of the work the effects asked for

    def auth_succeeded(self, identity: Identity) -> list[Effect]:
        """``app.authenticate`` accepted the token: bump the identity version (the next
        Transition confirms it to the client, even if no result changes)."""
        if self.phase is Phase.CLOSED:
            return []
        self._expect(Phase.AUTHENTICATING, "auth_succeeded")
        self.phase = Phase.CONNECTED
        self.pending_identity = identity
        self.received_identity += 1
        return [ScheduleTransition()]

    def auth_failed(self, message: str, *, code: str = "AuthUpdateFailed") -> list[Effect]:
        """The token of an Authenticate was rejected: AuthError (authUpdateAttempted true)
        with the identity version of the last Transition sent, then close."""
        if self.phase is Phase.CLOSED:
            return []
        self._expect(Phase.AUTHENTICATING, "auth_failed")
        return self._auth_error(message, code, attempted=True)

    def auth_lost(self, message: str, *, code: str = "Unauthenticated") -> list[Effect]:
        """The identity stopped being valid while running a request or a Transition (e.g. the
        token expired): AuthError with authUpdateAttempted false, then close."""
        if self.phase is Phase.CLOSED:
            return []
        return self._auth_error(message, code, attempted=False)

    def _auth_error(self, message: str, code: str, *, attempted: bool) -> list[Effect]:
        error = msgs.auth_error(message, self.sent_version.identity, attempted)
        return [Send(error), *self._close(msgs.CLOSE_NORMAL, code, message)]

    def mutation_started(self, latest_ts: int) -> None:
        """The shell is about to run a mutation; ``latest_ts`` is ``app.latest_ts()`` read
        just before. Until it completes, Transitions stay at or below that ts."""
        self._ts_ceiling = latest_ts

    def mutation_completed(self, request_id: int, outcome: FunctionOutcome) -> list[Effect]:
        """Emit the MutationResponse, then ask for the Transition that covers it."""
        self._ts_ceiling = None
        if self.phase is Phase.CLOSED:
            return []
        if outcome.success:
            if outcome.ts is None:
                return self.internal_error(f"mutation {request_id} succeeded without a ts")
            response = msgs.mutation_response(
                request_id,
                success=True,
                value_json=outcome.value_json,
                ts=outcome.ts,
                log_lines=outcome.log_lines,
            )
            self.max_mutation_ts_sent = max(self.max_mutation_ts_sent, outcome.ts)
        else:
            response = msgs.mutation_response(
                request_id,
                success=False,
                error_message=outcome.error_message,
                error_data_json=outcome.error_data_json if outcome.has_error_data else None,
                log_lines=outcome.log_lines,
            )
        self._transition_required = True
        return [Send(response), ScheduleTransition()]

    def action_completed(self, request_id: int, outcome: FunctionOutcome) -> list[Effect]:
        if self.phase is Phase.CLOSED:
            return []
        response = msgs.action_response(
            request_id,
            success=outcome.success,
            value_json=outcome.value_json,
            error_message=outcome.error_message,
            error_data_json=outcome.error_data_json if outcome.has_error_data else None,
            log_lines=outcome.log_lines,
        )
        self._transition_required = True
        return [Send(response), ScheduleTransition()]

    def overloaded(self, reason: str, detail: str = "") -> list[Effect]:
        """Too much work queued on this socket: close 1013 (the client retries later)."""
        if self.phase is Phase.CLOSED:
            return []
        return self._close(msgs.CLOSE_TRY_AGAIN_LATER, reason, detail)

    def internal_error(self, detail: str) -> list[Effect]:
        """Something failed on the server side: close 1011 InternalServerError."""
        if self.phase is Phase.CLOSED:
            return []
        return self._close(msgs.CLOSE_INTERNAL_ERROR, "InternalServerError", detail)

    def close(self) -> list[QuerySubscription]:
        """The connection is over: returns every subscription still held, to be closed."""
        self.phase = Phase.CLOSED
        subscriptions = [q.subscription for q in self.queries.values() if q.subscription]
        for query in self.queries.values():
            query.subscription = None
        return subscriptions

    # ----------------------------------------------------------------------------------
    # Transitions

    def transition_ts(self, latest_ts: int) -> int:
        """The ts of the next Transition given ``app.latest_ts()`` (see the invariants)."""
        ts = latest_ts
        if self._ts_ceiling is not None:
            ts = min(ts, self._ts_ceiling)
        return max(ts, self.sent_version.ts, self.max_mutation_ts_sent)

    def begin_transition(self, latest_ts: int) -> TransitionPlan:
        """Apply the pending query-set and identity changes and plan the next Transition.

        Runs: new queries (with their journal), queries whose subscription was invalidated
        at or before the chosen ts, and every query after an identity change.
        """
        if self.phase is Phase.CLOSED:
            raise SyncStateError("begin_transition on a closed connection")
        if self._transition is not None:
            raise SyncStateError("begin_transition while another transition is in progress")
        ts = self.transition_ts(latest_ts)
        end = StateVersion(self.received_query_set, self.received_identity, ts)
        to_close: list[QuerySubscription] = []
        removed: list[int] = []
        for modification in self._pending_modifications:
            if isinstance(modification, AddQuery):
                # (receive_text refused an Add for a live id: this replaces nothing)
                old = self.queries.pop(modification.query_id, None)
                if old is not None and old.subscription is not None:
                    to_close.append(old.subscription)
                self.queries[modification.query_id] = TrackedQuery(
                    query_id=modification.query_id,
                    udf_path=modification.udf_path,
                    args=modification.args,
                    args_error=modification.args_error,
                    journal=modification.journal,
                )
            else:
                assert isinstance(modification, RemoveQuery)
                gone = self.queries.pop(modification.query_id, None)
                if gone is None:
                    continue  # unknown id: nothing to acknowledge (lenient)
                removed.append(modification.query_id)
                if gone.subscription is not None:
                    to_close.append(gone.subscription)
        self._pending_modifications.clear()

        identity_changed = self.pending_identity is not None
        if self.pending_identity is not None:
            self.identity = self.pending_identity
            self.pending_identity = None

        to_run: list[QueryToRun] = []
        args_failures: list[int] = []
        for query in self.queries.values():
            if query.args_error is not None:
                if query.fingerprint is None:
                    args_failures.append(query.query_id)
                continue
            subscription = query.subscription
            if subscription is not None and not identity_changed:
                invalidated_at = subscription.invalidated_at
                if invalidated_at is None or invalidated_at > ts:
                    continue
            to_run.append(QueryToRun(query.query_id, query.udf_path, query.args, query.journal))
            if subscription is not None:
                to_close.append(subscription)
                query.subscription = None

        plan = TransitionPlan(
            start=self.sent_version,
            end=end,
            identity=self.identity,
            to_run=to_run,
            removed=removed,
            args_failures=args_failures,
            subscriptions_to_close=to_close,
            required=self._transition_required,
        )
        self._transition_required = False
        self._transition = plan
        return plan

    def finish_transition(
        self, plan: TransitionPlan, runs: Mapping[int, QueryRun], *, now_ns: int | None = None
    ) -> TransitionResult:
        """Record the runs of ``plan`` and build its Transition (``now_ns`` → serverTs)."""
        if self._transition is not plan:
            raise SyncStateError("finish_transition for a plan that is not in progress")
        self._transition = None
        if self.phase is Phase.CLOSED:
            raise SyncStateError("finish_transition on a closed connection")
        if len(runs) < len(plan.to_run):
            self._missing_runs(plan, runs)

        # Modifications are encoded bytes: a result's shared part comes encoded from the
        # cache (once for all its subscribers) and only queryId/journal are spliced here.
        modifications: dict[int, bytes] = {
            query_id: splice.query_removed(query_id) for query_id in plan.removed
        }
        for query_id in plan.args_failures:
            query = self.queries.get(query_id)
            if query is None or query.fingerprint is not None or query.args_error is None:
                continue
            query.fingerprint = _ARGS_ERROR_FINGERPRINT
            modifications[query_id] = orjson.dumps(
                msgs.query_failed(query_id, query.args_error, [], None)
            )

        new_subscriptions: list[QuerySubscription] = []
        for item in plan.to_run:
            run = runs.get(item.query_id)
            if run is None:
                self._missing_runs(plan, runs)
            query = self.queries[item.query_id]
            query.subscription = run.subscription
            new_subscriptions.append(run.subscription)
            outcome = run.outcome
            if outcome.success or outcome.journal is not None:
                query.journal = outcome.journal
            if run.fingerprint == query.fingerprint:
                continue
            query.fingerprint = run.fingerprint
            body = run.shared.shared_body() if run.shared is not None else splice.result_body(outcome)
            modifications[item.query_id] = splice.query_modification(
                item.query_id,
                outcome.success,
                body,
                query.journal,
                b"" if outcome.success else splice.error_data_suffix(outcome),
            )

        start = plan.start
        if not start.precedes_or_equals(plan.end) or (
            start is not self.sent_version and start != self.sent_version
        ):
            raise SyncStateError(f"transition {plan.start} -> {plan.end} does not chain")
        if not modifications and not plan.required and start == plan.end:
            # e.g. an invalidation whose rerun must wait for a running mutation: sending it
            # would only make the Rust/Python client re-deliver unchanged results.
            return TransitionResult(None, new_subscriptions)
        encoded = splice.transition(
            plan.start,
            plan.end,
            [*map(modifications.__getitem__, sorted(modifications))],
            client_clock_skew=self.client_clock_skew_ms,
            server_ts=now_ns,
        )
        self.sent_version = plan.end
        return TransitionResult(encoded, new_subscriptions)

    @staticmethod
    def _missing_runs(plan: TransitionPlan, runs: Mapping[int, QueryRun]) -> NoReturn:
        missing = [item.query_id for item in plan.to_run if item.query_id not in runs]
        raise SyncStateError(f"finish_transition without results for queries {missing}")

    def abandon_transition(self, plan: TransitionPlan) -> None:
        """The shell could not finish ``plan`` (it is closing): forget it."""
        if self._transition is plan:
            self._transition = None
            self._transition_required = self._transition_required or plan.required

    # ----------------------------------------------------------------------------------
    # Helpers

    def _fatal(self, code: str, message: str) -> list[Effect]:
        """A deterministic client error: FatalError, then close (the reference sends a close
        frame without a status code; ASGI needs one, so 1000 with the short code)."""
        return [Send(msgs.fatal_error(message)), *self._close(msgs.CLOSE_NORMAL, code, message)]

    def _close(self, code: int, reason: str, detail: str) -> list[Effect]:
        self.phase = Phase.CLOSED
        return [Close(code, msgs.close_reason(reason), detail)]

    def _check_can_receive(self) -> None:
        if self.phase is Phase.AUTHENTICATING:
            raise SyncStateError(
                "an inbound message was fed while an Authenticate is being processed; "
                "await the authentication first"
            )

    def _expect(self, phase: Phase, what: str) -> None:
        if self.phase is not phase:
            raise SyncStateError(f"{what} in state {self.phase.name}, expected {phase.name}")


def _type_name(message: ClientMessage) -> str:
    return type(message).__name__
