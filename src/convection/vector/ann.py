"""The store of one vector index: a usearch HNSW graph of unit vectors, saved to disk with the
commit ts it covers, plus exact search for small candidate sets.

An :class:`AnnIndex` holds, for every indexed document, a usearch *label* (a fresh uint64 per
version; an update removes the old label and adds a new one), the document's encoded filter
values and, per (filter field, value), the set of labels. A document is indexed only when its
vector field is an array of exactly ``dimensions`` finite float64 numbers (anything else is
silently not indexed, as in Convex).

**Search.** Candidates are every live label, or the union of the labels of the filter's
equality terms (an OR, as Convex's filters). When there are at most
``VECTOR_EXACT_MAX_COUNT`` candidates the search is exact: their vectors are read back from
the graph and scored with one matrix-vector product. Otherwise the HNSW graph is searched
(``expansion_search`` at least ``VECTOR_EXPANSION_SEARCH_COUNT``), over-fetching when a filter
keeps only a fraction of the documents and widening until ``limit`` results pass (or falling
back to exact). Scores are cosine similarities in float32, best first (the caller orders ties
by id).

**Maintenance.** :meth:`apply` updates the label maps at once but holds new vectors in a
batch that :meth:`flush` adds to the graph in one usearch call (at the end of every
:meth:`drain`, every ``_BATCH`` vectors, and before a search or a save): per-call overhead
and usearch's own threads make a bulk load several times faster than one ``add`` each. A
label removed while still in the batch is just dropped from it.

**Persistence.** :meth:`save` writes the graph to a new generation file, then (atomically,
by rename) a JSON sidecar naming that file, the index id, the dimensions, the ts up to which
every commit is applied and the label map; older generations are deleted after. :meth:`load`
restores both; the caller then applies the document log after that ts. A crash while saving
leaves the previous generation in force.

Not thread-safe: callers hold :attr:`lock`. numpy and usearch are imported lazily (they are
the ``convection[vector]`` extra).
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections import deque
from pathlib import Path
from types import ModuleType
from typing import Any

from convection import knobs
from convection.database.transaction import field_value
from convection.errors import MissingExtra
from convection.indexing.keys import encode_value

CONNECTIVITY = 16  # HNSW m, as Convex's qdrant configuration
# HNSW build breadth (usearch expansion_add, its default). Measured with bench/vector_scale.py's
# embedding-like 768-dimension vectors and search breadth 128: at 30k, 128 builds 980 vectors/s
# (raw usearch) at recall@10 0.9995, 64 builds 1,840/s at 0.9965, 40 builds 3,840/s at 0.966;
# at 100k through the engine, 64 loads 1.8x faster but recall@10 falls to 0.965 (128: 0.9995),
# too close to the 0.95 goal for data harder than the benchmark's: kept at 128.
EXPANSION_ADD = 128
_BATCH = 1024  # applied vectors added to the graph in one usearch call (see flush)

# Counts documents applied to any vector index (tests assert a restart applies only the log
# after the saved ts).
APPLIED = [0]


def numpy() -> ModuleType:
    """numpy, or MissingExtra naming ``convection[vector]``."""
    try:
        import numpy as np
    except ImportError:
        raise MissingExtra("Vector search (a vector index in schema.py)", "numpy", "vector") from None
    return np


def _usearch_index() -> Any:
    try:
        from usearch.index import Index
    except ImportError as exc:  # usearch needs numpy: name the package that is missing
        missing = "numpy" if (exc.name or "").startswith("numpy") else "usearch"
        raise MissingExtra("Vector search (a vector index in schema.py)", missing, "vector") from None
    return Index


def unit_vector(values: Any, dimensions: int) -> Any:
    """``values`` as a float32 unit vector (numpy), or None when it cannot be indexed."""
    if type(values) is not list or len(values) != dimensions or set(map(type, values)) != {float}:
        return None
    np = numpy()
    arr = np.asarray(values, dtype=np.float64)
    if not np.isfinite(arr).all():
        return None
    norm = float(np.linalg.norm(arr))
    if norm > 0.0:
        arr = arr / norm
    return arr.astype(np.float32)


class AnnIndex:
    """One vector index. See the module docstring."""

    def __init__(self, index_id: int, dimensions: int, vector_field: str, filter_fields: tuple[str, ...]) -> None:
        Index = _usearch_index()

        self.index_id = index_id
        self.dimensions = dimensions
        self.vector_field = vector_field
        self.filter_fields = filter_fields
        self.lock = threading.Lock()
        self.ready = False
        self.applied_ts = 0  # every commit with ts <= applied_ts is applied (once ready)
        self.dirty = False
        self.changes_since_save = 0
        self._ann = Index(ndim=dimensions, metric="ip", dtype="f32", connectivity=CONNECTIVITY,
                          expansion_add=EXPANSION_ADD)
        self._next_label = 1
        self._label: dict[bytes, int] = {}
        self._iid: dict[int, bytes] = {}
        self._filters: dict[int, tuple[bytes, ...]] = {}
        self._by_filter: dict[tuple[int, bytes], set[int]] = {}
        self._pending: deque[tuple[int, bytes, dict[str, Any] | None]] = deque()
        self._pending_lock = threading.Lock()
        self._batch: dict[int, Any] = {}  # label -> unit vector applied but not yet in the graph

    def __len__(self) -> int:
        return len(self._label)

    # --- maintenance ---------------------------------------------------------------------
    def enqueue(self, ts: int, iid: bytes, doc: dict[str, Any] | None) -> int:
        """Queue a committed change (committer thread). Returns the queue length."""
        with self._pending_lock:
            self._pending.append((ts, iid, doc))
            return len(self._pending)

    def drain(self) -> None:
        """Apply queued changes newer than ``applied_ts`` (lock held, index ready)."""
        with self._pending_lock:
            items = list(self._pending)
            self._pending.clear()
        floor = self.applied_ts  # one commit's writes share its ts
        for ts, iid, doc in items:
            if ts > floor:
                self.apply(iid, doc)
                self.applied_ts = max(self.applied_ts, ts)
        self.flush()

    def apply(self, iid: bytes, doc: dict[str, Any] | None) -> None:
        """Make the index hold ``doc`` (None: deleted) for document ``iid``."""
        APPLIED[0] += 1
        old = self._label.pop(iid, None)
        if old is not None:
            self._forget(old)
        self.dirty = True
        self.changes_since_save += 1
        if doc is None:
            return
        vec = unit_vector(field_value(doc, self.vector_field), self.dimensions)
        if vec is None:
            return
        filters = tuple(encode_value(field_value(doc, f)) for f in self.filter_fields)
        label = self._next_label
        self._next_label += 1
        self._batch[label] = vec
        self._remember(label, iid, filters)
        if len(self._batch) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        """Add the applied vectors still held in the batch to the graph: one usearch call for
        many vectors costs far less than one call each (lock held)."""
        if not self._batch:
            return
        np = numpy()
        labels = np.fromiter(self._batch.keys(), dtype=np.uint64, count=len(self._batch))
        matrix = np.vstack(list(self._batch.values()))
        self._batch = {}
        self._ann.add(labels, matrix)

    def _remember(self, label: int, iid: bytes, filters: tuple[bytes, ...]) -> None:
        self._label[iid] = label
        self._iid[label] = iid
        self._filters[label] = filters
        for pos, enc in enumerate(filters):
            self._by_filter.setdefault((pos, enc), set()).add(label)

    def _forget(self, label: int) -> None:
        if self._batch.pop(label, None) is None:
            self._ann.remove(label)
        self._iid.pop(label, None)
        for pos, enc in enumerate(self._filters.pop(label, ())):
            labels = self._by_filter.get((pos, enc))
            if labels is not None:
                labels.discard(label)
                if not labels:
                    del self._by_filter[(pos, enc)]

    # --- search --------------------------------------------------------------------------
    def search(self, query: Any, limit: int, terms: list[tuple[int, bytes]] | None) -> list[tuple[float, bytes]]:
        """The best ``limit`` (score, internal id) pairs, best first (ties: caller orders by
        id). ``terms`` = OR of (filter field position, encoded value); None: no filter."""
        self.flush()
        if limit <= 0 or not self._label:
            return []
        if terms is None:
            n = len(self._label)
            if n <= knobs.VECTOR_EXACT_MAX_COUNT:
                # Brute force inside usearch; fetch extra so ties at the cut are all kept.
                matches = self._ann.search(query, min(n, 2 * limit + 8), exact=True)
                found = [(_clamp(1.0 - float(dist)), self._iid[int(label)])
                         for label, dist in zip(matches.keys.tolist(), matches.distances.tolist(), strict=True)
                         if int(label) in self._iid]
                if len(found) > limit:
                    kth = sorted((s for s, _ in found), reverse=True)[limit - 1]
                    found = [f for f in found if f[0] >= kth]
                return found
            return self._approximate(query, limit, None, n)
        chosen: set[int] = set()
        for t in terms:
            chosen |= self._by_filter.get(t, set())
        if len(chosen) <= knobs.VECTOR_EXACT_MAX_COUNT:
            return self._exact(query, limit, list(chosen))
        return self._approximate(query, limit, chosen, len(chosen))

    def _exact(self, query: Any, limit: int, labels: list[int]) -> list[tuple[float, bytes]]:
        np = numpy()
        if not labels:
            return []
        keys = np.asarray(labels, dtype=np.uint64)
        got: Any = self._ann.get(keys, dtype="f32")
        vectors = np.vstack(got) if isinstance(got, tuple) else np.asarray(got, dtype=np.float32)
        scores = vectors.reshape(len(labels), self.dimensions) @ query
        k = min(limit, len(labels))
        if len(labels) > k:
            kth = np.partition(scores, len(labels) - k)[len(labels) - k]
            keep = np.nonzero(scores >= kth)[0]
        else:
            keep = np.arange(len(labels))
        return [(_clamp(float(scores[i])), self._iid[labels[int(i)]]) for i in keep.tolist()]

    def _approximate(self, query: Any, limit: int, allowed: set[int] | None, candidates: int) -> list[tuple[float, bytes]]:
        total = len(self._label)
        self._ann.expansion_search = max(knobs.VECTOR_EXPANSION_SEARCH_COUNT, 2 * limit)
        # With a filter keeping a fraction f of the documents, about limit / f results of an
        # unfiltered search pass it; fetch twice that, and widen while too few pass.
        count = limit if allowed is None else min(total, 2 * limit * math.ceil(total / max(candidates, 1)))
        while True:
            matches = self._ann.search(query, count)
            out: list[tuple[float, bytes]] = []
            for label, dist in zip(matches.keys.tolist(), matches.distances.tolist(), strict=True):
                if allowed is not None and label not in allowed:
                    continue
                iid = self._iid.get(int(label))
                if iid is not None:
                    out.append((_clamp(1.0 - float(dist)), iid))
            if len(out) >= limit or count >= total:
                return out
            if allowed is not None and count * 4 >= total:
                return self._exact(query, limit, list(allowed))
            count = min(total, count * 4)

    # --- persistence ---------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """Write the graph and the sidecar (see the module docstring); lock held."""
        self.flush()
        directory.mkdir(parents=True, exist_ok=True)
        meta_path = directory / f"vector-{self.index_id}.json"
        generation = 1
        if meta_path.exists():
            try:
                generation = int(json.loads(meta_path.read_text())["generation"]) + 1
            except (ValueError, KeyError, OSError):
                generation = 1
        graph = directory / f"vector-{self.index_id}-{generation}.usearch"
        self._ann.save(str(graph))
        meta = {
            "indexId": self.index_id,
            "dimensions": self.dimensions,
            "ts": self.applied_ts,
            "generation": generation,
            "file": graph.name,
            "nextLabel": self._next_label,
            "labels": [[label, iid.hex(), [f.hex() for f in self._filters[label]]]
                       for label, iid in self._iid.items()],
        }
        tmp = meta_path.with_suffix(".json.tmp")
        with open(tmp, "w") as f:
            json.dump(meta, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, meta_path)
        for old in directory.glob(f"vector-{self.index_id}-*.usearch"):
            if old.name != graph.name:
                old.unlink(missing_ok=True)
        self.dirty = False
        self.changes_since_save = 0

    def load(self, directory: Path) -> bool:
        """Restore the saved graph and label map; False when there is none that fits."""
        meta_path = directory / f"vector-{self.index_id}.json"
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            return False
        if meta.get("indexId") != self.index_id or meta.get("dimensions") != self.dimensions:
            return False
        graph = directory / str(meta["file"])
        if not graph.exists():
            return False
        self._ann.load(str(graph))
        self._next_label = int(meta["nextLabel"])
        for label, iid_hex, filters in meta["labels"]:
            self._remember(int(label), bytes.fromhex(iid_hex), tuple(bytes.fromhex(f) for f in filters))
        self.applied_ts = int(meta["ts"])
        self.dirty = False
        return True

    @staticmethod
    def remove_files(directory: Path, index_id: int) -> None:
        for path in (*directory.glob(f"vector-{index_id}-*.usearch"), directory / f"vector-{index_id}.json"):
            path.unlink(missing_ok=True)


def _clamp(x: float) -> float:
    return min(1.0, max(-1.0, x))
