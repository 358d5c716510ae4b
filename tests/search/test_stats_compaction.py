"""Compaction of BM25 statistics (search/compaction.py): after many commits the entries a
cold read of the statistics touches stay bounded, the sums stay exact at every snapshot
(before and after the compaction commit), and searches rank as before."""

from __future__ import annotations

from typing import Any

import pytest

from convection import knobs
from convection.search.compaction import compact_statistics
from convection.search.stats import Statistics
from convection.testing import TestBackend

COMMITS = 120


@pytest.fixture
def backend(convection_backend: TestBackend, monkeypatch: pytest.MonkeyPatch) -> TestBackend:
    # W = 0: every published delta may be compacted (with the default retention it would be
    # deltas older than 10 minutes)
    monkeypatch.setattr(knobs, "SNAPSHOT_RETENTION_MS", 0)
    return convection_backend


def cold(backend: TestBackend) -> Statistics:
    """A statistics reader with an empty cache, as after a restart."""
    info = backend.db.catalog.index("messages", "search_body")
    assert info is not None
    return Statistics(backend.db.persistence, info.index_id)


def read_all(stats: Statistics, ts: int) -> tuple[tuple[int, int], int, int]:
    return stats.corpus(ts), stats.df("common", ts), stats.df("rare", ts)


def test_compaction_bounds_the_statistics_read_and_keeps_them_exact(backend: TestBackend) -> None:
    ids = [backend.mutation("messages:add", {"body": f"common word{i}", "channel": "c"}) for i in range(COMMITS)]
    backend.mutation("messages:add", {"body": "rare common", "channel": "c"})
    backend.mutation("messages:remove", {"id": ids[0]})
    before = backend.db.latest_ts()
    expected = ((COMMITS, 2 * COMMITS), COMMITS, 1)

    uncompacted = cold(backend)
    assert read_all(uncompacted, before) == expected
    assert uncompacted.entries_read > 2 * COMMITS  # one df delta and one corpus delta per commit

    info = backend.db.catalog.index("messages", "search_body")
    assert info is not None
    assert compact_statistics(backend.db, info, min_count=2) > 2 * COMMITS - 10
    after = backend.db.latest_ts()
    compacted = cold(backend)
    assert read_all(compacted, after) == expected
    assert compacted.entries_read <= 3  # one base entry each for the corpus and the two terms
    # a snapshot taken before the compaction commit still sums its own deltas, exactly
    assert read_all(cold(backend), before) == expected

    # more commits, another compaction: still bounded, still exact
    for i in range(30):
        backend.mutation("messages:add", {"body": f"common more{i}", "channel": "c"})
    assert compact_statistics(backend.db, info, min_count=2) > 0
    again = cold(backend)
    assert read_all(again, backend.db.latest_ts()) == ((COMMITS + 30, 2 * COMMITS + 60), COMMITS + 30, 1)
    assert again.entries_read <= 3
    # and the process's own (warm) cache agrees
    warm = backend.db.text_search.statistics(info)  # type: ignore[union-attr]
    assert read_all(warm, backend.db.latest_ts()) == read_all(again, backend.db.latest_ts())

    first: list[Any] = backend.query("messages:search", {"text": "rare common", "limit": 3})
    assert first[0]["body"] == "rare common"


def test_maintenance_compacts_the_statistics(backend: TestBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(knobs, "SEARCH_STATS_COMPACT_MIN_COUNT", 16)
    for i in range(40):
        backend.mutation("messages:add", {"body": f"common w{i}", "channel": "c"})
    info = backend.db.catalog.index("messages", "search_body")
    assert info is not None
    backend.db.run_maintenance()  # the search kind's hook compacts (40 commits >= 16)
    stats = cold(backend)
    assert read_all(stats, backend.db.latest_ts()) == ((40, 80), 40, 0)
    assert stats.entries_read <= 3
    assert compact_statistics(backend.db, info) == 0  # one base entry left: below the threshold
