"""One deployment on several processes: two `convection serve` nodes on one PostgreSQL, and
`serve --workers 2` on SQLite, driven by the official npm client spread over them."""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import APP_DIR, NodeRunner, ServerProcess
from websockets.sync.client import connect

CLIENTS = 50
PER_CLIENT = 10


def post(url: str, kind: str, path: str, args: dict[str, object]) -> object:
    body = json.dumps({"path": path, "args": args, "format": "json"}).encode()
    req = urllib.request.Request(f"{url}/api/{kind}", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        out = json.loads(resp.read())
    assert out["status"] == "success", out
    return out["value"]


@pytest.fixture
def pg_nodes(tmp_path: Path, postgres_url: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    url = f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema=n_{uuid.uuid4().hex[:10]}"
    a = ServerProcess(tmp_path / "node-a", extra_args=["--db", url])
    b = ServerProcess(tmp_path / "node-b", extra_args=["--db", url])
    a.start()
    b.start()
    try:
        yield a, b
    finally:
        b.stop()
        a.stop()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "data", extra_args=["--workers", "2"])
    server.start()
    try:
        yield server
    finally:
        server.stop()


def check_increments(node: NodeRunner, urls: list[str]) -> None:
    r = node.run("concurrency.mjs", urls[0], timeout=240, clients=CLIENTS, perClient=PER_CLIENT, urls=urls)
    print(f"\n{len(urls)} url(s): acknowledged {r['acked']}, failed {r['failureCount']}, {r['elapsedMs']} ms")
    assert r["acked"] + r["failureCount"] == CLIENTS * PER_CLIENT
    assert r["final"] == r["acked"] == r["distinctResults"] == r["maxResult"]
    assert r["subscribersAtFinal"] == CLIENTS  # every client, on either node, saw the final value
    for message in r["failures"]:
        assert "conflicted with concurrent writes" in message, message


def test_two_postgres_nodes_are_one_deployment(
    pg_nodes: tuple[ServerProcess, ServerProcess], node: NodeRunner
) -> None:
    a, b = pg_nodes
    # an admin key of one node is valid on the other: the instance secret is in the database
    assert a.admin_key == b.admin_key
    # cross-node reactivity and serializability: clients alternate between the nodes
    check_increments(node, [a.url, b.url])
    # a write on one is read on the other (after the other tailed it)
    name = uuid.uuid4().hex
    post(a.url, "mutation", "counter:increment", {"name": name})
    deadline = time.monotonic() + 20
    while post(b.url, "query", "counter:get", {"name": name}) != 1:
        assert time.monotonic() < deadline, "node b never saw node a's write"
        time.sleep(0.01)


class RawSubscriber:
    """One raw sync socket subscribed to ``counter:get`` (the PyPI client's blocking iterator
    holds the GIL, so a test could not time it out)."""

    def __init__(self, base_url: str, name: str) -> None:
        self._connection = connect(base_url.replace("http://", "ws://") + "/api/1.48.0/sync",
                                   max_size=None, open_timeout=10)
        self.ws = self._connection.__enter__()
        self.ws.send(json.dumps({"type": "Connect", "sessionId": str(uuid.uuid4()),
                                 "connectionCount": 0, "lastCloseReason": "InitialConnect",
                                 "clientTs": 0}))
        self.ws.send(json.dumps({"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1,
                                 "modifications": [{"type": "Add", "queryId": 0,
                                                    "udfPath": "counter:get", "args": [{"name": name}]}]}))

    def next_value(self, timeout: float = 20) -> object:
        """The query's next value; fails the test when none arrives within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no update within {timeout} s"
            try:
                message = json.loads(self.ws.recv(timeout=left))
            except TimeoutError:
                raise AssertionError(f"no update within {timeout} s") from None
            for mod in message.get("modifications", []) if message["type"] == "Transition" else []:
                if mod["type"] == "QueryUpdated":
                    return mod["value"]

    def close(self) -> None:
        self._connection.__exit__(None, None, None)


def test_a_commit_on_one_node_wakes_the_other_by_notify(tmp_path: Path, postgres_url: str) -> None:
    """Node A hears of node B's commits by LISTEN/NOTIFY: A's fallback poll of the commit log
    is a minute away and nothing else makes A read the log (the scheduler lease is renewed
    every 200 s), so only B's notification can wake A before the 20 s deadline."""
    url = f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema=n_{uuid.uuid4().hex[:10]}"
    env = {"CONVECTION_LOG_TAIL_FALLBACK_POLL_MS": "60000", "CONVECTION_SCHEDULER_LEASE_MS": "600000"}
    a = ServerProcess(tmp_path / "node-a", extra_args=["--db", url], env=env)
    b = ServerProcess(tmp_path / "node-b", extra_args=["--db", url], env=env)
    a.start()
    b.start()
    try:
        name = uuid.uuid4().hex
        subscriber = RawSubscriber(a.url, name)
        assert subscriber.next_value() == 0
        for n in (1, 2, 3):
            assert post(b.url, "mutation", "counter:increment", {"name": name}) == n
            assert subscriber.next_value() == n  # pushed by node A
        subscriber.close()
    finally:
        b.stop()
        a.stop()


def admin_post(server: ServerProcess, path: str, body: bytes, content_type: str) -> object:
    req = urllib.request.Request(f"{server.url}{path}", data=body, headers={
        "Content-Type": content_type, "Authorization": f"Convex {server.admin_key}"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.02)


def test_env_and_deploys_reach_every_node(pg_nodes: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = pg_nodes
    name = "MULTI_" + uuid.uuid4().hex[:8].upper()
    admin_post(a, "/api/admin/env", json.dumps({"name": name, "value": "hello"}).encode(), "application/json")
    wait_for(lambda: post(b.url, "query", "envq:get", {"name": name}) == "hello",
             "node b to see the variable set on node a")
    # a deploy to node a is served by node b too, without a restart
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(APP_DIR.rglob("*.py")):
            text = path.read_text()
            if path.name == "envq.py":
                text = text.replace('"v1"', '"v2"')
            zf.writestr(path.relative_to(APP_DIR).as_posix(), text)
    admin_post(a, "/api/admin/deploy", buf.getvalue(), "application/zip")
    assert post(a.url, "query", "envq:version", {}) == "v2"
    wait_for(lambda: post(b.url, "query", "envq:version", {}) == "v2", "node b to serve the deployed code")


def test_kill_9_of_one_node_under_load(pg_nodes: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = pg_nodes
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(url: str, tag: str) -> None:
        i = 0
        while not stop.is_set():
            text = f"{tag}-{i}"
            try:
                post(url, "mutation", "messages:send", {"body": text, "author": tag})
            except Exception:  # the node died mid-call: outcome unknown
                if url == a.url:
                    return
                continue
            with lock:
                acknowledged.append(text)
            i += 1

    threads = [threading.Thread(target=writer, args=(u, f"{n}{k}")) for k in range(3)
               for n, u in (("a", a.url), ("b", b.url))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 60 and time.monotonic() < deadline:
        time.sleep(0.01)
    a.kill()
    time.sleep(0.5)  # b keeps committing after a died
    stop.set()
    for t in threads:
        t.join(60)
    assert len(acknowledged) >= 60
    seen = {m["body"] for m in post(b.url, "query", "messages:list", {})}  # type: ignore[union-attr]
    missing = [m for m in acknowledged if m not in seen]
    assert not missing, missing[:5]
    a.start()  # the killed node comes back and serves the same data
    assert {m["body"] for m in post(a.url, "query", "messages:list", {})} >= set(acknowledged)  # type: ignore[union-attr]


def test_workers_share_one_sqlite_store(workers: ServerProcess, node: NodeRunner) -> None:
    check_increments(node, [workers.url])
