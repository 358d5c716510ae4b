"""The dashboard: the page at ``/`` and its admin routes (functions, scheduled functions, cron
jobs), which require the admin key; running a function as admin goes through the public
``/api/function``, as the page does."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import pytest
from server_support import MakeDeployment
from starlette.testclient import TestClient

from convection.server.app import Deployment, build_app

NOTES = '''
from convection import internal_mutation, mutation, query, v

@mutation(args={"text": v.string()})
def add(ctx, text):
    print("adding", text)
    return ctx.db.insert("notes", {"text": text})

@mutation(args={"text": v.string(), "delay": v.float64()})
def later(ctx, text, delay):
    return ctx.scheduler.run_after(delay, "notes:add", {"text": text})

@internal_mutation
def secret(ctx):
    return "internal ok"

@query
def count(ctx):
    return len(ctx.db.query("notes").collect())
'''

CRONS = '''
from convection import Crons

crons = Crons()
crons.interval("tick", {"minutes": 5}, "notes:add", {"text": "tick"})
'''


@pytest.fixture
def deployment(make_deployment: MakeDeployment) -> Deployment:
    return make_deployment(notes=NOTES, crons=CRONS)




def test_the_page_is_served_with_a_strict_content_security_policy(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "convection admin-key" in page
    for api in ("/api/admin/tables", "/api/admin/functions", "/api/admin/env", "/api/admin/logs", "/api/function"):
        assert api in page
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
    # The policy allows exactly the page's inline script, by hash; nothing else may run.
    scripts = re.findall(r"<script>(.*?)</script>", page, flags=re.DOTALL)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}';" in csp
    markup = re.sub(r"<script>.*?</script>", "", page, flags=re.DOTALL)
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", markup, flags=re.IGNORECASE), "the CSP blocks inline handlers"
    assert 'style="' not in page, "style attributes would be blocked by the CSP"


@pytest.mark.parametrize(
    "path",
    ["/api/admin/functions", "/api/admin/scheduled_functions", "/api/admin/cron_jobs"],
)
def test_the_dashboard_routes_require_the_admin_key(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 401 and r.json()["code"] == "Unauthorized"
    r = client.get(path, headers={"Authorization": "Convex convection|not-the-key"})
    assert r.status_code == 401 and r.json()["code"] == "BadAdminKey"


def test_the_functions_list_has_kinds_visibility_and_validators(client: TestClient, admin: dict[str, str]) -> None:
    r = client.get("/api/admin/functions", headers=admin)
    assert r.status_code == 200
    functions = {f["path"]: f for f in r.json()["functions"]}
    assert set(functions) >= {"notes:add", "notes:later", "notes:secret", "notes:count"}
    add = functions["notes:add"]
    assert add["kind"] == "mutation" and add["visibility"] == "public"
    assert add["args"] == {"type": "object", "value": {"text": {"fieldType": {"type": "string"}, "optional": False}}}
    assert functions["notes:secret"]["visibility"] == "internal"
    assert functions["notes:count"]["kind"] == "query" and functions["notes:count"]["args"] is None


def test_running_functions_as_admin_like_the_page_does(client: TestClient, admin: dict[str, str]) -> None:
    def run(path: str, args: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        r = client.post(
            "/api/function", json={"path": path, "args": args, "format": "convex_encoded_json"}, headers=headers
        )
        assert r.status_code == 200
        body: dict[str, Any] = r.json()
        return body

    out = run("notes:add", {"text": "from the dashboard"}, admin)
    assert out["status"] == "success" and out["logLines"] == ["[LOG] adding from the dashboard"]
    assert run("notes:count", {}, admin)["value"] == 1
    # Internal functions run for the admin only.
    assert run("notes:secret", {}, admin)["value"] == "internal ok"
    assert run("notes:secret", {}, {})["status"] == "error"
    bad = run("notes:add", {"text": 5}, admin)
    assert bad["status"] == "error" and "ArgumentValidationError" in bad["errorMessage"]
    # The data browser then sees the document.
    tables = client.get("/api/admin/tables", headers=admin).json()["tables"]
    assert {"name": "notes", "count": 1} in tables
    page = client.get("/api/admin/tables/notes/documents", headers=admin).json()
    assert [d["text"] for d in page["page"]] == ["from the dashboard"]


def test_scheduled_functions_are_listed_and_can_be_canceled(client: TestClient, admin: dict[str, str]) -> None:
    r = client.post(
        "/api/mutation", json={"path": "notes:later", "args": {"text": "x", "delay": 3_600_000}, "format": "json"}
    )
    job_id = r.json()["value"]
    jobs = client.get("/api/admin/scheduled_functions", headers=admin).json()["jobs"]
    assert [(j["id"], j["name"], j["state"], j["args"]) for j in jobs] == [
        (job_id, "notes:add", {"kind": "pending"}, {"text": "x"})
    ]
    assert jobs[0]["completedTime"] is None
    r = client.post(f"/api/admin/scheduled_functions/{job_id}/cancel", headers=admin)
    assert r.json() == {"id": job_id, "canceled": True}
    again = client.post(f"/api/admin/scheduled_functions/{job_id}/cancel", headers=admin)
    assert again.json() == {"id": job_id, "canceled": False}
    jobs = client.get("/api/admin/scheduled_functions?limit=5", headers=admin).json()["jobs"]
    assert jobs[0]["state"] == {"kind": "canceled"} and jobs[0]["completedTime"] is not None
    bad = client.get("/api/admin/scheduled_functions?limit=0", headers=admin)
    assert bad.status_code == 400 and bad.json()["code"] == "InvalidPaginationLimit"


def test_cancel_of_an_unknown_job_is_a_404(client: TestClient, admin: dict[str, str]) -> None:
    note = client.post(
        "/api/mutation", json={"path": "notes:add", "args": {"text": "n"}, "format": "json"}
    ).json()["value"]
    r = client.post(f"/api/admin/scheduled_functions/{note}/cancel", headers=admin)
    assert r.status_code == 404 and r.json()["code"] == "NotFound"


def test_cron_jobs_are_listed(client: TestClient, admin: dict[str, str], deployment: Deployment) -> None:
    deployment.app.scheduler.sync_crons(deployment.app.loaded)  # what the server does at start
    body = client.get("/api/admin/cron_jobs", headers=admin).json()
    assert [(c["name"], c["udfPath"], c["args"], c["state"]) for c in body["crons"]] == [
        ("tick", "notes:add", {"text": "tick"}, "pending")
    ]
    assert body["crons"][0]["schedule"]["type"] == "interval"
    assert isinstance(body["crons"][0]["nextTs"], float)
    assert body["logs"] == []


def test_a_tab_closing_during_a_logs_long_poll_ends_it_quietly(deployment: Deployment) -> None:
    """Regression: the Logs page long-polls ``/api/admin/logs?after=N``; when the tab closes the
    handler cancelled the poll and then asked the cancelled task for its result
    (``InvalidStateError: Result is not set``, a traceback in the dev terminal)."""
    import asyncio

    app = build_app(deployment)
    key = deployment.app.admin_key
    sent: list[dict[str, Any]] = []

    async def call() -> None:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": "/api/admin/logs", "raw_path": b"/api/admin/logs",
            "query_string": b"after=0", "root_path": "",
            "headers": [(b"host", b"testserver"), (b"authorization", f"Convex {key}".encode())],
            "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.disconnect"}  # the tab is already gone

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)

    asyncio.run(call())  # raised InvalidStateError before the fix
    assert sent and sent[0]["type"] == "http.response.start" and sent[0]["status"] == 204


@pytest.mark.parametrize("path", ["/data", "/schema", "/files", "/functions", "/logs", "/schedules", "/env", "/backups"])
def test_every_page_has_an_address(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200 and "convection admin-key" in r.text
    assert r.headers["content-security-policy"] == client.get("/").headers["content-security-policy"]


def test_the_schema_route_shows_indexes_with_their_state_and_backfill_progress(
    client: TestClient, admin: dict[str, str], deployment: Deployment
) -> None:
    assert client.get("/api/admin/schema").status_code == 401
    for text in ("a", "b", "c"):
        client.post("/api/mutation", json={"path": "notes:add", "args": {"text": text}, "format": "json"})
    body = client.get("/api/admin/schema", headers=admin).json()
    assert body["hasSchema"] is False and body["schemaValidation"] is False
    [notes] = [t for t in body["tables"] if t["name"] == "notes"]
    assert notes["documents"] == 3 and notes["validator"] is None
    assert {i["name"]: i["state"] for i in notes["indexes"]} == {"by_creation_time": "enabled", "by_id": "enabled"}
    # An index being backfilled reports how far it got (entries written / documents).
    seen: list[dict[str, Any]] = []

    def progress(label: str, done: int) -> None:
        body = client.get("/api/admin/schema", headers=admin).json()
        seen.extend(i for t in body["tables"] if t["name"] == "notes" for i in t["indexes"] if i["name"] == "by_text")

    deployment.app.db.backfill_index("notes", "by_text", ("text",), progress=progress, chunk=1)
    assert seen[0] == {"name": "by_text", "fields": ["text"], "state": "backfilling", "progress": {"done": 1, "total": 3}}
    assert seen[-1]["progress"] == {"done": 3, "total": 3}
    body = client.get("/api/admin/schema", headers=admin).json()
    [ix] = [i for t in body["tables"] if t["name"] == "notes" for i in t["indexes"] if i["name"] == "by_text"]
    assert ix == {"name": "by_text", "fields": ["text"], "state": "enabled"}
