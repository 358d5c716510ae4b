from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from convection.application.interface import ANONYMOUS, FunctionOutcome, Identity, QueryRun
from convection.protocol.messages import StateVersion
from convection.protocol.timestamps import decode_ts, encode_ts
from convection.sync.state import (
    Close,
    Effect,
    Phase,
    RunAction,
    RunAuthenticate,
    RunMutation,
    ScheduleTransition,
    Send,
    SyncState,
    SyncStateError,
    TransitionPlan,
)

SESSION = "8aa4c1c2-0000-4000-8000-000000000000"
USER = Identity(kind="user", attributes={"tokenIdentifier": "iss|u1"}, token="jwt")


class FakeSub:
    def __init__(self) -> None:
        self.invalidated_at: int | None = None
        self.closed = False
        self.callback: Callable[[], None] | None = None

    def set_callback(self, callback: Callable[[], None]) -> None:
        self.callback = callback

    def close(self) -> None:
        self.closed = True


def ok(value: Any, *, log_lines: list[str] | None = None, journal: str | None = None) -> QueryRun:
    value_json = orjson.dumps(value)
    lines = log_lines or []
    return QueryRun(
        FunctionOutcome(
            success=True, value=value, value_json=value_json, log_lines=lines, journal=journal
        ),
        fingerprint=value_json + orjson.dumps(lines),
        subscription=FakeSub(),
    )


def failed(message: str, *, data: bytes | None = None, journal: str | None = None) -> QueryRun:
    outcome = FunctionOutcome(
        success=False,
        error_message=message,
        has_error_data=data is not None,
        error_data_json=data or b"null",
        journal=journal,
    )
    return QueryRun(
        outcome, fingerprint=b"E" + message.encode() + (data or b""), subscription=FakeSub()
    )


def text(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def connect(state: SyncState, **extra: Any) -> list[Effect]:
    return state.receive_text(
        text(
            {
                "type": "Connect",
                "sessionId": SESSION,
                "connectionCount": 0,
                "clientTs": 1000,
                **extra,
            }
        ),
        now_ms=400.0,
    )


def add(
    qid: int, path: str = "messages:list", args: Any = None, journal: str | None = None
) -> dict[str, Any]:
    mod: dict[str, Any] = {"type": "Add", "queryId": qid, "udfPath": path, "args": [args or {}]}
    if journal is not None:
        mod["journal"] = journal
    return mod


def modify(state: SyncState, base: int, *mods: dict[str, Any]) -> list[Effect]:
    return state.receive_text(
        text(
            {
                "type": "ModifyQuerySet",
                "baseVersion": base,
                "newVersion": base + 1,
                "modifications": list(mods),
            }
        )
    )


def remove(qid: int) -> dict[str, Any]:
    return {"type": "Remove", "queryId": qid}


def transition(
    state: SyncState, latest_ts: int, results: dict[int, QueryRun] | None = None
) -> tuple[TransitionPlan, dict[str, Any]]:
    """Run one transition; queries without a canned result get ``ok(None)``."""
    plan = state.begin_transition(latest_ts)
    runs = {item.query_id: (results or {}).get(item.query_id) or ok(None) for item in plan.to_run}
    result = state.finish_transition(plan, runs, now_ns=123)
    message = orjson.loads(orjson.dumps(result.message))
    assert message is not None, "the transition was skipped"
    assert result.new_subscriptions == [runs[item.query_id].subscription for item in plan.to_run]
    return plan, message


def versions(message: dict[str, Any]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    def v(obj: dict[str, Any]) -> tuple[int, int, int]:
        return (obj["querySet"], obj["identity"], decode_ts(obj["ts"]))

    return v(message["startVersion"]), v(message["endVersion"])


def phase(state: SyncState) -> Phase:
    return state.phase


def sent(effects: list[Effect]) -> list[dict[str, Any]]:
    return [orjson.loads(orjson.dumps(e.message)) for e in effects if isinstance(e, Send)]


def closes(effects: list[Effect]) -> list[Close]:
    return [e for e in effects if isinstance(e, Close)]


# --- PROTOCOL.md §4.11: the annotated smoke-test session -------------------------------


def test_minimal_session() -> None:
    state = SyncState()
    assert connect(state) == []
    assert phase(state) is Phase.CONNECTED and state.client_clock_skew_ms == 600

    assert modify(state, 0, add(0)) == [ScheduleTransition()]
    plan, msg = transition(state, 100, {0: ok([], log_lines=["[LOG] 'ran'"])})
    assert [q.query_id for q in plan.to_run] == [0] and plan.identity == ANONYMOUS
    assert msg == {
        "type": "Transition",
        "startVersion": {"querySet": 0, "identity": 0, "ts": "AAAAAAAAAAA="},
        "endVersion": {"querySet": 1, "identity": 0, "ts": encode_ts(100)},
        "modifications": [
            {
                "type": "QueryUpdated",
                "queryId": 0,
                "value": [],
                "logLines": ["[LOG] 'ran'"],
                "journal": None,
            }
        ],
        "clientClockSkew": 600,
        "serverTs": 123,
    }
    sub0 = state.queries[0].subscription
    assert isinstance(sub0, FakeSub)

    # Mutation -> MutationResponse, then a Transition whose ts covers it.
    (run,) = state.receive_text(
        text(
            {
                "type": "Mutation",
                "requestId": 0,
                "udfPath": "messages:send",
                "args": [{"body": "hi"}],
            }
        )
    )
    assert isinstance(run, RunMutation)
    assert (
        run.idempotency_key == (SESSION, 0)
        and run.args == {"body": "hi"}
        and run.identity == ANONYMOUS
    )
    state.mutation_started(100)
    effects = state.mutation_completed(
        0, FunctionOutcome(success=True, value_json=b'"f47e"', ts=150)
    )
    assert isinstance(effects[0], Send) and effects[1:] == [ScheduleTransition()]
    assert sent(effects) == [
        {
            "type": "MutationResponse",
            "requestId": 0,
            "success": True,
            "result": "f47e",
            "ts": encode_ts(150),
            "logLines": [],
        }
    ]
    sub0.invalidated_at = 150
    plan, msg = transition(state, 150, {0: ok([{"body": "hi"}])})
    assert sub0 in plan.subscriptions_to_close
    assert versions(msg) == ((1, 0, 100), (1, 0, 150))
    assert msg["modifications"][0]["value"] == [{"body": "hi"}]

    # A failing mutation: response with ts null, then an empty Transition.
    state.receive_text(
        text({"type": "Mutation", "requestId": 1, "udfPath": "messages:fail", "args": [{}]})
    )
    state.mutation_started(150)
    effects = state.mutation_completed(
        1, FunctionOutcome(success=False, error_message="Uncaught Error: nope")
    )
    assert sent(effects) == [
        {
            "type": "MutationResponse",
            "requestId": 1,
            "success": False,
            "result": "Uncaught Error: nope",
            "ts": None,
            "logLines": [],
        }
    ]
    plan, msg = transition(state, 150)
    assert plan.to_run == [] and msg["modifications"] == []
    assert versions(msg) == ((1, 0, 150), (1, 0, 150))

    # Authenticate -> identity bump in the next Transition; unchanged results are not resent.
    (auth,) = state.receive_text(
        text({"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": "eyJ"})
    )
    assert auth == RunAuthenticate(0, "User", "eyJ", None)
    assert phase(state) is Phase.AUTHENTICATING
    assert state.auth_succeeded(USER) == [ScheduleTransition()]
    plan, msg = transition(state, 160, {0: ok([{"body": "hi"}])})
    assert plan.identity == USER and [q.query_id for q in plan.to_run] == [0]
    assert versions(msg) == ((1, 0, 150), (1, 1, 160))
    assert msg["modifications"] == []


def test_versions_chain_across_many_transitions() -> None:
    state = SyncState()
    connect(state)
    previous_end = (0, 0, 0)
    qs = 0
    for i in range(20):
        if i % 3 == 0:
            modify(state, qs, add(i))
            qs += 1
        _, msg = transition(state, 10 * i + (5 if i % 2 else 0))
        start, end = versions(msg)
        assert start == previous_end
        assert end[0] == qs and end[2] >= start[2]
        previous_end = end


# --- ordering and ts rules -----------------------------------------------------------


def test_ts_never_decreases_and_covers_sent_mutation_responses() -> None:
    state = SyncState()
    connect(state)
    modify(state, 0)
    _, msg = transition(state, 500)
    assert versions(msg)[1][2] == 500
    # the app's latest ts cannot move back, but the state guards anyway
    plan = state.begin_transition(400)
    assert plan.ts == 500
    # a transition that changes nothing is skipped
    assert state.finish_transition(plan, {}).message is None
    state.mutation_started(500)
    state.mutation_completed(0, FunctionOutcome(success=True, ts=700))
    assert state.transition_ts(600) == 700


def test_transitions_stay_below_a_running_mutation() -> None:
    state = SyncState()
    connect(state)
    modify(state, 0)
    transition(state, 100)
    state.mutation_started(120)  # latest ts when the mutation started
    # Its commit (ts > 120) may already be published while it runs: no Transition may cover
    # it before its MutationResponse has been emitted.
    _, msg = transition(state, 200)
    assert versions(msg)[1][2] == 120
    state.mutation_completed(0, FunctionOutcome(success=True, ts=180))
    _, msg = transition(state, 200)
    assert versions(msg) == ((1, 0, 120), (1, 0, 200))


def test_an_invalidation_waiting_for_a_running_mutation_sends_nothing() -> None:
    state = SyncState()
    connect(state)
    modify(state, 0, add(0))
    transition(state, 100)
    state.mutation_started(100)
    sub = state.queries[0].subscription
    assert isinstance(sub, FakeSub)
    sub.invalidated_at = 110  # the running mutation's own commit
    plan = state.begin_transition(110)
    assert plan.ts == 100 and plan.to_run == []
    assert state.finish_transition(plan, {}).message is None
    state.mutation_completed(0, FunctionOutcome(success=True, ts=110))
    plan, msg = transition(state, 110, {0: ok(["new"])})
    assert [q.query_id for q in plan.to_run] == [0]
    assert versions(msg) == ((1, 0, 100), (1, 0, 110))


def test_idempotent_replay_with_an_old_ts_still_gets_a_following_transition() -> None:
    state = SyncState()
    connect(state)
    modify(state, 0)
    transition(state, 1000)
    state.receive_text(text({"type": "Mutation", "requestId": 4, "udfPath": "m:m", "args": [{}]}))
    state.mutation_started(1000)
    effects = state.mutation_completed(4, FunctionOutcome(success=True, ts=300))
    assert ScheduleTransition() in effects
    _, msg = transition(state, 1000)
    assert versions(msg) == ((1, 0, 1000), (1, 0, 1000))  # start == end is legal


def test_action_completion_sends_response_and_schedules() -> None:
    state = SyncState()
    connect(state)
    (run,) = state.receive_text(
        text({"type": "Action", "requestId": 3, "udfPath": "messages:act", "args": [{"x": 1}]})
    )
    assert run == RunAction(3, "messages:act", {"x": 1.0}, None, ANONYMOUS)
    effects = state.action_completed(
        3, FunctionOutcome(success=True, value_json=b"{}", log_lines=["[INFO] action ran"])
    )
    assert sent(effects) == [
        {
            "type": "ActionResponse",
            "requestId": 3,
            "success": True,
            "result": {},
            "logLines": ["[INFO] action ran"],
        }
    ]
    assert effects[-1] == ScheduleTransition()


def test_convex_error_data_in_responses() -> None:
    state = SyncState()
    connect(state)
    effects = state.mutation_completed(
        2,
        FunctionOutcome(
            success=False, error_message="c", has_error_data=True, error_data_json=b'"c"'
        ),
    )
    assert sent(effects)[0]["errorData"] == "c"
    effects = state.action_completed(
        3,
        FunctionOutcome(
            success=False, error_message="d", has_error_data=True, error_data_json=b"null"
        ),
    )
    assert sent(effects)[0]["errorData"] is None


# --- query set, dedup, journals --------------------------------------------------------


def test_unchanged_results_are_not_resent() -> None:
    state = SyncState()
    connect(state)
    modify(state, 0, add(0), add(1))
    transition(state, 10, {0: ok(1), 1: ok(2)})
    for qid in (0, 1):
        sub = state.queries[qid].subscription
        assert isinstance(sub, FakeSub)
        sub.invalidated_at = 11
    _, msg = transition(state, 11, {0: ok(1), 1: ok(3)})
    assert [(mod["queryId"], mod["value"]) for mod in msg["modifications"]] == [(1, 3)]
    # log lines are part of the fingerprint
    sub = state.queries[0].subscription
    assert isinstance(sub, FakeSub)
    sub.invalidated_at = 12
    _, msg = transition(state, 12, {0: ok(1, log_lines=["[LOG] again"])})
    assert [mod["queryId"] for mod in msg["modifications"]] == [0]


def test_only_new_and_invalidated_queries_rerun() -> None:
    state = SyncState()
    connect(state)
    modify(state, 0, add(0), add(1))
    transition(state, 10)
    modify(state, 1, add(2))
    sub1 = state.queries[1].subscription
    assert isinstance(sub1, FakeSub)
    sub1.invalidated_at = 15
    sub0 = state.queries[0].subscription
    assert isinstance(sub0, FakeSub)
    sub0.invalidated_at = 25  # after the chosen ts: not yet
    plan = state.begin_transition(20)
    assert sorted(q.query_id for q in plan.to_run) == [1, 2]
    assert plan.subscriptions_to_close == [sub1]
    state.finish_transition(plan, {1: ok(None), 2: ok(None)})
    plan = state.begin_transition(25)
    assert [q.query_id for q in plan.to_run] == [0]


def test_remove_acknowledged_once_and_no_results_after() -> None:
    state = SyncState()
    connect(state)
    modify(state, 0, add(0), add(1))
    transition(state, 10)
    sub0 = state.queries[0].subscription
    assert isinstance(sub0, FakeSub)
    sub0.invalidated_at = 11
    modify(state, 1, remove(0), remove(99))  # 99 is unknown: tolerated
    plan, msg = transition(state, 11)
    assert plan.to_run == [] and plan.subscriptions_to_close == [sub0]
    assert msg["modifications"] == [{"type": "QueryRemoved", "queryId": 0}]
    assert versions(msg)[1][0] == 2
    _, msg = transition(state, 12)
    assert msg["modifications"] == []
    assert 0 not in state.queries


def test_add_then_remove_in_one_batch() -> None:
    state = SyncState()
    connect(state)
    modify(state, 0, add(4))
    modify(state, 1, remove(4))
    plan, msg = transition(state, 5)
    assert plan.to_run == []
    assert msg["modifications"] == [{"type": "QueryRemoved", "queryId": 4}]


def test_changes_during_a_transition_fold_into_the_next() -> None:
    state = SyncState()
    connect(state)
    modify(state, 0, add(0))
    plan = state.begin_transition(10)
    modify(state, 1, add(1), remove(0))
    state.receive_text(text({"type": "Authenticate", "baseVersion": 0, "tokenType": "None"}))
    state.auth_succeeded(ANONYMOUS)
    result = state.finish_transition(plan, {0: ok("zero")})
    assert result.message is not None
    start, end = versions(orjson.loads(orjson.dumps(result.message)))
    assert (start, end) == ((0, 0, 0), (1, 0, 10))
    assert [m_["queryId"] for m_ in result.message["modifications"]] == [0]
    plan2, msg = transition(state, 11, {1: ok("one")})
    assert [q.query_id for q in plan2.to_run] == [1]
    assert versions(msg) == ((1, 0, 10), (2, 1, 11))
    assert [(m_["type"], m_["queryId"]) for m_ in msg["modifications"]] == [
        ("QueryRemoved", 0),
        ("QueryUpdated", 1),
    ]


def test_journal_is_stored_sent_and_reused() -> None:
    state = SyncState()
    connect(state)
    modify(state, 0, add(0, "messages:page", journal="j0"))
    plan, msg = transition(state, 10, {0: ok([1], journal="j1")})
    assert plan.to_run[0].journal == "j0"
    assert msg["modifications"][0]["journal"] == "j1"
    sub = state.queries[0].subscription
    assert isinstance(sub, FakeSub)
    sub.invalidated_at = 11
    plan, msg = transition(state, 11, {0: failed("transient")})
    assert plan.to_run[0].journal == "j1"
    # a failed run that returns no journal keeps the last one
    assert msg["modifications"][0]["journal"] == "j1"
    assert state.queries[0].journal == "j1"


def test_query_failed_with_error_data() -> None:
    state = SyncState()
    connect(state)
    modify(state, 0, add(1))
    _, msg = transition(state, 10, {1: failed("Uncaught ConvexError: bad", data=b'{"code":"BAD"}')})
    assert msg["modifications"] == [
        {
            "type": "QueryFailed",
            "queryId": 1,
            "errorMessage": "Uncaught ConvexError: bad",
            "logLines": [],
            "journal": None,
            "errorData": {"code": "BAD"},
        }
    ]


def test_bad_query_args_fail_that_query_once_without_running() -> None:
    state = SyncState()
    connect(state)
    modify(state, 0, {"type": "Add", "queryId": 0, "udfPath": "a:b", "args": [{"$x": 1}]})
    plan, msg = transition(state, 10)
    assert plan.to_run == []
    (mod,) = msg["modifications"]
    assert mod["type"] == "QueryFailed" and "Invalid arguments" in mod["errorMessage"]
    state.receive_text(text({"type": "Authenticate", "baseVersion": 0, "tokenType": "None"}))
    state.auth_succeeded(ANONYMOUS)
    plan, msg = transition(state, 11)
    assert plan.to_run == [] and msg["modifications"] == []


def test_identity_change_reruns_everything_and_closes_old_subscriptions() -> None:
    state = SyncState()
    connect(state)
    modify(state, 0, add(0), add(1))
    transition(state, 10, {0: ok("a"), 1: ok("b")})
    old = [state.queries[0].subscription, state.queries[1].subscription]
    state.receive_text(
        text({"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": "t"})
    )
    state.auth_succeeded(USER)
    plan, msg = transition(state, 10, {0: ok("a"), 1: ok("b-for-user")})
    assert sorted(q.query_id for q in plan.to_run) == [0, 1]
    assert plan.subscriptions_to_close == old
    assert versions(msg) == ((1, 0, 10), (1, 1, 10))
    assert [m_["queryId"] for m_ in msg["modifications"]] == [1]


# --- auth (PROTOCOL.md §4.8) -------------------------------------------------------------


def test_set_auth_flow_with_refresh() -> None:
    state = SyncState()
    connect(state)
    (auth,) = state.receive_text(
        text({"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": "cached"})
    )
    assert isinstance(auth, RunAuthenticate)
    with pytest.raises(SyncStateError):
        modify(state, 0)  # the shell must await the authentication first
    state.auth_succeeded(USER)
    modify(state, 0, add(0))
    _, msg = transition(state, 10)
    assert versions(msg) == ((0, 0, 0), (1, 1, 10))
    # the client refreshes its token: Authenticate(1)
    state.receive_text(
        text({"type": "Authenticate", "baseVersion": 1, "tokenType": "User", "value": "fresh"})
    )
    state.auth_succeeded(USER)
    _, msg = transition(state, 11)
    assert versions(msg) == ((1, 1, 10), (1, 2, 11))
    # mutations after an accepted Authenticate run with the new identity even before the
    # Transition confirms it
    state.receive_text(text({"type": "Authenticate", "baseVersion": 2, "tokenType": "None"}))
    state.auth_succeeded(ANONYMOUS)
    (run,) = state.receive_text(
        text({"type": "Mutation", "requestId": 0, "udfPath": "m:m", "args": [{}]})
    )
    assert isinstance(run, RunMutation) and run.identity == ANONYMOUS


def test_invalid_token_sends_auth_error_and_closes() -> None:
    state = SyncState()
    connect(state)
    modify(state, 0)
    state.receive_text(
        text({"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": "ok"})
    )
    state.auth_succeeded(USER)
    transition(state, 10)
    state.receive_text(
        text({"type": "Authenticate", "baseVersion": 1, "tokenType": "User", "value": "bad"})
    )
    effects = state.auth_failed("Could not verify token", code="InvalidAuthHeader")
    assert sent(effects) == [
        {
            "type": "AuthError",
            "error": "Could not verify token",
            "baseVersion": 1,
            "authUpdateAttempted": True,
        }
    ]
    assert closes(effects) == [Close(1000, "InvalidAuthHeader", "Could not verify token")]
    assert state.closed
    assert state.receive_text(text({"type": "Event", "eventType": "x"})) == []


def test_expired_token_during_a_request() -> None:
    state = SyncState()
    connect(state)
    effects = state.auth_lost("Token expired", code="TokenExpired")
    assert sent(effects) == [
        {
            "type": "AuthError",
            "error": "Token expired",
            "baseVersion": 0,
            "authUpdateAttempted": False,
        }
    ]
    assert closes(effects)[0].reason == "TokenExpired"


def test_authenticate_with_wrong_base_version_is_fatal() -> None:
    state = SyncState()
    connect(state)
    effects = state.receive_text(
        text({"type": "Authenticate", "baseVersion": 3, "tokenType": "None"})
    )
    assert_fatal(effects, "BaseVersionMismatch", "Authenticate baseVersion 3")
    assert state.closed


def test_admin_impersonation_is_passed_through() -> None:
    state = SyncState()
    connect(state)
    (auth,) = state.receive_text(
        text(
            {
                "type": "Authenticate",
                "baseVersion": 0,
                "tokenType": "Admin",
                "value": "key",
                "impersonating": {"subject": "u1", "issuer": "x"},
            }
        )
    )
    assert auth == RunAuthenticate(0, "Admin", "key", {"subject": "u1", "issuer": "x"})


# --- reconnect (PROTOCOL.md §4.7) ---------------------------------------------------------


def test_reconnect_readds_queries_with_journals_and_resends_mutations() -> None:
    state = SyncState()
    assert (
        connect(
            state,
            connectionCount=3,
            lastCloseReason="InternalServerError",
            maxObservedTimestamp=encode_ts(10**9),
        )
        == []
    )
    assert state.max_observed_ts == 10**9
    state.receive_text(
        text({"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": "t"})
    )
    state.auth_succeeded(USER)
    modify(
        state, 0, add(3, "messages.js:list", journal="j3"), add(7, "messages:page", journal=None)
    )
    (resent,) = state.receive_text(
        text({"type": "Mutation", "requestId": 12, "udfPath": "messages:send", "args": [{}]})
    )
    assert isinstance(resent, RunMutation) and resent.idempotency_key == (SESSION, 12)
    assert resent.identity == USER
    plan, msg = transition(state, 50, {3: ok("three"), 7: ok("seven")})
    assert {q.query_id: q.journal for q in plan.to_run} == {3: "j3", 7: None}
    assert versions(msg) == ((0, 0, 0), (1, 1, 50))
    assert [m_["queryId"] for m_ in msg["modifications"]] == [3, 7]


# --- error paths (PROTOCOL.md §4.9) --------------------------------------------------------


def assert_fatal(effects: list[Effect], code: str, fragment: str) -> None:
    (message,) = sent(effects)
    assert message["type"] == "FatalError" and fragment in message["error"]
    assert closes(effects) == [Close(1000, code, closes(effects)[0].detail)]


def test_connect_must_come_first() -> None:
    state = SyncState()
    assert_fatal(modify(state, 0), "ConnectNotFirst", "must be Connect")
    assert state.closed and modify(state, 0) == []


def test_connect_only_once() -> None:
    state = SyncState()
    connect(state)
    assert_fatal(connect(state), "DuplicateConnect", "twice")


def test_wrong_query_set_base_version_is_fatal() -> None:
    state = SyncState()
    connect(state)
    modify(state, 0)
    assert_fatal(modify(state, 0), "BaseVersionMismatch", "Base version 0")
    assert state.closed


def test_query_set_version_must_grow() -> None:
    state = SyncState()
    connect(state)
    effects = state.receive_text(
        text({"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 0, "modifications": []})
    )
    assert_fatal(effects, "BaseVersionMismatch", "newVersion 0 must be above")


def test_duplicate_query_id_is_fatal() -> None:
    state = SyncState()
    connect(state)
    modify(state, 0, add(1))
    transition(state, 1)
    assert_fatal(modify(state, 1, add(1)), "DuplicateQueryId", "queryId 1")
    # twice in one message, before any transition ran
    state = SyncState()
    connect(state)
    assert_fatal(modify(state, 0, add(4), add(4)), "DuplicateQueryId", "queryId 4")


def test_removed_query_id_may_be_added_again() -> None:
    state = SyncState()
    connect(state)
    modify(state, 0, add(1))
    assert modify(state, 1, {"type": "Remove", "queryId": 1}, add(1)) != []
    assert not state.closed


def test_query_set_size_is_limited() -> None:
    state = SyncState(max_queries_per_modify=3, max_queries=4)
    connect(state)
    assert_fatal(
        modify(state, 0, *(add(i) for i in range(4))),
        "TooManyQueries",
        "SYNC_MAX_QUERIES_PER_MODIFY_COUNT",
    )
    state = SyncState(max_queries_per_modify=3, max_queries=4)
    connect(state)
    modify(state, 0, add(0), add(1), add(2))
    assert_fatal(modify(state, 1, add(3), add(4)), "TooManyQueries", "SYNC_MAX_QUERIES_PER_SOCKET_COUNT")


@pytest.mark.parametrize(
    "frame",
    ['{"type":"Subscribe"}', "{oops", "[]", '{"type":"Mutation","requestId":"1","udfPath":"a"}'],
)
def test_malformed_messages_are_fatal(frame: str) -> None:
    state = SyncState()
    connect(state)
    assert_fatal(state.receive_text(frame), "WSMessageInvalidJson", "")


def test_binary_frames_are_fatal() -> None:
    state = SyncState()
    connect(state)
    effects = state.receive_bytes(b"\x00\x01")
    assert_fatal(effects, "WSMessageNotText", "binary WebSocket frame (2 bytes)")


def test_huge_messages_close_1009() -> None:
    state = SyncState(max_message_size_bytes=1000)
    connect(state)
    big = text({"type": "Mutation", "requestId": 0, "udfPath": "a:b", "args": [{"s": "x" * 2000}]})
    effects = state.receive_text(big)
    assert [(c.code, c.reason) for c in closes(effects)] == [(1009, "MessageTooBig")]
    # multi-byte text is measured in bytes
    state = SyncState(max_message_size_bytes=1000)
    connect(state)
    effects = state.receive_text(text({"type": "Event", "eventType": "x", "event": "é" * 600}))
    assert [(c.code, c.reason) for c in closes(effects)] == [(1009, "MessageTooBig")]


def test_events_are_ignored() -> None:
    state = SyncState()
    connect(state)
    assert (
        state.receive_text(text({"type": "Event", "eventType": "ClientConnect", "event": {}})) == []
    )


def test_overload_and_internal_error_close_codes() -> None:
    state = SyncState()
    connect(state)
    assert [(c.code, c.reason) for c in closes(state.overloaded("TooManyConcurrentMutations"))] == [
        (1013, "TooManyConcurrentMutations")
    ]
    assert state.internal_error("x") == []  # already closed: nothing more


def test_close_releases_subscriptions() -> None:
    state = SyncState()
    connect(state)
    modify(state, 0, add(0), add(1))
    _, _msg = transition(state, 1)
    subs = state.close()
    assert len(subs) == 2 and all(isinstance(s, FakeSub) for s in subs)
    assert state.closed
    with pytest.raises(SyncStateError):
        state.begin_transition(2)


def test_one_transition_at_a_time() -> None:
    state = SyncState()
    connect(state)
    modify(state, 0, add(0))
    plan = state.begin_transition(1)
    with pytest.raises(SyncStateError):
        state.begin_transition(1)
    with pytest.raises(SyncStateError):
        state.finish_transition(plan, {})  # missing the result of query 0
    state.abandon_transition(plan)


def test_state_version_helpers() -> None:
    assert StateVersion(1, 1, 5).precedes_or_equals(StateVersion(1, 2, 5))
    assert not StateVersion(2, 0, 0).precedes_or_equals(StateVersion(1, 9, 9))
