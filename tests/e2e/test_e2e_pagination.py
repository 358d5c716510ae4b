"""Pagination with the usePaginatedQuery contract (PROTOCOL.md §6) through npm ConvexClient
subscriptions, while another client inserts rows in the middle of loaded pages. (Pages
across a server restart, resumed from their journals: test_e2e_reconnect.py.)"""

from __future__ import annotations

from conftest import NodeRunner


def test_paginated_subscriptions(server_url: str, node: NodeRunner) -> None:
    r = node.run("pagination.mjs", server_url)

    # First page {numItems, cursor: null, id}, then loadMore with each continueCursor.
    initial = r["initialPages"]
    assert [p["ns"] for p in initial] == [[10, 20, 30], [40, 50, 60], [70, 80, 90], [100, 110, 120], []]
    assert [p["isDone"] for p in initial] == [False, False, False, False, True]
    assert all(isinstance(p["continueCursor"], str) for p in initial)
    sent = r["sentPaginationOpts"]
    assert sent[0] == {"numItems": 3, "cursor": None, "id": 1}
    for i in range(1, len(initial)):
        assert sent[i] == {"numItems": 3, "cursor": initial[i - 1]["continueCursor"], "id": 1}

    # Inserts in the middle: the page containing each insert grows, the others keep their
    # rows, and no boundary moves; the last page (isDone) grows at the end.
    after = r["afterInserts"]
    assert [p["ns"] for p in after] == [[5, 10, 20, 30], [40, 45, 50, 60], [70, 80, 90], [100, 110, 120], [125]]
    assert [p["continueCursor"] for p in after] == r["boundariesBefore"]
    assert r["valueCounts"][2] == 1 and r["valueCounts"][3] == 1  # untouched pages: no update

    # A page grown past 2 * numItems is split at its splitCursor: (start, split] and
    # (split, end], which together hold exactly the old page.
    big = r["bigPage"]
    assert big["ns"] == [40, 41, 42, 43, 44, 45, 50, 60]
    assert isinstance(big["splitCursor"], str)
    first, second = r["splitHalves"]
    assert first["ns"] + second["ns"] == big["ns"]
    assert first["continueCursor"] == big["splitCursor"]
    assert second["continueCursor"] == big["continueCursor"]
    assert sent[-2:] == [
        {"numItems": 3, "cursor": initial[0]["continueCursor"], "endCursor": big["splitCursor"], "id": 1},
        {"numItems": 3, "cursor": big["splitCursor"], "endCursor": big["continueCursor"], "id": 1},
    ]
    assert [p["ns"] for p in r["afterSplitInsert"]] == [
        [5, 10, 20, 30], first["ns"], [*second["ns"][:2], 46, *second["ns"][2:]], [70, 80, 90], [100, 110, 120], [125]
    ]
    # The pages are gapless and in order: together they are the whole table.
    assert r["concatenated"] == r["allRows"]

    # Every page result carried a journal; a bad cursor is an InvalidCursor ConvexError.
    assert r["pageUpdates"] > 0
    assert r["pageUpdatesWithJournal"] == r["pageUpdates"]
    assert "InvalidCursor" in r["invalidCursor"]["message"]
    assert r["invalidCursor"]["data"] == {"isConvexSystemError": True, "paginationError": "InvalidCursor"}

    # The client library's own paginated subscription: loads, loads more, is exhausted, and
    # splits a page that grew, keeping every row exactly once and in order.
    lib = r["library"]
    statuses = lib["statuses"]
    assert statuses[0] == {"results": [10, 20], "status": "CanLoadMore"}
    assert statuses[1] == {"results": [10, 20, 30, 40, 50], "status": "CanLoadMore"}
    assert statuses[2] == {"results": [10, 20, 30, 40, 50, 60, 70], "status": "Exhausted"}
    assert statuses[3]["results"] == [10, 11, 12, 13, 14, 15, 20, 30, 40, 50, 60, 70]
    assert statuses[4]["results"] == [10, 11, 12, 13, 14, 15, 16, 20, 30, 40, 50, 60, 70]
    opts = lib["sentPaginationOpts"]
    assert opts[0]["cursor"] is None and opts[0]["numItems"] == 2
    assert opts[1]["numItems"] == 3 and isinstance(opts[1]["cursor"], str)
    assert any(isinstance(o.get("endCursor"), str) for o in opts), opts  # it split
