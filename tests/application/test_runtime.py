"""The function runtime through the application facade: limits, errors, logs, visibility,
idempotency, actions."""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from convection import knobs
from convection.application.app import Application
from convection.database import Database
from convection.functions.identity import ANONYMOUS, Identity
from convection.functions.loader import load_app
from convection.persistence.sqlite import SqlitePersistence
from convection.server.compose import build_application

APP = '''
import logging
from convection import ConvexError, Int64, action, api, internal_query, mutation, query, v

@query
def spin(ctx):
    while True:
        pass

@query
def quick(ctx):
    return "fast"

@query
def logs(ctx):
    print("hello", 1)
    logging.getLogger("app").warning("careful")
    return None

@query
def boom(ctx):
    raise RuntimeError("kaput")

@mutation(args={"n": v.int64()})
def add(ctx, n):
    ctx.db.insert("things", {"n": n})
    return n + 1

@mutation
def count(ctx):
    return len(ctx.db.query("things").collect())

@mutation
def fails_after_write(ctx):
    ctx.db.insert("things", {"n": Int64(0)})
    raise ConvexError({"why": "rolled back"})

@internal_query
def hidden(ctx):
    return "secret"

@query
def who(ctx):
    ident = ctx.auth.get_user_identity()
    return None if ident is None else ident.subject

@action
async def act(ctx):
    n = await ctx.run_mutation(api.fns.count, {})
    s = await ctx.run_query("fns:hidden")
    return [n, s]

@query
def big(ctx):
    return "x" * (17 << 20)

@mutation(args={"n": v.float64()})
def dive(ctx, n):
    """Nests n levels of run_mutation, inserting at each level; returns the depth reached."""
    ctx.db.insert("dives", {"n": n})
    if n <= 0:
        return 0
    return 1 + ctx.run_mutation(api.fns.dive, {"n": n - 1})

@mutation(args={"n": v.float64()})
def dive_and_catch(ctx, n):
    """Nests too deep inside a try: the failed nested calls' writes are rolled back."""
    ctx.db.insert("dives", {"n": -1.0})
    try:
        ctx.run_mutation(api.fns.dive, {"n": n})
    except Exception as exc:
        return getattr(exc, "code", type(exc).__name__)
    return "no error"

@query
def dives(ctx):
    return sorted(d["n"] for d in ctx.db.query("dives").collect())
'''


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Application]:
    folder = tmp_path / "convex"
    folder.mkdir()
    (folder / "fns.py").write_text(textwrap.dedent(APP))
    db = Database(SqlitePersistence(tmp_path / "db.sqlite3"), secret=b"s")
    application = build_application(db, load_app(folder))
    yield application
    application.close()
    db.close()


async def test_runaway_query_is_stopped_and_others_keep_running(app: Application, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(knobs, "QUERY_TIMEOUT_MS", 300)
    spin = asyncio.create_task(app.run_query("fns:spin", {}, ANONYMOUS))
    t0 = time.monotonic()
    quick = await app.run_query("fns:quick", {}, ANONYMOUS)
    quick_latency = time.monotonic() - t0
    assert quick.success and quick.value == "fast"
    out = await spin
    assert not out.success and "timed out" in out.error_message
    assert quick_latency < 0.3  # answered while the runaway query was still running


async def test_errors_logs_and_visibility(app: Application) -> None:
    out = await app.run_query("fns:logs", {}, ANONYMOUS)
    assert out.success and out.log_lines == ["[LOG] hello 1", "[WARN] careful"]
    out = await app.run_query("fns:boom", {}, ANONYMOUS)
    assert not out.success and "Uncaught RuntimeError: kaput" in out.error_message and "fns.py" in out.error_message
    out = await app.run_query("fns:hidden", {}, ANONYMOUS)
    assert out.error_message == "Could not find public function for 'fns:hidden'."
    out = await app.run_query("fns:hidden", {}, Identity(kind="admin"))
    assert out.success and out.value == "secret"
    out = await app.run_mutation("fns:quick", {}, ANONYMOUS)
    assert out.error_message == "Trying to execute fns:quick as Mutation, but it is defined as Query."
    out = await app.run_query("fns.js:quick", {}, ANONYMOUS)
    assert out.success
    out = await app.run_query("fns:big", {}, ANONYMOUS)
    assert not out.success and "larger than" in out.error_message


async def test_redacted_errors(tmp_path: Path, app: Application) -> None:
    app.runner.redact_errors = True
    out = await app.run_query("fns:boom", {}, ANONYMOUS)
    assert not out.success and out.error_message.endswith("Server Error") and "kaput" not in out.error_message


async def test_convex_error_discards_writes_and_idempotent_mutations(app: Application) -> None:
    out = await app.run_mutation("fns:fails_after_write", {}, ANONYMOUS)
    assert not out.success and out.has_error_data and out.error_data == {"why": "rolled back"}
    first = await app.run_mutation("fns:add", {"n": 1}, ANONYMOUS, idempotency_key=("session", 7))
    again = await app.run_mutation("fns:add", {"n": 1}, ANONYMOUS, idempotency_key=("session", 7))
    assert first.success and again.success and first.ts == again.ts and first.value == again.value == 2
    count = await app.run_mutation("fns:count", {}, ANONYMOUS)
    assert count.value == 1


async def test_action_calls_back_in(app: Application) -> None:
    await app.run_mutation("fns:add", {"n": 5}, ANONYMOUS)
    out = await app.run_action("fns:act", {}, ANONYMOUS)
    assert out.success and out.value == [1, "secret"]


async def test_query_cache_shares_results_and_identity(app: Application) -> None:
    ts = app.latest_ts()
    a = await app.subscribe_query("fns:quick", {}, ANONYMOUS, None, ts)
    b = await app.subscribe_query("fns:quick", {}, Identity(kind="user", attributes={"tokenIdentifier": "i|u", "subject": "u", "issuer": "i"}), None, ts)
    assert a.fingerprint == b.fingerprint and app.cache.misses == 1
    alice = Identity(kind="user", attributes={"tokenIdentifier": "i|alice", "subject": "alice", "issuer": "i"})
    w1 = await app.subscribe_query("fns:who", {}, alice, None, ts)
    w2 = await app.subscribe_query("fns:who", {}, ANONYMOUS, None, ts)
    assert w1.outcome.value == "alice" and w2.outcome.value is None
    for run in (a, b, w1, w2):
        run.subscription.close()


async def test_stored_mutation_results_are_pruned(app: Application, monkeypatch: pytest.MonkeyPatch) -> None:
    await app.run_mutation("fns:add", {"n": 1}, ANONYMOUS, idempotency_key=("s", 1))
    assert app.prune_mutation_results() == 0
    monkeypatch.setattr(knobs, "MUTATION_RESULT_RETENTION_MS", -1000)
    assert app.prune_mutation_results() == 1
    again = await app.run_mutation("fns:add", {"n": 1}, ANONYMOUS, idempotency_key=("s", 1))
    assert again.success
    assert (await app.run_mutation("fns:count", {}, ANONYMOUS)).value == 2


async def test_nested_calls_are_bounded_in_depth_and_roll_back(app: Application) -> None:
    depth = knobs.MAX_CALL_DEPTH_COUNT
    ok = await app.run_mutation("fns:dive", {"n": float(depth)}, ANONYMOUS)
    assert ok.success and ok.value == depth
    assert (await app.run_query("fns:dives", {}, ANONYMOUS)).value == list(map(float, range(depth + 1)))
    out = await app.run_mutation("fns:dive_and_catch", {"n": float(depth)}, ANONYMOUS)
    assert out.success and out.value == "CallDepthExceeded"
    after = (await app.run_query("fns:dives", {}, ANONYMOUS)).value
    assert after == [-1.0, *map(float, range(depth + 1))]  # the nested writes were undone
