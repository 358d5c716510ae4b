"""Issue 12 in process (Starlette TestClient on ``build_app(open_deployment(...))``): one-shot
HTTP queries release their database subscriptions, HTTP function arguments are limited."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from server_support import MakeDeployment
from starlette.testclient import TestClient

from convection import knobs
from convection.server.app import Deployment

NOTES = '''
from convection import mutation, query

@mutation
def add(ctx, text):
    return ctx.db.insert("notes", {"text": text})

@query
def broken(ctx, n):
    ctx.db.query("notes").collect()  # reads (so it has a read set), then fails
    raise RuntimeError(f"broken {n}")

@query
def listed(ctx, n):
    return [len(ctx.db.query("notes").collect()), n]
'''


@pytest.fixture
def deployment(make_deployment: MakeDeployment) -> Deployment:
    return make_deployment(notes=NOTES)



def test_http_queries_release_their_subscriptions(client: TestClient, deployment: Deployment) -> None:
    client.post("/api/mutation", json={"path": "notes:add", "args": {"text": "a"}})
    subscriptions = deployment.db.subscriptions
    before = len(subscriptions)
    for n in range(200):
        r = client.post("/api/query", json={"path": "notes:broken", "args": {"n": n}})
        assert r.json()["status"] == "error"
    assert len(subscriptions) == before  # was before + 200: one leaked per failing call
    # Successful results stay cached (their subscription is the cache's), bounded by it.
    for n in range(50):
        r = client.post("/api/query", json={"path": "notes:listed", "args": {"n": n}})
        assert r.json() == {"status": "success", "value": [1, n]}
    assert len(subscriptions) <= before + len(deployment.app.cache)
    # ... and still answer correctly after a write invalidates them.
    client.post("/api/mutation", json={"path": "notes:add", "args": {"text": "b"}})
    r = client.post("/api/query", json={"path": "notes:listed", "args": {"n": 3}})
    assert r.json()["value"] == [2, 3]


def test_http_arguments_are_limited_like_the_sockets(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(knobs, "MAX_FUNCTION_ARGS_SIZE_BYTES", 1000)
    monkeypatch.setattr(knobs, "HTTP_MAX_BODY_OVERHEAD_BYTES", 100)
    r = client.post("/api/mutation", json={"path": "notes:add", "args": {"text": "x" * 2000}})
    assert r.status_code == 413
    body = r.json()
    assert body["code"] == "ArgumentsTooLarge" and "MAX_FUNCTION_ARGS_SIZE_BYTES" in body["message"]

    # Without a Content-Length (chunked) the limit holds while streaming.
    def chunks() -> Iterator[bytes]:
        yield b'{"path": "notes:add", "args": {"text": "'
        for _ in range(50):
            yield b"y" * 100
        yield b'"}}'

    r = client.post("/api/mutation", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["code"] == "ArgumentsTooLarge"
    ok = client.post("/api/mutation", json={"path": "notes:add", "args": {"text": "z" * 500}})
    assert ok.status_code == 200 and ok.json()["status"] == "success"
