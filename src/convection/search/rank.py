"""Ranking a search over postings in the index log, at a snapshot plus a transaction's writes.

**View.** A search at snapshot ``S`` inside a transaction sees the postings live at ``S``
minus those of documents the transaction wrote (``hidden``), plus postings of the new
versions of those documents (``pending``, analyzed in memory). Statistics are those at ``S``
plus the transaction's own deltas, so a search returns the same result inside the mutation
that wrote and after it commits.

**Terms** (docs/search.md). Query terms are OR'ed; the last one is also a prefix that
expands to the ``MAX_SEARCH_PREFIX_MATCHES_COUNT`` smallest terms that start with it and have
postings in the scanned slot of the view (every term with filters: the first condition's
slot, so an expansion never spends a place on a term no candidate has). Expanded terms get
boost 0.5; a term that is also an exact query term keeps boost 1.

**Score.** BM25 (k1 = 1.2, b = 0.75, Tantivy's formula without its length quantization):
``Σ boost·idf·(k1+1)·tf / (tf + k1·(1 − b + b·dl/avgdl))``, ``idf = ln(1 + (N − df + 0.5) /
(df + 0.5))``. Results are ordered by the synthetic key ``(−score, −_creationTime, id)``.

**Top-k without reading every posting.** Within one term, postings are stored by
``(tf desc, dl asc, newest, id)``: each ``tf`` run is in score order, so a k-way merge of the
runs yields the term's postings in exact result order (:class:`TermStream`). One term: the
merge *is* the answer, produced lazily. Several terms whose postings number at most
``SEARCH_EXACT_POSTINGS_COUNT`` in all: every posting is scored (exact and cheapest).
Otherwise the threshold algorithm (Fagin's TA): pull from the stream with the best next score;
the first time a document shows up, score it completely from its document (random access:
fetch and tokenize it); a candidate is final, and produced, once its score beats the sum of
the streams' next scores (no unseen document can reach it). Results come out lazily, so
``take(10)`` of a common term reads a few runs' first pages, not every posting.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final

from convection import knobs
from convection.indexing.keys import encode_key
from convection.persistence.base import Persistence
from convection.search.postings import (
    MAX_TF,
    Analyzed,
    decode_posting,
    prefix_range,
    tail_matches,
    term_end,
    term_of,
    term_prefix,
    tf_bucket,
)
from convection.search.query import CompiledTextQuery
from convection.search.stats import Statistics

K1: Final = 1.2
B: Final = 0.75
PREFIX_BOOST: Final = 0.5
_PAGE_FIRST: Final = 64
_PAGE_MAX: Final = 2048

Row = tuple[tuple[float, float, bytes], bytes]  # (synthetic sort key, internal id)


@dataclass
class View:
    """The snapshot and the transaction's writes to the index's table."""

    persistence: Persistence
    index_id: int
    ts: int
    stats: Statistics
    hidden: frozenset[bytes] = frozenset()
    pending: dict[bytes, Analyzed] = field(default_factory=dict)  # new versions
    removed: list[Analyzed] = field(default_factory=list)  # snapshot versions written

    def corpus(self) -> tuple[int, int]:
        n, total = self.stats.corpus(self.ts)
        for a in self.removed:
            n -= 1
            total -= a.length
        for a in self.pending.values():
            n += 1
            total += a.length
        return n, total

    def df(self, term: str) -> int:
        d = self.stats.df(term, self.ts)
        d -= sum(1 for a in self.removed if term in a.freqs)
        d += sum(1 for a in self.pending.values() if term in a.freqs)
        return d

    def keys(self, start: bytes, end: bytes, limit: int) -> list[bytes]:
        return [k for k, _ in self.persistence.index_keys(self.index_id, start, end, self.ts, limit)]


@dataclass
class Slot:
    """Where a search reads postings: slot 0, or the slot of its first filter condition."""

    number: int
    value: bytes
    conditions: tuple[tuple[int, bytes], ...]  # every condition (checked on filtered slots)

    def matches(self, a: Analyzed) -> bool:
        from convection.indexing.keys import encode_value

        return all(encode_value(a.filters[pos]) == enc for pos, enc in self.conditions)


def slot_of(query: CompiledTextQuery) -> Slot:
    if not query.filters:
        return Slot(0, b"", ())
    pos, enc = query.filters[0]
    return Slot(pos + 1, enc, query.filters)


class _Run:
    """The postings of one term with one ``tf``, in score order, read page by page."""

    def __init__(self, view: View, start: bytes, end: bytes, offset: int, hidden: frozenset[bytes],
                 check: tuple[tuple[int, bytes], ...]) -> None:
        self.view, self.start, self.end, self.offset = view, start, end, offset
        self.hidden, self.check = hidden, check
        self.page = _PAGE_FIRST
        self.done = False

    def __iter__(self) -> Iterator[tuple[int, int, float, bytes]]:
        while not self.done:
            keys = self.view.keys(self.start, self.end, self.page)
            if len(keys) < self.page:
                self.done = True
            else:
                self.start = keys[-1] + b"\x00"
                self.page = min(self.page * 4, _PAGE_MAX)
            for k in keys:
                p = decode_posting(k, self.offset)
                if p.iid in self.hidden:
                    continue
                if self.check and not tail_matches(p.tail, self.check):
                    continue
                yield p.tf, p.length, p.creation_time, p.iid


class TermStream:
    """One term's postings in the view, best score first (exact result order)."""

    def __init__(self, view: View, slot: Slot, term: str, weight: float, avgdl: float) -> None:
        self.term = term
        self.weight = weight
        self.avgdl = avgdl
        prefix = term_prefix(slot.number, slot.value, term)
        check = slot.conditions[1:] if slot.number else ()
        runs: list[Iterator[tuple[int, int, float, bytes]]] = []
        # Discover the tf runs: one short read per distinct tf.
        start, end = prefix, term_end(prefix)
        while True:
            first = view.keys(start, end, 1)
            if not first:
                break
            tf = decode_posting(first[0], len(prefix)).tf
            lo, hi = tf_bucket(prefix, tf)
            runs.append(iter(_Run(view, lo, hi, len(prefix), view.hidden, check)))
            if tf <= 1:
                break
            start = hi
        mine = [
            (min(a.freqs[term], MAX_TF), a.length, a.creation_time, iid)
            for iid, a in view.pending.items()
            if term in a.freqs and (not slot.number or slot.matches(a))
        ]
        mine.sort(key=lambda p: self.sort_key(p[0], p[1], p[2], p[3]))
        runs.append(iter(mine))
        self._heap: list[tuple[tuple[float, float, bytes], int, int, Iterator[tuple[int, int, float, bytes]], tuple[int, int, float, bytes]]] = []
        for i, run in enumerate(runs):
            self._push(i, run)

    def score(self, tf: int, dl: int) -> float:
        norm = K1 * (1.0 - B + B * dl / self.avgdl) if self.avgdl > 0 else K1
        return self.weight * tf / (tf + norm)

    def sort_key(self, tf: int, dl: int, ct: float, iid: bytes) -> tuple[float, float, bytes]:
        return (-self.score(tf, dl), -ct, iid)

    def _push(self, i: int, run: Iterator[tuple[int, int, float, bytes]]) -> None:
        for p in run:
            heapq.heappush(self._heap, (self.sort_key(*p), i, 0, run, p))
            return

    def peek_score(self) -> float | None:
        return -self._heap[0][0][0] if self._heap else None

    def peek_key(self) -> tuple[float, float, bytes]:
        return self._heap[0][0]

    def pop(self) -> tuple[tuple[float, float, bytes], int, int] | None:
        """(sort key, tf, dl) of the next posting, or None when exhausted."""
        if not self._heap:
            return None
        key, i, _, run, p = heapq.heappop(self._heap)
        self._push(i, run)
        return key, p[0], p[1]


def expand_prefix(view: View, slot: Slot, prefix: str) -> list[str]:
    """The smallest ``MAX_SEARCH_PREFIX_MATCHES_COUNT`` terms of the view starting with
    ``prefix`` that have a posting in ``slot`` (skip-scan: one short read per term)."""
    start, end = prefix_range(slot.number, slot.value, prefix)
    term_at = len(start) - len(prefix.encode("utf-8")) - 1
    from_log: list[str] = []
    limit = knobs.MAX_SEARCH_PREFIX_MATCHES_COUNT
    while len(from_log) < limit:
        got = view.keys(start, end, 1)
        if not got:
            break
        term, _ = term_of(got[0], term_at)
        tp = term_prefix(slot.number, slot.value, term)
        if _has_visible(view, slot, tp, got[0]):
            from_log.append(term)
        start = term_end(tp)
    mine = {
        t for a in view.pending.values() if not slot.number or slot.matches(a)
        for t in a.freqs if t.startswith(prefix)
    }
    merged = sorted(set(from_log) | mine)
    if len(from_log) >= limit:
        merged = [t for t in merged if t <= from_log[-1]]
    return merged[:limit]


def _has_visible(view: View, slot: Slot, tp: bytes, first: bytes) -> bool:
    """Whether the term range ``tp`` has a posting not hidden by the transaction and matching
    every condition (usually decided by its first key)."""
    check = slot.conditions[1:] if slot.number else ()
    start, end = tp, term_end(tp)
    keys = [first]
    while keys:
        for k in keys:
            p = decode_posting(k, len(tp))
            if p.iid not in view.hidden and (not check or tail_matches(p.tail, check)):
                return True
        start = keys[-1] + b"\x00"
        keys = view.keys(start, end, _PAGE_MAX)
    return False


def rank(
    view: View,
    query: CompiledTextQuery,
    start: bytes,
    end: bytes | None,
    analyze_doc: Callable[[bytes], Analyzed | None],
) -> Iterator[tuple[bytes, bytes]]:
    """The results with synthetic keys in ``[start, end)``, best first, as (key, internal id),
    produced lazily: a consumer that stops after k results reads little more than what those
    k needed. ``analyze_doc(iid)`` analyzes a document of the view (random access of the
    threshold algorithm)."""
    if not query.terms:
        return
    slot = slot_of(query)
    chosen: dict[str, float] = {}
    for term in query.terms:
        chosen.setdefault(term, 1.0)
    for term in expand_prefix(view, slot, query.terms[-1]):
        chosen.setdefault(term, PREFIX_BOOST)
    n, total = view.corpus()
    n_eff = n if n > 0 else 1
    avgdl = total / n_eff
    streams: list[TermStream] = []
    postings = 0
    for term in sorted(chosen):
        df = view.df(term)
        if df <= 0:
            continue
        postings += df
        idf = math.log(1.0 + (n_eff - df + 0.5) / (df + 0.5))
        streams.append(TermStream(view, slot, term, chosen[term] * idf * (K1 + 1.0), avgdl))
    if not streams:
        return

    def in_range(key: bytes) -> bool:
        return key >= start and (end is None or key < end)

    if len(streams) == 1:  # the term's merged runs are the answer, in order
        s = streams[0]
        while (item := s.pop()) is not None:
            enc = encode_key(list(item[0]))
            if end is not None and enc >= end:
                return
            if enc >= start:
                yield enc, item[0][2]
        return

    if postings <= knobs.SEARCH_EXACT_POSTINGS_COUNT:  # score every posting
        scores: dict[bytes, float] = {}
        ct: dict[bytes, float] = {}
        for s in streams:
            while (item := s.pop()) is not None:
                key = item[0]
                scores[key[2]] = scores.get(key[2], 0.0) - key[0]
                ct[key[2]] = -key[1]
        keyed = []
        for iid, sc in scores.items():
            enc = encode_key([-sc, -ct[iid], iid])
            if in_range(enc):
                keyed.append((enc, iid))
        keyed.sort()
        yield from keyed
        return

    # The threshold algorithm, producing results as soon as no unseen document can beat them.
    seen: set[bytes] = set()
    cand: list[tuple[tuple[float, float, bytes], bytes]] = []  # heap of (sort key, encoded)
    while True:
        live = [(h, s) for s in streams if (h := s.peek_score()) is not None]
        threshold = sum(h for h, _ in live)
        # No unseen document sorts before ``bound``: its score is at most the sum of the heads,
        # and if equal it scores exactly each head's score in every stream and comes after
        # each head there (equal scores are ordered newest first, then by id).
        bound = (-threshold, *max(s.peek_key()[1:] for _, s in live)) if live else None
        while cand and (bound is None or cand[0][0] < bound):
            key, enc = heapq.heappop(cand)
            yield enc, key[2]
        if not live:
            return
        if end is not None and encode_key([-threshold]) >= end:
            while cand:  # nothing unseen is in range any more
                key, enc = heapq.heappop(cand)
                yield enc, key[2]
            return
        _, s = max(live, key=lambda hs: hs[0])
        item = s.pop()
        assert item is not None
        iid = item[0][2]
        if iid in seen:
            continue
        seen.add(iid)
        a = analyze_doc(iid)
        if a is None:
            continue
        score = 0.0
        for st in streams:  # the same order of additions as scoring every posting
            tf = a.freqs.get(st.term)
            if tf:
                score += st.score(min(tf, MAX_TF), a.length)
        k = (-score, -a.creation_time, iid)
        enc = encode_key(list(k))
        if in_range(enc):
            heapq.heappush(cand, (k, enc))
