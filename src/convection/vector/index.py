"""The in-memory store of one vector index: brute-force cosine similarity with numpy.

A :class:`VectorIndex` keeps one row per indexed document in a float32 matrix of unit vectors
(``capacity x dimensions``, grown by doubling; freed rows are reused), the row's document id,
its encoded filter values, and per (filter field, value) the set of rows. A document is
indexed only when its vector field is an array of exactly ``dimensions`` finite float64
numbers (anything else — missing, wrong length, not an array, int64 or non-finite elements —
is silently not indexed, as in Convex).

A search is one matrix-vector product over the candidate rows (all live rows, or the union
of the rows of the filter's equality terms) and a partial sort: O(n·d) for n candidates of d
dimensions, plus O(n) for the selection and O(k log k) to order the best k. With numpy this
is about 20-40 ms per 10⁵ candidates of 768-1536 dimensions on one core; memory is 4·d bytes
per vector.

Scores are cosine similarities in [-1, 1] computed in float32 (as Convex's f32 storage), best
first, ties by document id. Not thread-safe: callers hold :attr:`lock`; the committer thread
only touches the pending queue under its own small lock.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import numpy as np
import numpy.typing as npt

from convection.database.transaction import field_value
from convection.indexing.keys import encode_value
from convection.schema.schema import VectorIndexDefinition

Vector = npt.NDArray[np.float32]


def unit_vector(values: Any, dimensions: int) -> Vector | None:
    """``values`` as a float32 unit vector, or None when it cannot be indexed."""
    if type(values) is not list or len(values) != dimensions or set(map(type, values)) != {float}:
        return None
    arr = np.asarray(values, dtype=np.float64)
    if not np.isfinite(arr).all():
        return None
    norm = float(np.linalg.norm(arr))
    if norm > 0.0:
        arr = arr / norm
    return arr.astype(np.float32)


class VectorIndex:
    """One vector index of one table. See the module docstring."""

    def __init__(self, table: str, definition: VectorIndexDefinition) -> None:
        self.table = table
        self.definition = definition
        self.dimensions = definition.dimensions
        self.lock = threading.Lock()
        self.ready = False
        self.built_through = 0
        self._mat: Vector = np.zeros((16, self.dimensions), dtype=np.float32)
        self._ids: list[bytes | None] = []
        self._filters: list[tuple[bytes, ...]] = []
        self._row: dict[bytes, int] = {}
        self._free: list[int] = []
        self._by_filter: dict[tuple[int, bytes], set[int]] = {}
        self._pending: deque[tuple[int, bytes, dict[str, Any] | None]] = deque()
        self._pending_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._row)

    # --- maintenance ---------------------------------------------------------------------
    def enqueue(self, ts: int, internal_id: bytes, doc: dict[str, Any] | None) -> int:
        with self._pending_lock:
            self._pending.append((ts, internal_id, doc))
            return len(self._pending)

    def drain(self) -> None:
        """Apply queued changes (lock held)."""
        with self._pending_lock:
            items = list(self._pending)
            self._pending.clear()
        for ts, iid, doc in items:
            if ts > self.built_through:
                self.apply(iid, doc)

    def apply(self, internal_id: bytes, doc: dict[str, Any] | None) -> None:
        """Make the index hold ``doc`` (None: deleted) for ``internal_id``."""
        self._remove(internal_id)
        if doc is None:
            return
        vec = unit_vector(field_value(doc, self.definition.vector_field), self.dimensions)
        if vec is None:
            return
        filters = tuple(encode_value(field_value(doc, f)) for f in self.definition.filter_fields)
        if self._free:
            row = self._free.pop()
            self._ids[row] = internal_id
            self._filters[row] = filters
        else:
            row = len(self._ids)
            if row >= self._mat.shape[0]:
                grown = np.zeros((self._mat.shape[0] * 2, self.dimensions), dtype=np.float32)
                grown[:row] = self._mat[:row]
                self._mat = grown
            self._ids.append(internal_id)
            self._filters.append(filters)
        self._mat[row] = vec
        self._row[internal_id] = row
        for pos, enc in enumerate(filters):
            self._by_filter.setdefault((pos, enc), set()).add(row)

    def _remove(self, internal_id: bytes) -> None:
        row = self._row.pop(internal_id, None)
        if row is None:
            return
        for pos, enc in enumerate(self._filters[row]):
            rows = self._by_filter.get((pos, enc))
            if rows is not None:
                rows.discard(row)
                if not rows:
                    del self._by_filter[(pos, enc)]
        self._ids[row] = None
        self._filters[row] = ()
        self._free.append(row)

    # --- search --------------------------------------------------------------------------
    def search(
        self, query: Vector, limit: int, terms: list[tuple[int, bytes]] | None
    ) -> list[tuple[float, bytes]]:
        """The best ``limit`` (score, internal id) pairs, best first (ties: caller orders by
        id). ``terms`` = OR of (filter field position, encoded value); None: no filter."""
        used = len(self._ids)
        if terms is None:
            rows = np.fromiter(self._row.values(), dtype=np.int64, count=len(self._row))
        else:
            chosen: set[int] = set()
            for t in terms:
                chosen |= self._by_filter.get(t, set())
            rows = np.fromiter(chosen, dtype=np.int64, count=len(chosen))
        if rows.size == 0 or limit <= 0:
            return []
        if rows.size * 4 > used:
            scores = (self._mat[:used] @ query)[rows]
        else:
            scores = self._mat[rows] @ query
        k = min(limit, int(rows.size))
        if rows.size > k:
            kth = np.partition(scores, rows.size - k)[rows.size - k]
            keep = np.nonzero(scores >= kth)[0]
        else:
            keep = np.arange(rows.size)
        ids = self._ids
        out: list[tuple[float, bytes]] = []
        for i in keep.tolist():
            iid = ids[int(rows[i])]
            assert iid is not None
            out.append((min(1.0, max(-1.0, float(scores[i]))), iid))
        return out
