"""System tables are behind a capability: user mutations cannot write them, over any transport.

A real server runs ``system_app/convex``; its ``attack`` mutation tries insert / patch /
replace / delete on a document of each of ``_mutation_results``, ``_scheduled_functions``,
``_storage`` and ``_cron_jobs``, sent as raw sync frames over the WebSocket (every socket
mutation carries an idempotency key, so it takes the stored-result lookup path) and over
HTTP. Each attempt must meet error code ``SystemTable``, and afterwards every document reads
back unchanged (through the admin API; ``_storage`` and ``_scheduled_functions`` also through
``ctx.db.system``, which stays readable).

Regression: the idempotency lookup of socket mutations once left the transaction able to
write system tables for the rest of the call.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ServerProcess
from websockets.sync.client import ClientConnection, connect

APP = Path(__file__).parent / "system_app" / "convex"
SYSTEM_TABLES = ["_mutation_results", "_scheduled_functions", "_storage", "_cron_jobs"]
OPS = ["patch", "replace", "delete"]
DEADLINE_S = 30.0


class SyncSocket:
    """A hand-driven sync socket that sends mutations and waits for their responses."""

    def __init__(self, base_url: str) -> None:
        url = base_url.replace("http://", "ws://") + "/api/1.48.0/sync"
        self._connection = connect(url, max_size=None, open_timeout=10, close_timeout=5)
        self.ws: ClientConnection = self._connection.__enter__()
        self.next_request = 0
        self.ws.send(json.dumps({
            "type": "Connect",
            "sessionId": str(uuid.uuid4()),
            "connectionCount": 0,
            "lastCloseReason": "InitialConnect",
            "clientTs": 0,
        }))

    def close(self) -> None:
        self._connection.__exit__(None, None, None)

    def mutation(self, path: str, args: dict[str, Any]) -> dict[str, Any]:
        request_id = self.next_request
        self.next_request += 1
        self.ws.send(json.dumps({"type": "Mutation", "requestId": request_id, "udfPath": path, "args": [args]}))
        while True:
            message = json.loads(self.ws.recv(timeout=DEADLINE_S))
            if message.get("type") == "MutationResponse" and message["requestId"] == request_id:
                return dict(message)


def admin_documents(server: ServerProcess, table: str) -> dict[str, Any]:
    """Every document of ``table`` by id, through the admin API."""
    req = urllib.request.Request(
        f"{server.url}/api/admin/tables/{table}/documents?limit=100",
        headers={"Authorization": f"Convex {server.admin_key}"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        page = json.loads(resp.read())
    assert page["isDone"], page
    return {doc["_id"]: doc for doc in page["page"]}


def http_mutation(server: ServerProcess, path: str, args: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps({"path": path, "args": [args], "format": "convex_encoded_json"}).encode()
    req = urllib.request.Request(
        f"{server.url}/api/mutation", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return dict(json.loads(resp.read()))


@pytest.fixture(scope="module")
def sys_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("e2e-systables") / "data", functions=APP)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def targets(sys_server: ServerProcess) -> dict[str, str]:
    """One document id of each system table (all four rows exist before the attacks)."""
    sys_server.call("action", "systables:store_file")
    sock = SyncSocket(sys_server.url)
    try:
        # A socket mutation: leaves its stored result in _mutation_results.
        response = sock.mutation("systables:schedule", {})
        assert response["success"] is True, response
    finally:
        sock.close()
    found = dict(sys_server.call("query", "systables:ids"))  # read through ctx.db.system
    deadline = time.monotonic() + DEADLINE_S
    while True:  # the cron row is written when the server syncs crons.py at start
        for table in ("_mutation_results", "_cron_jobs"):
            found[table] = next(iter(admin_documents(sys_server, table)), None)
        if all(found.get(t) is not None for t in SYSTEM_TABLES):
            return {t: str(found[t]) for t in SYSTEM_TABLES}
        assert time.monotonic() < deadline, f"system rows missing: {found}"
        time.sleep(0.05)


def _snapshot(server: ServerProcess, targets: dict[str, str]) -> dict[str, Any]:
    docs = {t: admin_documents(server, t).get(i) for t, i in targets.items()}
    for table in ("_scheduled_functions", "_storage"):  # ctx.db.system keeps reading them
        assert server.call("query", "systables:read", {"id": targets[table]})["_id"] == targets[table]
    return docs


def test_socket_mutations_cannot_write_system_tables(sys_server: ServerProcess, targets: dict[str, str]) -> None:
    before = _snapshot(sys_server, targets)
    assert all(doc is not None and doc["_id"] == targets[t] for t, doc in before.items())
    sock = SyncSocket(sys_server.url)
    try:
        results: dict[tuple[str, str], Any] = {}
        for table, doc_id in targets.items():
            results[("insert", table)] = sock.mutation("systables:attack", {"op": "insert", "target": table})
            for op in OPS:
                results[(op, table)] = sock.mutation("systables:attack", {"op": op, "target": doc_id})
        codes = {k: (r["success"], r["result"]) for k, r in results.items()}
        assert codes == dict.fromkeys(results, (True, "SystemTable"))
        for op in ("patch", "delete"):
            failed = sock.mutation("systables:attack_uncaught", {"op": op, "target": targets["_storage"]})
            assert failed["success"] is False
            assert "system table '_storage'" in failed["result"]
    finally:
        sock.close()
    assert _snapshot(sys_server, targets) == before


def test_http_mutations_cannot_write_system_tables(sys_server: ServerProcess, targets: dict[str, str]) -> None:
    before = _snapshot(sys_server, targets)
    codes: dict[tuple[str, str], Any] = {}
    for table, doc_id in targets.items():
        out = http_mutation(sys_server, "systables:attack", {"op": "insert", "target": table})
        codes[("insert", table)] = (out["status"], out.get("value"))
        for op in OPS:
            out = http_mutation(sys_server, "systables:attack", {"op": op, "target": doc_id})
            codes[(op, table)] = (out["status"], out.get("value"))
    assert codes == dict.fromkeys(codes, ("success", "SystemTable"))
    failed = http_mutation(sys_server, "systables:attack_uncaught", {"op": "delete", "target": targets["_cron_jobs"]})
    assert failed["status"] == "error"
    assert "system table '_cron_jobs'" in failed["errorMessage"]
    assert _snapshot(sys_server, targets) == before
