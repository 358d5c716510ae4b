"""Fan-out: one query result, many subscribers (issue 15.1).

A result that fans out to N sockets is encoded for the wire once per cache entry (counted by
``convection_query_result_encodes_total``); each socket's Transition splices its own versions
and queryId around the shared bytes. Official npm clients on separate sockets must all see
the same values, in the same order, update after update.
"""

from __future__ import annotations

from conftest import NodeRunner, ServerProcess

CLIENTS = 20
BODIES = ["one", "two", "three"]


def test_many_clients_get_identical_values_from_one_encoding(
    fresh_server: ServerProcess, node: NodeRunner
) -> None:
    r = node.run("fanout.mjs", fresh_server.url, timeout=120, clients=CLIENTS, bodies=BODIES)
    expected = [BODIES[:i] for i in range(len(BODIES) + 1)]
    assert len(r["histories"]) == CLIENTS
    for history in r["histories"]:
        assert history == expected
    # One new result per insert, CLIENTS sockets: encoded for the wire once, not per socket.
    assert r["encodeDeltas"] == [1] * len(BODIES)
