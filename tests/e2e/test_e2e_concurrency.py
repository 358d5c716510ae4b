"""50 npm ConvexClients (50 WebSockets, one node process) increment one counter at once."""

from __future__ import annotations

from conftest import NodeRunner

CLIENTS = 50
PER_CLIENT = 10


def test_concurrent_increments_are_counted_exactly_once(server_url: str, node: NodeRunner) -> None:
    r = node.run("concurrency.mjs", server_url, timeout=120, clients=CLIENTS, perClient=PER_CLIENT)
    total = CLIENTS * PER_CLIENT
    print(
        f"\nconcurrency: {CLIENTS} clients x {PER_CLIENT}: acknowledged {r['acked']}, "
        f"failed {r['failureCount']}, {r['elapsedMs']} ms"
    )
    # Contention is never an error: after its optimistic retries a mutation runs in the
    # serialized lane, where it cannot conflict (issue 12.4).
    assert r["failures"] == [] and r["failureCount"] == 0
    assert r["acked"] == total
    # The counter moved exactly once per acknowledged mutation...
    assert r["final"] == r["acked"]
    assert r["distinctResults"] == r["acked"]
    assert r["maxResult"] == r["acked"]
    # ... and every subscriber saw the final value.
    assert r["subscribersAtFinal"] == CLIENTS
