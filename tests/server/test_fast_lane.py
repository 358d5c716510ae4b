"""POST /api/query and /api/mutation without an Origin take a short lane past the middleware
and the router (server/app.py ``_App``): same answers as the full stack, CORS for browsers
(with an Origin) unchanged, the same JSON 503 on a storage failure."""

from __future__ import annotations

import pytest
from server_support import MakeDeployment
from starlette.testclient import TestClient

from convection.errors import StorageUnavailable
from convection.server.app import Deployment, build_app

NOTES = '''
from convection import mutation, query

@mutation
def add(ctx, text):
    return ctx.db.insert("notes", {"text": text})

@query
def count(ctx):
    return len(ctx.db.query("notes").collect())
'''


@pytest.fixture
def deployment(make_deployment: MakeDeployment) -> Deployment:
    return make_deployment(notes=NOTES)


def test_both_lanes_answer_alike(deployment: Deployment) -> None:
    app = build_app(deployment)
    taken: list[str] = []
    for path, handler in list(app.fast.items()):  # type: ignore[attr-defined]
        async def spy(request: object, handler: object = handler, path: str = path) -> object:
            taken.append(path)
            return await handler(request)  # type: ignore[operator]
        app.fast[path] = spy  # type: ignore[attr-defined]
    with TestClient(app) as client:
        plain = client.post("/api/mutation", json={"path": "notes:add", "args": {"text": "a"}, "format": "json"})
        assert plain.status_code == 200 and plain.json()["status"] == "success"
        assert "access-control-allow-origin" not in plain.headers
        assert taken == ["/api/mutation"]
        browser = client.post("/api/query", json={"path": "notes:count", "args": {}, "format": "json"},
                              headers={"Origin": "https://app.example.com"})
        assert browser.json()["value"] == 1
        assert browser.headers["access-control-allow-origin"] == "https://app.example.com"
        assert taken == ["/api/mutation"]  # an Origin takes the full stack
        fast = client.post("/api/query", json={"path": "notes:count", "args": {}, "format": "json"})
        assert fast.json() == browser.json() and taken[-1] == "/api/query"
        # Errors are the handler's own on either lane.
        bad = client.post("/api/query", content=b"{not json", headers={"Content-Type": "application/json"})
        assert bad.status_code == 400 and bad.json()["code"] == "BadJsonBody"
        assert len(taken) == 3  # the bad request too: its error came from the handler
        get = client.get("/api/query", params={"path": "notes:count", "args": "{}", "format": "json"})
        assert get.json()["value"] == 1 and len(taken) == 3  # GET: the full stack


def test_storage_failure_is_a_json_503_on_the_short_lane(deployment: Deployment) -> None:
    app = build_app(deployment)

    async def failing(request: object) -> object:
        raise StorageUnavailable("the store failed")

    app.fast["/api/mutation"] = failing  # type: ignore[attr-defined]
    with TestClient(app) as client:
        r = client.post("/api/mutation", json={"path": "notes:add", "args": {"text": "a"}})
        assert r.status_code == 503 and r.json()["code"] == "StorageUnavailable"
