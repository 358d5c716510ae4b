"""The in-memory inverted index of one search index, and BM25 ranking over a snapshot view.

A :class:`TextIndex` holds, for every live document of its table, a :class:`DocEntry` (term
frequencies of the search field, token count, creation time, encoded filter values), posting
sets per term, a sorted term list (prefix expansion) and corpus statistics. It reflects every
commit *applied* to it, up to ``applied_ts`` — which is at least the database's latest
published ts once :meth:`drain` ran (changes are queued before a commit becomes visible).

**Snapshot views.** A search runs at a transaction's snapshot ``S <= applied_ts``. Every
change applied after the initial build is logged as ``(ts, id, previous entry)``, so the view
at ``S`` is the current state with each document changed after ``S`` put back to its entry
before its first change after ``S`` (:meth:`overrides_since`), and then the transaction's
own pending writes put on top. Postings, statistics (document count, total tokens, document
frequencies) and prefix expansion are all computed over that view, so a search returns
exactly what the same search returns at ``S`` in a store that holds only ``S``'s documents —
the same result before and after the transaction commits. The log keeps changes newer than
``change_floor``; a snapshot older than that is served by the caller from the document log.

**Ranking** (SEMANTICS.md §4.1). Terms are OR'ed; the last query term is also a prefix that
expands to the ``MAX_SEARCH_PREFIX_MATCHES_COUNT`` lexicographically smallest index terms
starting with it (the term itself included when present; expanded terms get boost 0.5, an
exact occurrence of a term keeps boost 1). Score = Σ over matched terms of
``boost · idf · (k1 + 1) · tf / (tf + k1 · (1 − b + b · dl / avgdl))`` with
``idf = ln(1 + (N − df + 0.5) / (df + 0.5))``, k1 = 1.2, b = 0.75 (Tantivy's BM25, without
its one-byte quantization of document lengths). Results are ordered by the synthetic key
``(−score, −_creationTime, internal id)``: best score first, then newer documents.

Not thread-safe: callers hold :attr:`lock` (the committer thread only touches the pending
queue, under its own small lock).
"""

from __future__ import annotations

import bisect
import heapq
import math
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from convection import knobs
from convection.database.transaction import field_value
from convection.indexing.keys import encode_key, encode_value
from convection.schema.schema import SearchIndexDefinition
from convection.search.query import CompiledTextQuery
from convection.search.tokenizer import tokenize

K1 = 1.2
B = 0.75
PREFIX_BOOST = 0.5


class DocEntry:
    """What the index knows about one document."""

    __slots__ = ("creation_time", "filters", "freqs", "length")

    def __init__(self, creation_time: float, freqs: dict[str, int], length: int, filters: tuple[bytes, ...]) -> None:
        self.creation_time = creation_time
        self.freqs = freqs
        self.length = length
        self.filters = filters

    def matches(self, filters: tuple[tuple[int, bytes], ...]) -> bool:
        mine = self.filters
        return all(mine[pos] == enc for pos, enc in filters)


def make_entry(definition: SearchIndexDefinition, doc: dict[str, Any]) -> DocEntry:
    text = field_value(doc, definition.search_field)
    tokens = tokenize(text) if isinstance(text, str) else []
    filters = tuple(encode_value(field_value(doc, f)) for f in definition.filter_fields)
    return DocEntry(float(doc["_creationTime"]), dict(Counter(tokens)), len(tokens), filters)


Overrides = dict[bytes, DocEntry | None]


class TextIndex:
    """One search index of one table. See the module docstring."""

    def __init__(self, table: str, definition: SearchIndexDefinition, pseudo_id: int) -> None:
        self.table = table
        self.definition = definition
        self.pseudo_id = pseudo_id
        self.lock = threading.Lock()
        self.docs: dict[bytes, DocEntry] = {}
        self.postings: dict[str, set[bytes]] = {}
        self.terms: list[str] = []  # sorted
        self.total_tokens = 0
        self.ready = False
        self.applied_ts = 0  # every change with ts <= applied_ts is applied
        self.built_through = 0  # queued changes with ts <= this were included by the build
        self.change_floor = 0  # every applied change with ts > change_floor is in the log
        self._log_ts: list[int] = []
        self._log: list[tuple[bytes, DocEntry | None]] = []
        self._pending: deque[tuple[int, bytes, dict[str, Any] | None]] = deque()
        self._pending_lock = threading.Lock()

    # --- maintenance ---------------------------------------------------------------------
    def enqueue(self, ts: int, internal_id: bytes, doc: dict[str, Any] | None) -> int:
        """Queue a committed change (committer thread). Returns the queue length."""
        with self._pending_lock:
            self._pending.append((ts, internal_id, doc))
            return len(self._pending)

    def drain(self, log_horizon_ts: int, log_max: int) -> None:
        """Apply queued changes (lock held), then trim the change log."""
        with self._pending_lock:
            items = list(self._pending)
            self._pending.clear()
        for ts, iid, doc in items:
            if ts > self.built_through:
                self.apply(ts, iid, doc)
        self._trim(log_horizon_ts, log_max)

    def load(self, internal_id: bytes, doc: dict[str, Any]) -> None:
        """Add a document of the initial build (not logged)."""
        self._remove(internal_id)
        self._add(internal_id, make_entry(self.definition, doc))

    def apply(self, ts: int, internal_id: bytes, doc: dict[str, Any] | None) -> None:
        """Apply one committed change at ``ts`` (changes come in ts order) and log it."""
        old = self._remove(internal_id)
        if doc is not None:
            self._add(internal_id, make_entry(self.definition, doc))
        self._log_ts.append(ts)
        self._log.append((internal_id, old))
        if ts > self.applied_ts:
            self.applied_ts = ts

    def _add(self, iid: bytes, entry: DocEntry) -> None:
        self.docs[iid] = entry
        self.total_tokens += entry.length
        postings = self.postings
        for term in entry.freqs:
            ids = postings.get(term)
            if ids is None:
                postings[term] = {iid}
                bisect.insort(self.terms, term)
            else:
                ids.add(iid)

    def _remove(self, iid: bytes) -> DocEntry | None:
        entry = self.docs.pop(iid, None)
        if entry is None:
            return None
        self.total_tokens -= entry.length
        postings = self.postings
        for term in entry.freqs:
            ids = postings[term]
            ids.discard(iid)
            if not ids:
                del postings[term]
                i = bisect.bisect_left(self.terms, term)
                del self.terms[i]
        return entry

    def _trim(self, horizon_ts: int, log_max: int) -> None:
        n = bisect.bisect_left(self._log_ts, horizon_ts)
        if len(self._log_ts) - n > log_max:
            n = len(self._log_ts) - log_max
        if n > 0:
            self.change_floor = max(self.change_floor, self._log_ts[n - 1])
            del self._log_ts[:n]
            del self._log[:n]

    def overrides_since(self, ts: int) -> Overrides | None:
        """The entries at snapshot ``ts`` of documents changed after it (None: a deletion or
        not yet inserted), or None when ``ts`` is older than the change log."""
        if ts >= self.applied_ts:
            return {}
        if ts < self.change_floor:
            return None
        out: Overrides = {}
        log_ = self._log
        for j in range(bisect.bisect_right(self._log_ts, ts), len(log_)):
            iid, old = log_[j]
            if iid not in out:
                out[iid] = old
        return out

    # --- ranking -------------------------------------------------------------------------
    def rank(
        self,
        query: CompiledTextQuery,
        overrides: Overrides,
        start: bytes,
        end: bytes | None,
        limit: int,
    ) -> tuple[list[tuple[bytes, bytes]], bool]:
        """The best ``limit`` results with synthetic keys in ``[start, end)`` of the view (this
        index with ``overrides`` applied), as (key, internal id) in key order, and whether
        more results exist."""
        if not query.terms:
            return [], False
        docs = self.docs
        postings = self.postings
        n_docs = len(docs)
        total = self.total_tokens
        changed: list[tuple[DocEntry | None, DocEntry | None]] = []  # (current, view) per override
        for iid, view in overrides.items():
            cur = docs.get(iid)
            if cur is not None:
                n_docs -= 1
                total -= cur.length
            if view is not None:
                n_docs += 1
                total += view.length
            changed.append((cur, view))

        def doc_freq(term: str) -> int:
            d = len(postings.get(term, ()))
            for cur, view in changed:
                if cur is not None and term in cur.freqs:
                    d -= 1
                if view is not None and term in view.freqs:
                    d += 1
            return d

        chosen: dict[str, float] = {}
        for term in query.terms:
            if term not in chosen and doc_freq(term) > 0:
                chosen[term] = 1.0
        for term in self._expand_prefix(query.terms[-1], overrides, doc_freq):
            chosen.setdefault(term, PREFIX_BOOST)
        if not chosen:
            return [], False

        n_eff = n_docs if n_docs > 0 else 1
        avgdl = total / n_eff
        filters = query.filters
        scores: dict[bytes, float] = {}
        view_entries = [(iid, v) for iid, v in overrides.items() if v is not None]
        for term in sorted(chosen):
            df = doc_freq(term)
            idf = math.log(1.0 + (n_eff - df + 0.5) / (df + 0.5))
            weight = chosen[term] * idf * (K1 + 1.0)
            for iid, entry in _term_docs(term, postings, docs, overrides, view_entries):
                if filters and not entry.matches(filters):
                    continue
                tf = entry.freqs[term]
                norm = K1 * (1.0 - B + B * entry.length / avgdl) if avgdl > 0 else K1
                scores[iid] = scores.get(iid, 0.0) + weight * tf / (tf + norm)
        if not scores:
            return [], False

        def entry_of(iid: bytes) -> DocEntry:
            if iid in overrides:
                v = overrides[iid]
                assert v is not None
                return v
            return docs[iid]

        order = ((-s, -entry_of(iid).creation_time, iid) for iid, s in scores.items())
        if start or end is not None:
            keyed = []
            for t in order:
                key = encode_key(list(t))
                if key >= start and (end is None or key < end):
                    keyed.append((key, t[2]))
            best = heapq.nsmallest(limit + 1, keyed)
            return best[:limit], len(best) > limit
        top = heapq.nsmallest(limit + 1, order)
        return [(encode_key(list(t)), t[2]) for t in top[:limit]], len(top) > limit

    def _expand_prefix(
        self, prefix: str, overrides: Overrides, doc_freq: Callable[[str], int]
    ) -> list[str]:
        extra = sorted(
            {t for v in overrides.values() if v is not None for t in v.freqs if t.startswith(prefix)}
        )
        terms = self.terms

        def from_index() -> Iterator[str]:
            i = bisect.bisect_left(terms, prefix)
            while i < len(terms) and terms[i].startswith(prefix):
                yield terms[i]
                i += 1

        out: list[str] = []
        last = None
        for term in heapq.merge(from_index(), extra):
            if term == last:
                continue
            last = term
            if doc_freq(term) > 0:
                out.append(term)
                if len(out) >= knobs.MAX_SEARCH_PREFIX_MATCHES_COUNT:
                    break
        return out


def _term_docs(
    term: str,
    postings: dict[str, set[bytes]],
    docs: dict[bytes, DocEntry],
    overrides: Overrides,
    view_entries: Iterable[tuple[bytes, DocEntry]],
) -> Iterator[tuple[bytes, DocEntry]]:
    """The documents of the view containing ``term``."""
    for iid in postings.get(term, ()):
        if iid not in overrides:
            yield iid, docs[iid]
    for iid, entry in view_entries:
        if term in entry.freqs:
            yield iid, entry
