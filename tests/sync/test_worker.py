from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest

from convection.application.interface import (
    ANONYMOUS,
    AuthFailure,
    FunctionKind,
    FunctionOutcome,
    Identity,
    QueryRun,
)
from convection.clock import ManualClock
from convection.errors import StorageUnavailable
from convection.protocol.timestamps import decode_ts, encode_ts
from convection.sync.worker import SyncWorker

# --- fakes ------------------------------------------------------------------------------


class FakeSubscription:
    def __init__(self, path: str, ts: int) -> None:
        self.path = path
        self.ts = ts
        self.invalidated_at: int | None = None
        self.callback: Callable[[], None] | None = None
        self.closed = False

    def set_callback(self, callback: Callable[[], None]) -> None:
        self.callback = callback

    def close(self) -> None:
        self.closed = True

    def invalidate(self, ts: int) -> None:
        if self.invalidated_at is None:
            self.invalidated_at = ts
            if self.callback is not None and not self.closed:
                self.callback()


class FakeApp:
    """Queries return ``values[path]`` (computed by identity when callable); a mutation with
    args ``{"key": path, "value": v}`` writes ``values[path] = v`` and commits at ts + 10."""

    def __init__(self) -> None:
        self.ts = 100
        self.bumped: list[int] = []
        self.values: dict[str, Any] = {"messages:list": []}
        self.subs: list[FakeSubscription] = []
        self.query_calls: list[tuple[str, Any, Identity, str | None, int]] = []
        self.mutation_calls: list[tuple[str, Any, Identity, tuple[str, int] | None]] = []
        self.action_calls: list[str] = []
        self.query_gate: asyncio.Event | None = None
        self.mutation_gate: asyncio.Event | None = None
        self.after_commit_gate: asyncio.Event | None = None
        self.action_gate: asyncio.Event | None = None
        self.running_mutations = 0
        self.max_running_mutations = 0
        self.query_error: BaseException | None = None
        self.mutation_error: BaseException | None = None
        self.cached = False
        self.cached_paths: set[str] | None = None  # with ``cached``: only these paths
        self.cache_hits: list[tuple[str, int]] = []

    def latest_ts(self) -> int:
        return self.ts

    def bump_ts(self, ts: int) -> None:
        self.bumped.append(ts)

    def commit(self, key: str, value: Any) -> int:
        """A write by anyone: invalidate readers, then publish the ts."""
        commit_ts = self.ts + 10
        self.values[key] = value
        for sub in self.subs:
            if sub.path == key and not sub.closed:
                sub.invalidate(commit_ts)
        self.ts = commit_ts
        return commit_ts

    async def subscribe_query(
        self, path: str, args: Any, identity: Identity, journal: str | None, ts: int
    ) -> QueryRun:
        self.query_calls.append((path, args, identity, journal, ts))
        if self.query_gate is not None:
            await self.query_gate.wait()
        if self.query_error is not None:
            raise self.query_error
        value = self.values.get(path)
        if callable(value):
            value = value(identity)
        sub = FakeSubscription(path, ts)
        self.subs.append(sub)
        if path == "fails":
            outcome = FunctionOutcome(success=False, error_message="boom", ts=ts, journal=journal)
            return QueryRun(outcome, b"E", sub)
        value_json = orjson.dumps(value)
        outcome = FunctionOutcome(
            success=True, value=value, value_json=value_json, ts=ts, journal=journal
        )
        return QueryRun(outcome, value_json, sub)

    def cached_query_run(
        self, path: str, args: Any, identity: Identity, journal: str | None, ts: int
    ) -> QueryRun | None:
        """With ``cached`` set, answer like a warm query cache (recorded in ``cache_hits``);
        else no cache: every Transition goes through the transition task."""
        if not self.cached or (self.cached_paths is not None and path not in self.cached_paths):
            return None
        self.cache_hits.append((path, ts))
        sub = FakeSubscription(path, ts)
        self.subs.append(sub)
        value_json = orjson.dumps(self.values.get(path))
        outcome = FunctionOutcome(success=True, value=self.values.get(path), value_json=value_json, ts=ts)
        return QueryRun(outcome, value_json, sub)

    def commit_published(self, key: str, value: Any) -> int:
        """A write whose ts is published before its readers are invalidated (the real
        application's order: the committer publishes, then the cache fires)."""
        commit_ts = self.ts + 10
        self.values[key] = value
        self.ts = commit_ts
        for sub in list(self.subs):  # the readers before this commit (reruns add new ones)
            if sub.path == key and not sub.closed and sub.ts < commit_ts:
                sub.invalidate(commit_ts)
        return commit_ts

    async def run_query(
        self, path: str, args: Any, identity: Identity, *, ts: int | None = None
    ) -> FunctionOutcome:
        raise NotImplementedError

    async def run_mutation(
        self,
        path: str,
        args: Any,
        identity: Identity,
        *,
        idempotency_key: tuple[str, int] | None = None,
    ) -> FunctionOutcome:
        self.mutation_calls.append((path, args, identity, idempotency_key))
        self.running_mutations += 1
        self.max_running_mutations = max(self.max_running_mutations, self.running_mutations)
        try:
            if self.mutation_gate is not None:
                await self.mutation_gate.wait()
            if self.mutation_error is not None:
                raise self.mutation_error
            if path == "messages:fail":
                return FunctionOutcome(success=False, error_message="Uncaught Error: nope")
            commit_ts = self.commit(args["key"], args["value"])
            if self.after_commit_gate is not None:
                await self.after_commit_gate.wait()
            return FunctionOutcome(success=True, value_json=b'"done"', ts=commit_ts)
        finally:
            self.running_mutations -= 1

    async def run_action(self, path: str, args: Any, identity: Identity) -> FunctionOutcome:
        self.action_calls.append(path)
        if self.action_gate is not None:
            await self.action_gate.wait()
        return FunctionOutcome(success=True, value_json=orjson.dumps(path))

    async def run_function(
        self, path: str, args: Any, identity: Identity, *, kind: FunctionKind | None = None
    ) -> FunctionOutcome:
        raise NotImplementedError

    async def authenticate(
        self, token_type: str, value: str | None, impersonating: dict[str, Any] | None
    ) -> Identity:
        if token_type == "None":
            return ANONYMOUS
        if value == "bad":
            raise AuthFailure("Could not verify token", code="InvalidAuthHeader")
        return Identity(kind="user", attributes={"tokenIdentifier": f"iss|{value}"}, token=value)


class FakeTimer:
    def __init__(self) -> None:
        self.now = 0.0
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self.now + seconds, future))
        await future

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [w for w in self._waiters if w[0] <= self.now]
        self._waiters = [w for w in self._waiters if w[0] > self.now]
        for _, future in due:
            if not future.done():
                future.set_result(None)


class Harness:
    def __init__(self, **options: Any) -> None:
        self.app = FakeApp()
        self.timer = FakeTimer()
        self.sent: list[dict[str, Any]] = []
        self.closes: list[tuple[int, str]] = []
        self.send_gate: asyncio.Event | None = None
        self.worker = SyncWorker(
            self.app,
            self._send,
            self._close,
            clock=ManualClock(start_ms=1_000_000),
            timer=self.timer,
            **options,
        )

    async def _send(self, text: str) -> None:
        if self.send_gate is not None:
            await self.send_gate.wait()
        self.sent.append(orjson.loads(text))

    async def _close(self, code: int, reason: str) -> None:
        self.closes.append((code, reason))

    async def send(self, **message: Any) -> None:
        await self.worker.handle_text(orjson.dumps(message).decode())

    async def connect(self, **extra: Any) -> None:
        await self.send(type="Connect", sessionId="sess", connectionCount=0, clientTs=0, **extra)

    async def settle(self) -> None:
        for _ in range(100):
            await asyncio.sleep(0)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["type"] == kind]

    def transitions(self) -> list[dict[str, Any]]:
        return self.of_type("Transition")


def end_ts(transition: dict[str, Any]) -> int:
    return decode_ts(transition["endVersion"]["ts"])


def assert_chained(h: Harness) -> None:
    """startVersion == previous endVersion, ts never decreasing."""
    previous = {"querySet": 0, "identity": 0, "ts": "AAAAAAAAAAA="}
    for t in h.transitions():
        assert t["startVersion"] == previous
        assert decode_ts(t["endVersion"]["ts"]) >= decode_ts(t["startVersion"]["ts"])
        previous = t["endVersion"]


def assert_mutation_order(h: Harness) -> None:
    """Each successful MutationResponse(ts=T) precedes every Transition with ts >= T and is
    followed by one."""
    for i, message in enumerate(h.sent):
        if message["type"] == "MutationResponse" and message["success"]:
            t = decode_ts(message["ts"])
            before = [m for m in h.sent[:i] if m["type"] == "Transition"]
            assert all(end_ts(m) < t for m in before), "a Transition covered an unsent mutation"
            after = [m for m in h.sent[i + 1 :] if m["type"] == "Transition"]
            assert any(end_ts(m) >= t for m in after), "no Transition covers the mutation"


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    harness = Harness()
    harness.worker.start()
    yield harness
    await harness.worker.aclose()


async def subscribe(h: Harness, *paths: str) -> None:
    await h.connect()
    await h.send(
        type="ModifyQuerySet",
        baseVersion=0,
        newVersion=1,
        modifications=[
            {"type": "Add", "queryId": i, "udfPath": path, "args": [{}]}
            for i, path in enumerate(paths)
        ],
    )
    await h.settle()


# --- tests ------------------------------------------------------------------------------


async def test_first_transition_answers_the_query_set(h: Harness) -> None:
    await subscribe(h, "messages:list")
    (t,) = h.transitions()
    assert t["startVersion"] == {"querySet": 0, "identity": 0, "ts": "AAAAAAAAAAA="}
    assert t["endVersion"]["querySet"] == 1 and end_ts(t) == 100
    assert t["modifications"] == [
        {"type": "QueryUpdated", "queryId": 0, "value": [], "logLines": [], "journal": None}
    ]
    assert t["clientClockSkew"] == 0 - 1_000_000 and t["serverTs"] == 1_000_000 * 10**6


async def test_mutation_response_then_covering_transition(h: Harness) -> None:
    await subscribe(h, "messages:list")
    await h.send(
        type="Mutation",
        requestId=0,
        udfPath="messages:send",
        args=[{"key": "messages:list", "value": ["hi"]}],
    )
    await h.settle()
    assert h.app.mutation_calls[0][3] == ("sess", 0)
    kinds = [m["type"] for m in h.sent]
    assert kinds == ["Transition", "MutationResponse", "Transition"]
    response, t = h.sent[1], h.sent[2]
    assert response["success"] and response["result"] == "done"
    assert end_ts(t) >= decode_ts(response["ts"])
    assert t["modifications"][0]["value"] == ["hi"]
    assert_chained(h)
    assert_mutation_order(h)


async def test_failed_mutation_is_followed_by_an_empty_transition(h: Harness) -> None:
    await subscribe(h, "messages:list")
    await h.send(type="Mutation", requestId=1, udfPath="messages:fail", args=[{}])
    await h.settle()
    assert [m["type"] for m in h.sent] == ["Transition", "MutationResponse", "Transition"]
    assert h.sent[1] == {
        "type": "MutationResponse",
        "requestId": 1,
        "success": False,
        "result": "Uncaught Error: nope",
        "ts": None,
        "logLines": [],
    }
    assert h.sent[2]["modifications"] == []
    assert h.sent[2]["startVersion"] == h.sent[0]["endVersion"]


async def test_bad_mutation_args_fail_in_queue_order(h: Harness) -> None:
    await subscribe(h)
    await h.send(type="Mutation", requestId=0, udfPath="m:m", args=[{"key": "a", "value": 1}])
    await h.send(type="Mutation", requestId=1, udfPath="m:m", args=[{"$bad": 1}])
    await h.settle()
    responses = h.of_type("MutationResponse")
    assert [r["requestId"] for r in responses] == [0, 1]
    assert not responses[1]["success"] and "Invalid arguments" in responses[1]["result"]
    assert len(h.app.mutation_calls) == 1


async def test_mutations_run_one_at_a_time_in_order(h: Harness) -> None:
    await subscribe(h, "messages:list")
    h.app.mutation_gate = asyncio.Event()
    for i in range(3):
        await h.send(type="Mutation", requestId=i, udfPath="m:m", args=[{"key": "k", "value": i}])
    await h.settle()
    assert len(h.app.mutation_calls) == 1
    h.app.mutation_gate.set()
    await h.settle()
    assert [c[3] for c in h.app.mutation_calls] == [("sess", 0), ("sess", 1), ("sess", 2)]
    assert h.app.max_running_mutations == 1
    assert [r["requestId"] for r in h.of_type("MutationResponse")] == [0, 1, 2]
    assert_chained(h)
    assert_mutation_order(h)


async def test_mutation_queue_overflow_closes_1013() -> None:
    harness = Harness(max_queued_mutations=2)
    harness.worker.start()
    try:
        await subscribe(harness)
        harness.app.mutation_gate = asyncio.Event()
        for i in range(4):
            await harness.send(type="Mutation", requestId=i, udfPath="m:m", args=[{}])
        await harness.settle()
        assert harness.closes == [(1013, "TooManyConcurrentMutations")]
        assert harness.worker.closed
        await harness.worker.wait_closed()
    finally:
        await harness.worker.aclose()


async def test_actions_run_concurrently(h: Harness) -> None:
    await subscribe(h)
    h.app.action_gate = asyncio.Event()
    await h.send(type="Action", requestId=0, udfPath="a:one", args=[{}])
    await h.send(type="Action", requestId=1, udfPath="a:two", args=[{}])
    await h.settle()
    assert h.app.action_calls == ["a:one", "a:two"]
    assert h.of_type("ActionResponse") == []
    h.app.action_gate.set()
    await h.settle()
    responses = h.of_type("ActionResponse")
    assert sorted(r["requestId"] for r in responses) == [0, 1]
    assert all(r["success"] and r["logLines"] == [] for r in responses)
    assert_chained(h)


async def test_authenticate_bumps_identity_in_an_empty_transition(h: Harness) -> None:
    await subscribe(h, "messages:list")
    await h.send(type="Authenticate", baseVersion=0, tokenType="User", value="alice")
    await h.settle()
    t = h.transitions()[-1]
    assert t["startVersion"]["identity"] == 0 and t["endVersion"]["identity"] == 1
    assert t["modifications"] == []
    # the query was rerun under the new identity
    assert h.app.query_calls[-1][2].attributes == {"tokenIdentifier": "iss|alice"}
    assert_chained(h)


async def test_identity_dependent_results_change_after_auth(h: Harness) -> None:
    h.app.values["users:me"] = lambda identity: (
        identity.attributes and identity.attributes["tokenIdentifier"]
    )
    await subscribe(h, "users:me")
    assert h.transitions()[0]["modifications"][0]["value"] is None
    old = h.app.subs[0]
    await h.send(type="Authenticate", baseVersion=0, tokenType="User", value="bob")
    await h.settle()
    assert h.transitions()[-1]["modifications"][0]["value"] == "iss|bob"
    assert old.closed


async def test_auth_error_then_close(h: Harness) -> None:
    await subscribe(h, "messages:list")
    await h.send(type="Authenticate", baseVersion=0, tokenType="User", value="bad")
    await h.settle()
    assert h.sent[-1] == {
        "type": "AuthError",
        "error": "Could not verify token",
        "baseVersion": 0,
        "authUpdateAttempted": True,
    }
    assert h.closes == [(1000, "InvalidAuthHeader")]
    await h.worker.wait_closed()
    assert all(sub.closed for sub in h.app.subs)


async def test_messages_after_authenticate_use_the_new_identity(h: Harness) -> None:
    await h.connect()
    await h.send(type="Authenticate", baseVersion=0, tokenType="User", value="carol")
    await h.send(type="Mutation", requestId=0, udfPath="m:m", args=[{"key": "k", "value": 1}])
    await h.settle()
    assert h.app.mutation_calls[0][2].token == "carol"


async def test_expired_identity_during_a_mutation(h: Harness) -> None:
    await subscribe(h)
    h.app.mutation_error = AuthFailure("Token expired", code="TokenExpired")
    await h.send(type="Mutation", requestId=0, udfPath="m:m", args=[{}])
    await h.settle()
    assert h.sent[-1]["type"] == "AuthError" and h.sent[-1]["authUpdateAttempted"] is False
    assert h.closes == [(1000, "TokenExpired")]


async def test_storage_failure_closes_1013_so_the_client_resends(h: Harness) -> None:
    await h.connect()
    h.app.mutation_error = StorageUnavailable("the store failed")
    await h.send(type="Mutation", requestId=0, udfPath="m:m", args=[{}])
    await h.settle()
    # No MutationResponse (that would be final for the client): close 1013, the client
    # reconnects with backoff and re-sends the mutation (de-duplicated by its request id).
    assert h.of_type("MutationResponse") == []
    assert h.closes == [(1013, "StorageUnavailable")]


async def test_invalidation_by_another_commit(h: Harness) -> None:
    await subscribe(h, "messages:list", "other:q")
    calls = len(h.app.query_calls)
    h.app.commit("messages:list", ["from elsewhere"])
    await h.settle()
    t = h.transitions()[-1]
    assert t["modifications"] == [
        {
            "type": "QueryUpdated",
            "queryId": 0,
            "value": ["from elsewhere"],
            "logLines": [],
            "journal": None,
        }
    ]
    assert len(h.app.query_calls) == calls + 1  # only the invalidated query reran
    assert h.app.subs[0].closed and not h.app.subs[1].closed


async def test_a_cached_rerun_is_sent_from_the_invalidation_itself(h: Harness) -> None:
    """Fan-out fast path: when the query cache already holds the rerun, a callback scheduled
    by the invalidation computes and queues the Transition (no query run, no task wake-up);
    the client sees exactly what the task would have sent."""
    await subscribe(h, "messages:list", "other:q")
    calls = len(h.app.query_calls)
    before = len(h.transitions())
    h.app.cached = True
    ts = h.app.commit_published("messages:list", ["cached"])
    assert h.app.cache_hits == []  # on the next loop iteration, with the commit's other reruns
    await asyncio.sleep(0)
    assert h.app.cache_hits == [("messages:list", ts)]
    await h.settle()
    assert len(h.transitions()) == before + 1
    t = h.transitions()[-1]
    assert t["modifications"] == [
        {"type": "QueryUpdated", "queryId": 0, "value": ["cached"], "logLines": [], "journal": None}
    ]
    assert len(h.app.query_calls) == calls  # nothing ran
    assert h.app.subs[0].closed and not h.app.subs[1].closed
    # Invalidated beyond the latest ts (not published yet): left to the task, which waits.
    h.app.cached = False
    h.app.commit("messages:list", ["later"])
    await h.settle()
    assert h.transitions()[-1]["modifications"][0]["value"] == ["later"]


async def test_a_query_set_change_answered_by_the_cache_is_sent_by_the_receiving_task(
    h: Harness,
) -> None:
    await h.connect()
    h.app.cached = True
    await h.send(
        type="ModifyQuerySet",
        baseVersion=0,
        newVersion=1,
        modifications=[{"type": "Add", "queryId": 0, "udfPath": "messages:list", "args": [{}]}],
    )
    # Computed and queued when handle_text returns (no hand-off to the transition task);
    # it leaves with this loop iteration's other frames.
    assert h.worker.outbox.pending_transitions == 1
    assert h.worker.state.sent_version.query_set == 1
    await asyncio.sleep(0)
    (t,) = h.transitions()
    assert t["endVersion"]["querySet"] == 1
    assert t["modifications"][0]["type"] == "QueryUpdated"
    assert h.app.cache_hits == [("messages:list", 100)] and h.app.query_calls == []
    await h.send(
        type="ModifyQuerySet",
        baseVersion=1,
        newVersion=2,
        modifications=[
            {"type": "Remove", "queryId": 0},
            {"type": "Add", "queryId": 1, "udfPath": "messages:list", "args": [{}]},
        ],
    )
    assert h.worker.state.sent_version.query_set == 2
    await asyncio.sleep(0)
    assert [m["type"] for m in h.transitions()[-1]["modifications"]] == [
        "QueryRemoved",
        "QueryUpdated",
    ]
    assert h.app.subs[0].closed and not h.app.subs[1].closed
    await h.settle()
    assert len(h.transitions()) == 2 and h.app.query_calls == []
    assert_chained(h)


async def test_a_change_not_all_cached_is_finished_by_the_task_without_rerunning(
    h: Harness,
) -> None:
    await subscribe(h, "old:q")  # through the task (nothing cached)
    h.app.cached = True
    h.app.cached_paths = {"messages:list"}
    await h.send(
        type="ModifyQuerySet",
        baseVersion=1,
        newVersion=2,
        modifications=[
            {"type": "Remove", "queryId": 0},
            {"type": "Add", "queryId": 1, "udfPath": "messages:list", "args": [{}]},
            {"type": "Add", "queryId": 2, "udfPath": "other:q", "args": [{}]},
        ],
    )
    await h.settle()
    assert len(h.transitions()) == 2
    assert [(m["type"], m["queryId"]) for m in h.transitions()[-1]["modifications"]] == [
        ("QueryRemoved", 0),
        ("QueryUpdated", 1),
        ("QueryUpdated", 2),
    ]
    assert h.app.cache_hits == [("messages:list", 100)]
    assert [c[0] for c in h.app.query_calls] == ["old:q", "other:q"]  # each run once
    assert_chained(h)


async def test_closing_before_the_task_takes_a_handed_off_change_releases_its_runs() -> None:
    harness = Harness()
    harness.worker.start()
    await harness.connect()
    harness.app.cached = True
    harness.app.cached_paths = {"messages:list"}
    await harness.send(
        type="ModifyQuerySet",
        baseVersion=0,
        newVersion=1,
        modifications=[
            {"type": "Add", "queryId": 0, "udfPath": "messages:list", "args": [{}]},
            {"type": "Add", "queryId": 1, "udfPath": "other:q", "args": [{}]},
        ],
    )
    (cached,) = harness.app.subs  # taken from the cache, handed to the task with the plan
    await harness.worker.aclose()
    assert cached.closed
    assert harness.app.query_calls == [] and harness.transitions() == []


async def test_one_commit_invalidating_several_queries_sends_one_transition(h: Harness) -> None:
    await subscribe(h, "messages:list", "other:q")
    before = len(h.transitions())
    h.app.cached = True
    h.app.values["messages:list"] = ["x"]
    h.app.values["other:q"] = ["y"]
    ts = h.app.ts + 10
    h.app.ts = ts
    for sub in list(h.app.subs):
        if not sub.closed:
            sub.invalidate(ts)  # the same commit's invalidations, in one loop iteration
    await h.settle()
    assert len(h.transitions()) == before + 1
    assert {m["queryId"] for m in h.transitions()[-1]["modifications"]} == {0, 1}


async def test_triggers_during_a_transition_are_coalesced(h: Harness) -> None:
    await subscribe(h, "messages:list")
    h.app.query_gate = asyncio.Event()
    h.app.commit("messages:list", [1])
    await h.settle()
    assert len(h.transitions()) == 1  # the rerun is blocked
    for value in ([1, 2], [1, 2, 3]):
        h.app.commit("messages:list", value)
        await h.send(type="Event", eventType="ClientReceivedTransition", event={})
    await h.send(type="ModifyQuerySet", baseVersion=1, newVersion=2, modifications=[])
    await h.settle()
    h.app.query_gate.set()
    await h.settle()
    ts = h.transitions()
    # one transition for the blocked rerun, then ONE more for everything that came meanwhile
    assert len(ts) == 3
    assert ts[1]["modifications"][0]["value"] == [1, 2, 3] or ts[2]["modifications"][0][
        "value"
    ] == [1, 2, 3]
    assert ts[2]["endVersion"]["querySet"] == 2
    assert_chained(h)


async def test_back_pressure_limits_unsent_transitions(h: Harness) -> None:
    await subscribe(h, "messages:list")
    h.send_gate = asyncio.Event()
    for i in range(10):
        h.app.commit("messages:list", [i])
        await h.settle()
    # the first commit's Transition is being sent, one more is queued; nothing else computed
    assert h.worker.outbox.pending_transitions == 2
    assert len(h.app.query_calls) == 1 + 2
    h.send_gate.set()
    await h.settle()
    ts = h.transitions()
    assert len(ts) == 4  # initial, two queued, one coalesced catch-up
    assert ts[-1]["modifications"][0]["value"] == [9]
    assert_chained(h)


async def test_no_transition_covers_a_mutation_before_its_response(h: Harness) -> None:
    await subscribe(h, "messages:list", "other:q")
    # The mutation commits (and publishes its ts) but has not returned yet.
    h.app.after_commit_gate = asyncio.Event()
    await h.send(
        type="Mutation", requestId=0, udfPath="m:m", args=[{"key": "messages:list", "value": ["m"]}]
    )
    await h.settle()
    # meanwhile another commit invalidates the other query
    h.app.commit("other:q", "changed")
    await h.settle()
    h.app.after_commit_gate.set()
    await h.settle()
    assert h.of_type("MutationResponse")
    assert_mutation_order(h)
    assert_chained(h)
    final = {m_["queryId"]: m_["value"] for t in h.transitions() for m_ in t["modifications"]}
    assert final == {0: ["m"], 1: "changed"}
    # the wait for the mutation produced no do-nothing Transition
    assert all(t["startVersion"] != t["endVersion"] or t["modifications"] for t in h.transitions())


async def test_many_transitions_stay_chained(h: Harness) -> None:
    await subscribe(h, "messages:list", "a:b")
    for i in range(15):
        if i % 3 == 0:
            await h.send(
                type="Mutation",
                requestId=i,
                udfPath="m:m",
                args=[{"key": "messages:list", "value": [i]}],
            )
        elif i % 3 == 1:
            h.app.commit("a:b", i)
        else:
            await h.send(
                type="ModifyQuerySet",
                baseVersion=1 + i // 3,
                newVersion=2 + i // 3,
                modifications=[{"type": "Add", "queryId": 100 + i, "udfPath": "a:b", "args": [{}]}],
            )
        if i % 2:
            await h.settle()
    await h.settle()
    assert_chained(h)
    assert_mutation_order(h)
    assert h.transitions()[-1]["endVersion"]["querySet"] == 6


async def test_remove_acknowledged_and_subscription_closed(h: Harness) -> None:
    await subscribe(h, "messages:list")
    await h.send(
        type="ModifyQuerySet",
        baseVersion=1,
        newVersion=2,
        modifications=[{"type": "Remove", "queryId": 0}],
    )
    await h.settle()
    assert h.transitions()[-1]["modifications"] == [{"type": "QueryRemoved", "queryId": 0}]
    assert h.app.subs[0].closed
    seen = len(h.transitions())
    h.app.commit("messages:list", ["late"])
    await h.settle()
    assert all(t["modifications"] == [] for t in h.transitions()[seen:])


async def test_journal_passed_on_readd(h: Harness) -> None:
    await h.connect()
    await h.send(
        type="ModifyQuerySet",
        baseVersion=0,
        newVersion=1,
        modifications=[
            {"type": "Add", "queryId": 4, "udfPath": "messages:list", "args": [{}], "journal": "J"}
        ],
    )
    await h.settle()
    assert h.app.query_calls[0][3] == "J"
    assert h.transitions()[0]["modifications"][0]["journal"] == "J"


async def test_heartbeat_after_outbound_silence(h: Harness) -> None:
    await subscribe(h)
    count = len(h.sent)
    h.timer.advance(10)
    await h.settle()
    assert len(h.sent) == count
    h.timer.advance(5)
    await h.settle()
    assert h.sent[-1] == {"type": "Ping"}
    # any outbound message resets the timer
    h.timer.advance(10)
    await h.send(type="Mutation", requestId=0, udfPath="messages:fail", args=[{}])
    await h.settle()
    count = len(h.sent)
    h.timer.advance(10)
    await h.settle()
    assert len(h.sent) == count
    h.timer.advance(5)
    await h.settle()
    assert h.sent[-1] == {"type": "Ping"} and len(h.sent) == count + 1


async def test_malformed_json_is_fatal(h: Harness) -> None:
    await h.connect()
    await h.worker.handle_text("{not json")
    await h.settle()
    assert h.sent[-1]["type"] == "FatalError"
    assert h.closes == [(1000, "WSMessageInvalidJson")]
    assert h.worker.closed


async def test_wrong_base_version_is_fatal(h: Harness) -> None:
    await subscribe(h)
    await h.send(type="ModifyQuerySet", baseVersion=0, newVersion=1, modifications=[])
    await h.settle()
    assert h.sent[-1]["type"] == "FatalError" and "Base version" in h.sent[-1]["error"]
    assert h.closes == [(1000, "BaseVersionMismatch")]


async def test_binary_frame_is_fatal(h: Harness) -> None:
    await h.connect()
    await h.worker.handle_bytes(b"\x00")
    await h.settle()
    assert h.closes == [(1000, "WSMessageNotText")]
    assert [m["type"] for m in h.sent] == ["FatalError"]


async def test_max_observed_ts_slightly_ahead_moves_the_clock(h: Harness) -> None:
    ahead = h.app.ts + 5_000
    await h.connect(maxObservedTimestamp=encode_ts(ahead))
    await h.settle()
    assert h.app.bumped == [ahead]
    assert h.closes == []


async def test_max_observed_ts_far_in_the_future_closes_1011(h: Harness) -> None:
    far = 1_000_000 * 1_000_000 + 3_600 * 10**9  # an hour past the harness's wall clock
    await h.connect(maxObservedTimestamp=encode_ts(far))
    await h.settle()
    assert h.app.bumped == []
    assert h.closes == [(1011, "InternalServerError")]


async def test_huge_message_closes_1009() -> None:
    harness = Harness(max_message_size_bytes=100)
    harness.worker.start()
    try:
        await harness.connect()
        await harness.send(type="Event", eventType="x", event="y" * 200)
        await harness.settle()
        assert harness.closes == [(1009, "MessageTooBig")]
    finally:
        await harness.worker.aclose()


async def test_query_crash_closes_1011(h: Harness) -> None:
    h.app.query_error = RuntimeError("engine bug")
    await subscribe(h, "messages:list")
    assert h.closes == [(1011, "InternalServerError")]
    assert h.transitions() == []


async def test_close_waits_for_queued_messages(h: Harness) -> None:
    await subscribe(h, "messages:list")
    h.send_gate = asyncio.Event()
    h.app.commit("messages:list", ["x"])
    await h.settle()
    await h.worker.handle_text("[]")  # FatalError
    await h.settle()
    assert h.closes == []  # still flushing
    h.send_gate.set()
    await h.settle()
    assert [m["type"] for m in h.sent][-2:] == ["Transition", "FatalError"]
    assert h.closes == [(1000, "WSMessageInvalidJson")]


async def test_aclose_releases_everything(h: Harness) -> None:
    await subscribe(h, "messages:list", "a:b")
    h.app.mutation_gate = asyncio.Event()
    await h.send(type="Mutation", requestId=0, udfPath="m:m", args=[{}])
    await h.settle()
    await h.worker.aclose()
    assert all(sub.closed for sub in h.app.subs)
    assert h.worker.closed and h.closes == []
    await h.send(type="Mutation", requestId=1, udfPath="m:m", args=[{}])  # ignored
    assert len(h.app.mutation_calls) == 1
    await h.worker.wait_closed()


async def test_send_failure_shuts_the_worker_down() -> None:
    harness = Harness()

    async def broken_send(text: str) -> None:
        raise ConnectionResetError("gone")

    harness.worker = SyncWorker(
        harness.app, broken_send, harness._close, clock=ManualClock(start_ms=0), timer=harness.timer
    )
    harness.worker.start()
    try:
        await subscribe(harness, "messages:list")
        await harness.worker.wait_closed()
        assert harness.worker.closed and harness.closes == []
        assert all(sub.closed for sub in harness.app.subs)
    finally:
        await harness.worker.aclose()


async def test_invalidation_callback_from_another_thread(h: Harness) -> None:
    await subscribe(h, "messages:list")
    h.app.values["messages:list"] = ["threaded"]
    sub = h.app.subs[0]
    thread = threading.Thread(target=sub.invalidate, args=(h.app.ts + 1,))
    h.app.ts += 1
    thread.start()
    thread.join()
    for _ in range(20):
        await h.settle()
        if len(h.transitions()) == 2:
            break
    assert h.transitions()[-1]["modifications"][0]["value"] == ["threaded"]


async def test_async_context_manager() -> None:
    harness = Harness()
    async with harness.worker as worker:
        await harness.connect()
        await harness.send(type="ModifyQuerySet", baseVersion=0, newVersion=1, modifications=[])
        await harness.settle()
        assert len(harness.transitions()) == 1
    assert worker.closed


async def test_aclose_right_after_a_fatal_error_still_sends_it(h: Harness) -> None:
    # What the server does: handle_text returns, worker.closed is True, the loop exits and
    # the context manager calls aclose at once.
    await h.connect()
    await h.worker.handle_text("{oops")
    assert h.worker.closed
    await h.worker.aclose()
    assert [m["type"] for m in h.sent] == ["FatalError"]
    assert h.closes == [(1000, "WSMessageInvalidJson")]


async def test_closing_gives_up_on_a_client_that_does_not_read(h: Harness) -> None:
    await subscribe(h, "messages:list")
    h.send_gate = asyncio.Event()
    h.app.commit("messages:list", ["x"])
    await h.settle()
    await h.worker.handle_text("[]")
    await h.settle()
    assert h.closes == []
    h.timer.advance(5)
    await h.settle()
    assert h.closes == [(1000, "WSMessageInvalidJson")]
    await h.worker.wait_closed()
