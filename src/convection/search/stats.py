"""BM25 corpus statistics at a snapshot, summed incrementally from the delta entries.

The statistics of a search index at ts ``S`` are the sums of its delta entries with ts <= S
(search/postings.py): the document count and total token count (corpus deltas) and, per term,
the number of documents containing it (document-frequency deltas). Every commit writes one
delta per term it changes, so they are exact at every snapshot, identical in every process,
and never rebuilt.

:class:`Statistics` caches, per index and term, ``(as_of, sum)``: a read at ``S >= as_of``
adds only the deltas in ``(as_of, S]`` (one short key range) and moves the cache to ``S``; a
read older than the cache sums from the start without touching it. ``as_of`` is always a
published snapshot ts, so no delta at or below it can appear later (a backfill writes its base
deltas before the index becomes readable). The first read of a term after a start sums all of
its deltas: one per commit that changed the term (see docs/limitations.md).
"""

from __future__ import annotations

import threading
from typing import Final

from convection.persistence.base import Persistence
from convection.search.postings import (
    CORPUS_SLOT,
    corpus_delta_of,
    df_delta_of,
    df_prefix,
    ts_bound,
)

_PAGE: Final = 4096
_MAX_CACHED_TERMS: Final = 200_000


class Statistics:
    """The statistics cache of one search index. Thread-safe."""

    def __init__(self, persistence: Persistence, index_id: int) -> None:
        self._p = persistence
        self._index_id = index_id
        self._lock = threading.Lock()
        self._df: dict[str, tuple[int, int]] = {}
        self._corpus: tuple[int, int, int] = (0, 0, 0)  # as_of, documents, tokens

    def _sum(self, prefix: bytes, after: int, ts: int, of_key: type | None = None) -> list[bytes]:
        keys: list[bytes] = []
        start = ts_bound(prefix, after) if after >= 0 else prefix
        end = ts_bound(prefix, ts)
        while True:
            page = self._p.index_keys(self._index_id, start, end, ts, _PAGE)
            keys.extend(k for k, _ in page)
            if len(page) < _PAGE:
                return keys
            start = page[-1][0] + b"\x00"

    def corpus(self, ts: int) -> tuple[int, int]:
        """(documents, tokens) at ``ts``."""
        prefix = bytes((CORPUS_SLOT,))
        with self._lock:
            as_of, n, t = self._corpus
        if ts >= as_of:
            for k in self._sum(prefix, as_of if as_of else -1, ts):
                dn, dt = corpus_delta_of(k)
                n += dn
                t += dt
            with self._lock:
                if ts > self._corpus[0]:
                    self._corpus = (ts, n, t)
            return n, t
        n = t = 0
        for k in self._sum(prefix, -1, ts):
            dn, dt = corpus_delta_of(k)
            n += dn
            t += dt
        return n, t

    def df(self, term: str, ts: int) -> int:
        """How many documents contain ``term`` at ``ts``."""
        prefix = df_prefix(term)
        with self._lock:
            cached = self._df.get(term)
        if cached is not None and ts >= cached[0]:
            as_of, value = cached
            value += sum(df_delta_of(k) for k in self._sum(prefix, as_of, ts))
            if ts > as_of:
                with self._lock:
                    cur = self._df.get(term)
                    if cur is None or cur[0] < ts:
                        self._df[term] = (ts, value)
            return value
        value = sum(df_delta_of(k) for k in self._sum(prefix, -1, ts))
        if cached is None:
            with self._lock:
                if len(self._df) >= _MAX_CACHED_TERMS:
                    self._df.clear()
                self._df.setdefault(term, (ts, value))
        return value
