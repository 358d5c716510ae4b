"""A server crash under a connected npm ConvexClient: the server is SIGKILLed in the middle of
a burst of mutations and restarted on the same port and data directory. The client reconnects
by itself, re-adds its subscriptions with their journals and re-sends unacknowledged
mutations under the same (sessionId, requestId); the server de-duplicates them, so the counter
moves exactly once per acknowledged mutation, and paginated subscriptions keep their page
boundaries."""

from __future__ import annotations

from conftest import NodeRunner, ServerProcess

N = 150


def test_crash_and_restart_does_not_duplicate_mutations(
    fresh_server: ServerProcess, node: NodeRunner
) -> None:
    script = node.start("reconnect.mjs", fresh_server.url, n=N)
    fired = script.wait_for("phase")
    assert fired["phase"] == "fired"
    fresh_server.kill()
    fresh_server.start()
    script.send("restarted")
    r = script.finish(timeout=120)
    print(
        f"\nreconnect: acked before kill {fired['ackedAtKill']}, responses {fired['responsesAtKill']}, sent on the first socket "
        f"{r['mutationsSentBefore']}, answered there {r['responsesBefore']}, re-sent "
        f"{r['resentRequestIds']} (of which already answered {r['resentAlreadyAnswered']})"
    )

    # Every mutation was acknowledged exactly once, and each saw a distinct counter value:
    # none was applied twice, none lost.
    assert all(isinstance(v, (int, float)) for v in r["results"]), r["results"]
    assert sorted(r["results"]) == list(range(1, N + 1))
    assert r["acked"] == N
    assert r["counterSeen"] == N
    assert r["counterViaHttp"] == N
    assert fresh_server.call("query", "counter:get", {"name": r["name"]}) == N

    # The client really reconnected: a second socket, same sessionId, connectionCount 1.
    assert r["socketsOpened"] >= 2
    connects = r["connects"]
    assert connects[0]["connectionCount"] == 0
    assert connects[0]["lastCloseReason"] == "InitialConnect"
    assert connects[-1]["connectionCount"] >= 1
    assert len({c["sessionId"] for c in connects}) == 1
    assert r["fatalErrors"] == []

    # Unfinished mutations went out again with the same requestIds (and were not re-run).
    assert r["resentRequestIds"] >= 1

    # Subscriptions resumed; pages were re-added with their journals, so page 0 kept the row
    # inserted into it before the crash (its end comes from the journal, not numItems), and
    # the later insert grew page 1 without moving any boundary.
    assert r["readdedPages"] == len(r["pagesBefore"])
    assert r["readdedPagesWithJournal"] == r["readdedPages"]
    before = r["pagesBefore"]
    after = r["pagesAfter"]
    assert [p["ns"] for p in before] == [[10, 15, 20, 30], [40, 50, 60], [70, 80, 90], []]
    assert [p["ns"] for p in after] == [[10, 15, 20, 30], [40, 50, 55, 60], [70, 80, 90], []]
    assert [p["continueCursor"] for p in after] == [p["continueCursor"] for p in before]
