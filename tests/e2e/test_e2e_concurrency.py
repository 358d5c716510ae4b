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
        f"failed {r['failureCount']} (OCC retries exhausted), {r['elapsedMs']} ms"
    )
    assert r["acked"] + r["failureCount"] == total
    # The counter moved exactly once per acknowledged mutation...
    assert r["final"] == r["acked"]
    assert r["distinctResults"] == r["acked"]
    assert r["maxResult"] == r["acked"]
    # ... and every subscriber saw the final value.
    assert r["subscribersAtFinal"] == CLIENTS
    # Failures can only be conflicts that stayed conflicts after every retry.
    for message in r["failures"]:
        assert "conflicted with concurrent writes" in message, message
    assert r["acked"] >= total // 2
