"""BM25 corpus statistics at a snapshot, summed incrementally from the delta entries.

The statistics of a search index at ts ``S`` are the sums of its delta entries with ts <= S
(search/postings.py): the document count and total token count (corpus deltas) and, per term,
the number of documents containing it (document-frequency deltas). Every commit writes one
delta per term it changes, so they are exact at every snapshot, identical in every process,
and never rebuilt. Compaction (search/compaction.py) replaces the deltas with ts <= C by one
*base* entry holding their sum, in a commit at D >= C + 2·W (W: ``SNAPSHOT_RETENTION_MS``):
at a snapshot S >= D the deltas <= C are gone and the base is there, at S < D the reverse.

A read from scratch at ``S`` reads the base live at S (at most one) and the deltas in
``(C, S]``: bounded by the commits since the last compaction, not by history.
:class:`Statistics` also caches, per index and term, ``(as_of, sum)``: a read at ``S`` with
``S - W <= as_of <= S`` adds only the deltas in ``(as_of, S]``. That is safe across a
compaction: one at D <= S merged only deltas <= C <= D - 2W < as_of. An older cache entry is
read from scratch. ``as_of`` is always a published snapshot ts, so no delta at or below it
can appear later (a backfill writes its base deltas before the index becomes readable).
``entries_read`` counts the statistics entries read (tests assert it stays bounded).
"""

from __future__ import annotations

import threading
from typing import Final

from convection import knobs
from convection.persistence.base import Persistence
from convection.search.postings import (
    CORPUS_BASE_SLOT,
    CORPUS_SLOT,
    corpus_delta_of,
    corpus_ts_of,
    df_base_prefix,
    df_delta_of,
    df_prefix,
    stat_ts_of,
    ts_bound,
)

_PAGE: Final = 4096
_MAX_CACHED_TERMS: Final = 200_000


def compaction_window_ns() -> int:
    """W: how old a cached sum may be (and half how old a delta must be to be compacted)."""
    return knobs.SNAPSHOT_RETENTION_MS * 1_000_000


class Statistics:
    """The statistics cache of one search index. Thread-safe."""

    def __init__(self, persistence: Persistence, index_id: int) -> None:
        self._p = persistence
        self._index_id = index_id
        self._lock = threading.Lock()
        self._df: dict[str, tuple[int, int]] = {}
        self._corpus: tuple[int, int, int] = (-1, 0, 0)  # as_of, documents, tokens
        self.entries_read = 0

    def _keys(self, start: bytes, end: bytes, ts: int) -> list[bytes]:
        keys: list[bytes] = []
        while True:
            page = self._p.index_keys(self._index_id, start, end, ts, _PAGE)
            keys.extend(k for k, _ in page)
            if len(page) < _PAGE:
                self.entries_read += len(keys)
                return keys
            start = page[-1][0] + b"\x00"

    def _sum(self, prefix: bytes, after: int, ts: int) -> list[bytes]:
        """The delta keys of ``prefix`` with after < ts' <= ts, live at ``ts``."""
        start = ts_bound(prefix, after) if after >= 0 else prefix
        return self._keys(start, ts_bound(prefix, ts), ts)

    @staticmethod
    def _fresh(as_of: int, ts: int) -> bool:
        return as_of <= ts and as_of >= ts - compaction_window_ns()

    def corpus(self, ts: int) -> tuple[int, int]:
        """(documents, tokens) at ``ts``."""
        prefix = bytes((CORPUS_SLOT,))
        with self._lock:
            as_of, n, t = self._corpus
        if not (as_of >= 0 and self._fresh(as_of, ts)):
            base = bytes((CORPUS_BASE_SLOT,))
            bases = self._keys(base, ts_bound(base, ts), ts)
            as_of, n, t = -1, 0, 0
            if bases:
                as_of = corpus_ts_of(bases[-1])
                n, t = corpus_delta_of(bases[-1])
        for k in self._sum(prefix, as_of, ts):
            dn, dt = corpus_delta_of(k)
            n += dn
            t += dt
        with self._lock:
            if ts > self._corpus[0]:
                self._corpus = (ts, n, t)
        return n, t

    def df(self, term: str, ts: int) -> int:
        """How many documents contain ``term`` at ``ts``."""
        with self._lock:
            cached = self._df.get(term)
        if cached is not None and self._fresh(cached[0], ts):
            as_of, value = cached
        else:
            base = df_base_prefix(term)
            bases = self._keys(base, ts_bound(base, ts), ts)
            as_of, value = (stat_ts_of(bases[-1]), df_delta_of(bases[-1])) if bases else (-1, 0)
        value += sum(df_delta_of(k) for k in self._sum(df_prefix(term), as_of, ts))
        with self._lock:
            cur = self._df.get(term)
            if cur is None or cur[0] < ts:
                if cur is None and len(self._df) >= _MAX_CACHED_TERMS:
                    self._df.clear()
                self._df[term] = (ts, value)
        return value
