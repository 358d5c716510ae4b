"""Bounded memory per client (issue 12.2): the socket outbox and the query cache have byte
budgets (``SYNC_OUTBOX_MAX_BYTES``, ``QUERY_CACHE_MAX_BYTES``).

Each test runs its own server with small budgets and measures the server's RSS from /proc:
before the budgets, the slow consumer grew the server by ~200 MB and the distinct 1 MiB
arguments by ~600 MB, for good.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ServerProcess
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

MIB = 1 << 20
OUTBOX_BUDGET = 4 * MIB
CACHE_BUDGET = 16 * MIB
DEADLINE_S = 120.0


@pytest.fixture
def budget_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerProcess]:
    monkeypatch.setenv("CONVECTION_SYNC_OUTBOX_MAX_BYTES", str(OUTBOX_BUDGET))
    monkeypatch.setenv("CONVECTION_QUERY_CACHE_MAX_BYTES", str(CACHE_BUDGET))
    monkeypatch.setenv("CONVECTION_SYNC_MAX_QUEUED_MUTATIONS_COUNT", "5000")
    proc = ServerProcess(tmp_path / "data")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def rss_mb(server: ServerProcess) -> float:
    assert server.proc is not None
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def metric(server: ServerProcess, name: str) -> float:
    with urllib.request.urlopen(server.url + "/metrics", timeout=30) as resp:
        text = resp.read().decode()
    found = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert found is not None, f"{name} missing from /metrics"
    return float(found.group(1))


def post(server: ServerProcess, kind: str, path: str, args: dict[str, object]) -> dict[str, object]:
    req = urllib.request.Request(
        f"{server.url}/api/{kind}",
        data=json.dumps({"path": path, "args": args, "format": "json"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def test_a_client_that_stops_reading_is_closed_and_its_queue_freed(budget_server: ServerProcess) -> None:
    ws_url = budget_server.url.replace("http://", "ws://") + "/api/1.48.0/sync"
    rss_before = rss_mb(budget_server)
    # max_queue=1: the client library stops reading the socket as soon as one frame waits.
    with connect(ws_url, max_size=None, max_queue=1, open_timeout=10, close_timeout=5) as ws:
        ws.send(json.dumps({"type": "Connect", "sessionId": str(uuid.uuid4()), "connectionCount": 0,
                            "lastCloseReason": "InitialConnect", "clientTs": 0}))
        # 2,000 mutations answering 100 KB each (200 MB of responses), never read.
        for request_id in range(2000):
            ws.send(json.dumps({"type": "Mutation", "requestId": request_id, "udfPath": "messages:padded",
                                "args": [{"size": 100_000}]}))
        deadline = time.monotonic() + DEADLINE_S
        while metric(budget_server, "convection_sync_outbox_overflows_total") < 1:
            assert time.monotonic() < deadline, "the server kept queueing for a client that does not read"
            time.sleep(0.2)
        # The queue was dropped: nothing of the 200 MB stays with the server.
        assert metric(budget_server, "convection_sync_outbox_bytes") == 0
        assert rss_mb(budget_server) - rss_before < 100
        # Once the client reads again it gets what had left the server, then the close.
        responses = 0
        try:
            while True:
                message = json.loads(ws.recv(timeout=DEADLINE_S))
                responses += message["type"] == "MutationResponse"
        except ConnectionClosed as closed:
            assert closed.rcvd is not None, "no close frame"
            assert (closed.rcvd.code, closed.rcvd.reason) == (1013, "OutboxFull")
        assert responses < 2000


def test_the_query_cache_stays_within_its_byte_budget(budget_server: ServerProcess) -> None:
    rss_before = rss_mb(budget_server)
    for i in range(300):
        blob = f"{i:04d}" + "a" * (MIB - 4)  # distinct 1 MiB arguments, each echoed back
        out = post(budget_server, "query", "messages:echo", {"blob": blob})
        assert out["status"] == "success"
        assert metric(budget_server, "convection_query_cache_bytes") <= CACHE_BUDGET
    assert metric(budget_server, "convection_query_cache_evictions_total") > 0
    # 300 queries x (1 MiB arguments + 1 MiB result) passed through; the cache kept its budget.
    assert rss_mb(budget_server) - rss_before < 200
