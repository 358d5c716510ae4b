"""Compaction of a search index's statistics (search/stats.py has the read side).

Every commit that changes a search index writes one document-frequency delta per term it
changes and one corpus delta, so without compaction a term's statistics grow with the number
of commits that touched it (and the first read of a term after a start would sum them all).
:func:`compact_statistics` runs in the database's maintenance round: at a snapshot ``B`` it
picks ``C = B - 2·W`` (W: ``SNAPSHOT_RETENTION_MS``); once the index has at least
``SEARCH_STATS_COMPACT_MIN_COUNT`` corpus entries at or below C (one per commit since the
last compaction: counting them is one short range read, scanning every term is not), it
commits, for the corpus and for every term with two or more entries at or below C (deltas,
plus its previous base), one new base entry ``(C, sum)`` and tombstones those entries. A cold
read of a term's statistics then reads at most one base and the deltas of the commits since
the last compaction (about ``SEARCH_STATS_COMPACT_MIN_COUNT`` plus those of the last 2W).

Invariants:
* the commit ts D > B, so D >= C + 2W: a cached sum a reader still trusts (as_of >= S - W)
  is newer than C (stats.py), and a snapshot older than D still sees the old entries;
* at most one base per term is live at any snapshot (the previous one is tombstoned in the
  same commit); two compactions at once conflict (each reads the base range and writes in
  it), and the loser just tries again next round;
* the sums are exact: only deltas visible at B with ts <= C < B are merged, and no delta with
  a ts <= C can be written after B.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Final

from convection import knobs
from convection.database.catalog import IndexInfo
from convection.database.database import Database
from convection.database.readset import ReadSet
from convection.errors import OccConflict
from convection.persistence.base import DocumentRevision, IndexEntry
from convection.search.postings import (
    CORPUS_BASE_SLOT,
    CORPUS_SLOT,
    DF_BASE_SLOT,
    DF_SLOT,
    corpus_base_key,
    corpus_delta_of,
    corpus_ts_of,
    df_base_key,
    df_delta_of,
    stat_ts_of,
    term_of,
)
from convection.search.stats import compaction_window_ns

log = logging.getLogger("convection.search")

_PAGE: Final = 4096
_STAT_MARK: Final = b"\x00"  # statistics entries point at no document


def _scan(db: Database, index_id: int, slot: int, ts: int) -> list[bytes]:
    keys: list[bytes] = []
    start, end = bytes((slot,)), bytes((slot + 1,))
    while True:
        page = db.persistence.index_keys(index_id, start, end, ts, _PAGE)
        keys.extend(k for k, _ in page)
        if len(page) < _PAGE:
            return keys
        start = page[-1][0] + b"\x00"


def compact_statistics(db: Database, index: IndexInfo, min_count: int | None = None) -> int:
    """Compact the statistics of one search index (module docstring). Returns the number of
    entries merged away (0: nothing to do, or a concurrent compaction won)."""
    threshold = knobs.SEARCH_STATS_COMPACT_MIN_COUNT if min_count is None else min_count
    begin = db.latest_ts()
    cut = begin - 2 * compaction_window_ns()
    if cut <= 0:
        return 0
    iid = index.index_id
    # The corpus entries are one per commit: cheap to count, and the trigger (scanning every
    # term's entries is only worth it once enough commits accumulated).
    corpus = [k for slot in (CORPUS_BASE_SLOT, CORPUS_SLOT) for k in _scan(db, iid, slot, begin) if corpus_ts_of(k) <= cut]
    if len(corpus) < max(2, threshold):
        return 0
    n = t = 0
    for k in corpus:
        dn, dt = corpus_delta_of(k)
        n += dn
        t += dt
    old: list[bytes] = list(corpus)
    new: list[bytes] = [corpus_base_key(cut, n, t)]
    merged: dict[str, list[bytes]] = defaultdict(list)
    sums: dict[str, int] = defaultdict(int)
    for slot in (DF_BASE_SLOT, DF_SLOT):
        for key in _scan(db, iid, slot, begin):
            if stat_ts_of(key) > cut:
                continue
            term, _ = term_of(key, 1)
            merged[term].append(key)
            sums[term] += df_delta_of(key)
    for term, keys in merged.items():
        if len(keys) >= 2:
            old.extend(keys)
            new.append(df_base_key(term, cut, sums[term]))
    if not new:
        return 0
    reads = ReadSet()
    reads.record_interval(iid, bytes((DF_BASE_SLOT,)), bytes((CORPUS_BASE_SLOT + 1,)))
    number = index.table_number

    def build(ts: int) -> tuple[list[DocumentRevision], list[IndexEntry], dict[int, list[bytes]]]:
        entries = [IndexEntry(iid, k, ts, number, None) for k in old]
        entries += [IndexEntry(iid, k, ts, number, _STAT_MARK) for k in new]
        return [], entries, {iid: list(new)}

    try:
        db.committer.commit(begin, reads.freeze(), build, source="_search_compaction")
    except OccConflict:
        return 0
    removed = len(old) - len(new)
    log.debug("compacted %d statistics entries of %s.%s", removed, index.table, index.name)
    return removed
