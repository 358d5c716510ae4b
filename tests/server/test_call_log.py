"""The call log (functions/calllog.py, application/logbuffer.py): every function call - query,
mutation, action, HTTP action, scheduled, cron - is one entry of ``/api/admin/logs`` with its
kind, path, duration, outcome (message and user frames), request id, identity and log lines;
entries filter by path and status; the ring is bounded; ``convection dev`` prints one line
per call."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from server_support import MakeDeployment
from starlette.testclient import TestClient

from convection.application.logbuffer import LogBuffer
from convection.clock import ManualClock
from convection.functions.calllog import CallRecord
from convection.server.app import Deployment

NOTES = '''
from convection import action, mutation, query, v

@mutation(args={"text": v.string()})
def add(ctx, text):
    print("adding", text)
    return ctx.db.insert("notes", {"text": text})

@mutation
def boom(ctx):
    print("about to fail")
    helper()

def helper():
    raise ValueError("the boom went off")

@mutation(args={"delay": v.float64()})
def later(ctx, delay):
    return ctx.scheduler.run_after(delay, "notes:add", {"text": "later"})

@query
def count(ctx):
    return len(ctx.db.query("notes").collect())

@action
async def act(ctx):
    return await ctx.run_query("notes:count", {})
'''

HTTP = '''
from starlette.responses import PlainTextResponse
from convection import HttpRouter

http = HttpRouter()

@http.route(path="/hi", method="GET")
async def hi(ctx, request):
    print("saying hi")
    return PlainTextResponse("hi")

@http.route(path="/boom", method="GET")
async def boom(ctx, request):
    raise RuntimeError("broken handler")
'''

CRONS = '''
from convection import Crons

crons = Crons()
crons.interval("tick", {"minutes": 5}, "notes:add", {"text": "tick"})
'''


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_800_000_000_000)


@pytest.fixture
def deployment(make_deployment: MakeDeployment, clock: ManualClock) -> Deployment:
    return make_deployment(notes=NOTES, crons=CRONS, http=HTTP, clock=clock)




def _logs(client: TestClient, admin: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    r = client.get("/api/admin/logs", params={"history": 100, **params}, headers=admin)
    assert r.status_code == 200, r.text
    entries: list[dict[str, Any]] = r.json()["entries"]
    return entries


def test_every_call_is_logged_with_its_outcome(
    client: TestClient, admin: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the project folder, as under `convection dev`
    ok = client.post("/api/mutation", json={"path": "notes:add", "args": {"text": "a"}, "format": "json"}).json()
    assert ok["status"] == "success"
    bad = client.post("/api/mutation", json={"path": "notes:boom", "args": {}, "format": "json"}).json()
    assert bad["status"] == "error"
    client.post("/api/query", json={"path": "notes:count", "args": {}, "format": "json"}, headers=admin)
    client.post("/api/action", json={"path": "notes:act", "args": {}, "format": "json"})

    entries = _logs(client, admin)
    by_path = {(e["kind"], e["path"]): e for e in entries}
    add = by_path[("mutation", "notes:add")]
    assert add["status"] == "success" and add["error"] is None and add["lines"] == ["[LOG] adding a"]
    assert add["origin"] == "client" and add["identity"] == "anonymous"
    assert add["durationMs"] >= 0 and len(add["requestId"]) == 16

    boom = by_path[("mutation", "notes:boom")]
    assert boom["status"] == "failure"
    assert boom["error"] == "Uncaught ValueError: the boom went off"
    assert [f for f in boom["frames"] if f.startswith("at helper (convex/notes.py:")], boom["frames"]
    assert boom["lines"] == ["[LOG] about to fail"]
    # The request id is the one the caller saw in its error message.
    assert f"[Request ID: {boom['requestId']}]" in bad["errorMessage"]

    counts = [e for e in entries if e["path"] == "notes:count"]
    assert counts[0]["identity"] == "admin"
    assert by_path[("action", "notes:act")]["status"] == "success"
    # The query an action runs is a call of its own.
    assert [e["kind"] for e in counts] == ["query", "query"]

    # Filters: by status and by a part of the path.
    failures = _logs(client, admin, status="failure")
    assert [e["path"] for e in failures] == ["notes:boom"]
    assert {e["path"] for e in _logs(client, admin, path="cou")} == {"notes:count"}
    r = client.get("/api/admin/logs", params={"history": 5, "status": "nope"}, headers=admin)
    assert r.status_code == 400 and r.json()["code"] == "BadRequest"


def test_http_actions_are_logged(client: TestClient, admin: dict[str, str]) -> None:
    assert client.get("/http/hi").text == "hi"
    assert client.get("/http/boom").status_code == 500
    http = [e for e in _logs(client, admin) if e["kind"] == "httpAction"]
    assert [(e["status"], e["lines"]) for e in http] == [("success", ["[LOG] saying hi"]), ("failure", [])]
    assert http[1]["error"] == "Uncaught RuntimeError: broken handler"
    assert [e["path"] for e in http] == ["http:hi", "http:boom"]
    assert any("boom" in f and "http.py" in f for f in http[1]["frames"]), http[1]["frames"]


def test_scheduled_and_cron_calls_say_so(
    client: TestClient, admin: dict[str, str], deployment: Deployment, clock: ManualClock
) -> None:
    client.post("/api/mutation", json={"path": "notes:later", "args": {"delay": 0}, "format": "json"})
    scheduler = deployment.app.scheduler
    scheduler.sync_crons(deployment.app.loaded)
    clock.advance_ms(5 * 60_000 + 1)
    asyncio.run(scheduler.run_due_jobs())
    adds = [e for e in _logs(client, admin) if e["path"] == "notes:add"]
    assert sorted((e["origin"], e["lines"][0]) for e in adds) == [
        ("cron", "[LOG] adding tick"), ("scheduled", "[LOG] adding later")
    ]
    assert {e["identity"] for e in adds} == {"system"}


def test_the_ring_is_bounded() -> None:
    ring = LogBuffer(capacity=3)
    for i in range(5):
        ring.record_call(CallRecord(float(i), f"m:f{i}", "query", "client", 1.0, True, None, (), "0" * 16, "anonymous", ()))
    assert [e.path for e in ring.tail(10)] == ["m:f2", "m:f3", "m:f4"]
    assert ring.last_seq == 5 and ring.capacity == 3


def test_dev_prints_one_line_per_call_and_failures_in_red(deployment: Deployment, client: TestClient) -> None:
    from convection.cli.dev import print_call

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, color_system="standard", width=200)
    assert deployment.admin is not None
    deployment.admin.logs.add_listener(lambda call: print_call(console, call))
    client.post("/api/mutation", json={"path": "notes:add", "args": {"text": "b"}, "format": "json"})
    client.post("/api/mutation", json={"path": "notes:boom", "args": {}, "format": "json"})
    client.post("/api/query", json={"path": "_system/frontend:tables", "args": {}, "format": "json"},
                headers={"Authorization": f"Convex {deployment.app.admin_key}"})
    text = out.getvalue()
    assert "_system/" not in text  # the dashboard's own calls stay out of the terminal
    lines = text.splitlines()
    ok_line = next(line for line in lines if "notes:add" in line)
    assert " M notes:add " in ok_line and ok_line.rstrip().endswith("ok")
    bad_line = next(line for line in lines if "notes:boom" in line)
    assert "failed: Uncaught ValueError: the boom went off" in bad_line
    assert "\x1b[1;31m" in bad_line  # bold red
    assert any("[LOG] about to fail" in line for line in lines)
