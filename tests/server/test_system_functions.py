"""The built-in ``_system/frontend:*`` functions the dashboard reads and writes data through:
admin only, ordinary transactions validated by the schema, over HTTP and the sync protocol."""

from __future__ import annotations

import json
from typing import Any

import pytest
from server_support import MakeDeployment
from starlette.testclient import TestClient

from convection.server.app import Deployment

SCHEMA = '''
from convection import define_schema, define_table, v

schema = define_schema({
    "notes": define_table({"text": v.string(), "n": v.optional(v.float64())}).index("by_n", ["n"]),
    "empty": define_table({"x": v.string()}),
})
'''


@pytest.fixture
def deployment(make_deployment: MakeDeployment) -> Deployment:
    return make_deployment(schema=SCHEMA)




def call(client: TestClient, path: str, args: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    r = client.post("/api/function", json={"path": path, "args": args, "format": "json"}, headers=headers)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def ok(client: TestClient, path: str, args: dict[str, Any], headers: dict[str, str]) -> Any:
    out = call(client, path, args, headers)
    assert out["status"] == "success", out
    return out["value"]


PAGE = {"numItems": 2, "cursor": None}


def test_only_an_admin_may_call_them(client: TestClient) -> None:
    out = call(client, "_system/frontend:tables", {}, {})
    assert out["status"] == "error" and "Could not find public function" in out["errorMessage"]


def test_grid_reads_insert_edit_delete(client: TestClient, admin: dict[str, str]) -> None:
    for i in range(5):
        ok(client, "_system/frontend:insert", {"table": "notes", "document": {"text": f"t{i}", "n": float(5 - i)}}, admin)
    assert ok(client, "_system/frontend:tables", {}, admin) == [
        {"name": "empty", "count": 0, "more": False}, {"name": "notes", "count": 5, "more": False}
    ]

    # Paging, newest first by default.
    first = ok(client, "_system/frontend:documents", {"table": "notes", "paginationOpts": PAGE}, admin)
    assert [d["text"] for d in first["page"]] == ["t4", "t3"] and not first["isDone"]
    second = ok(client, "_system/frontend:documents",
                {"table": "notes", "paginationOpts": {"numItems": 2, "cursor": first["continueCursor"]}}, admin)
    assert [d["text"] for d in second["page"]] == ["t2", "t1"]
    # Sort by an index, and filter by a field.
    by_n = ok(client, "_system/frontend:documents",
              {"table": "notes", "index": "by_n", "order": "asc", "paginationOpts": {"numItems": 10, "cursor": None}}, admin)
    assert [d["n"] for d in by_n["page"]] == [1.0, 2.0, 3.0, 4.0, 5.0]
    filtered = ok(client, "_system/frontend:documents", {
        "table": "notes", "filters": [{"field": "n", "op": "gte", "value": 4}],
        "paginationOpts": {"numItems": 10, "cursor": None}}, admin)
    assert sorted(d["text"] for d in filtered["page"]) == ["t0", "t1"]
    bad = call(client, "_system/frontend:documents", {
        "table": "notes", "filters": [{"field": "n", "op": "like", "value": 4}], "paginationOpts": PAGE}, admin)
    assert bad["status"] == "error" and "Bad filter" in bad["errorMessage"]

    doc = first["page"][0]
    ok(client, "_system/frontend:patch", {"id": doc["_id"], "fields": {"text": "edited"}}, admin)
    ok(client, "_system/frontend:replace", {"id": doc["_id"], "document": {**doc, "text": "replaced", "n": 9.0}}, admin)
    # An edit that breaks the schema is refused with the validator's message; nothing changes.
    broken = call(client, "_system/frontend:patch", {"id": doc["_id"], "fields": {"text": 12}}, admin)
    assert broken["status"] == "error"
    assert "text" in broken["errorMessage"] and "string" in broken["errorMessage"], broken["errorMessage"]
    extra = call(client, "_system/frontend:insert", {"table": "notes", "document": {"text": "x", "bogus": 1}}, admin)
    assert extra["status"] == "error" and "bogus" in extra["errorMessage"]
    got = ok(client, "_system/frontend:documents", {"table": "notes", "paginationOpts": PAGE}, admin)["page"][0]
    assert (got["_id"], got["text"], got["n"]) == (doc["_id"], "replaced", 9.0)

    assert ok(client, "_system/frontend:delete", {"ids": [doc["_id"]]}, admin) == 1
    assert ok(client, "_system/frontend:tables", {}, admin)[1] == {"name": "notes", "count": 4, "more": False}
    # System tables are out of reach.
    refused = call(client, "_system/frontend:insert", {"table": "_storage", "document": {}}, admin)
    assert refused["status"] == "error" and "not a user table" in refused["errorMessage"]


def test_files_upload_list_delete(client: TestClient, admin: dict[str, str]) -> None:
    url = ok(client, "_system/frontend:generateUploadUrl", {}, admin)
    path = url.split("://", 1)[1].split("/", 1)[1]
    up = client.post("/" + path, content=b"\x89PNG fake", headers={"Content-Type": "image/png"})
    assert up.status_code == 200, up.text
    storage_id = up.json()["storageId"]
    page = ok(client, "_system/frontend:files", {"paginationOpts": PAGE}, admin)
    [row] = page["page"]
    assert row["_id"] == storage_id and row["size"] == 9 and row["contentType"] == "image/png"
    assert row["url"].endswith(f"/api/storage/{storage_id}") and row["sha256"]
    ok(client, "_system/frontend:deleteFile", {"storageId": storage_id}, admin)
    assert ok(client, "_system/frontend:files", {"paginationOpts": PAGE}, admin)["page"] == []


def test_counts_update_live_over_the_sync_protocol(client: TestClient, admin: dict[str, str], deployment: Deployment) -> None:
    with client.websocket_connect("/api/1.0/sync") as ws:
        ws.send_text(json.dumps({"type": "Connect", "sessionId": "00000000-0000-4000-8000-000000000001",
                                 "connectionCount": 0, "lastCloseReason": "InitialConnect", "clientTs": 0}))
        ws.send_text(json.dumps({"type": "Authenticate", "baseVersion": 0, "tokenType": "Admin",
                                 "value": deployment.app.admin_key}))
        ws.send_text(json.dumps({"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": [
            {"type": "Add", "queryId": 0, "udfPath": "_system/frontend:tables", "args": [{}]}]}))

        def next_counts() -> dict[str, int]:
            while True:
                msg = json.loads(ws.receive_text())
                for m in msg.get("modifications", []) if msg["type"] == "Transition" else []:
                    assert m["type"] == "QueryUpdated", m
                    return {t["name"]: t["count"] for t in m["value"]}

        assert next_counts() == {"empty": 0, "notes": 0}
        ok(client, "_system/frontend:insert", {"table": "notes", "document": {"text": "live"}}, admin)
        assert next_counts() == {"empty": 0, "notes": 1}


def test_live_counts_are_bounded(client: TestClient, admin: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from convection import knobs

    monkeypatch.setattr(knobs, "DASHBOARD_COUNT_MAX_DOCUMENTS_COUNT", 3)
    for i in range(5):
        ok(client, "_system/frontend:insert", {"table": "notes", "document": {"text": f"t{i}"}}, admin)
    assert ok(client, "_system/frontend:tables", {}, admin)[1] == {"name": "notes", "count": 3, "more": True}
