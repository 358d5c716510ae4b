"""Derived indexes: index kinds other than ``database``, maintained by a registered kind.

A *derived index* is an ``_index`` document with a ``kind`` (``search``, ``vector``) whose
contents are not one key per document: search postings (one entry per term, filter slot and
document), or an approximate vector index kept outside the index log. The database knows
nothing of their layout; a :class:`DerivedIndexKind` registered with
``Database.register_derived`` (by ``convection.search`` / ``convection.vector``, a layer above)
supplies it. The protocol is the whole life of such an index
(docs/internals/derived-indexes.md):

* **declare**: :meth:`DerivedIndexKind.declared` lists the indexes the schema asks for
  (``ensure_indexes`` creates, backfills and drops them like database indexes);
* **build** from a snapshot plus the log: :meth:`backfill` (called by
  ``Database.backfill_index`` between the ``backfilling`` commit at ts ``s`` and the
  ``enabled`` one; every commit after ``s`` already maintains the index);
* **maintain** from commits: :meth:`prepare` runs outside the commit lock (tokenizing,
  parsing vectors), :meth:`commit_rows` under it with the commit ts and returns the entries
  and written keys (the lock only re-checks the index set: a write whose preparation is
  missing because the index appeared meanwhile is prepared there);
* **answer at a timestamp** and **report progress**: the kind's own API (search reads its
  entries at the transaction's snapshot; vector search reads its persisted ANN index).

Invariants: ``commit_rows`` is deterministic given the writes and ts, must not block, and
must not raise (a bug there would fail the commit after validation).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from convection.database.catalog import IndexInfo
from convection.persistence.base import DocumentRevision, IndexEntry

if TYPE_CHECKING:
    from convection.database.transaction import Write
    from convection.schema.schema import SchemaDefinition

# What ``prepare`` returns when the write does not touch the index.
NOTHING: Any = None


class DerivedIndexKind(Protocol):
    """One kind of derived index. See the module docstring."""

    kind: str

    def declared(
        self, schema: SchemaDefinition
    ) -> list[tuple[str, str, tuple[str, ...], tuple[tuple[str, Any], ...]]]:
        """The indexes of this kind the schema declares (enabled ones, not staged):
        ``(table, name, fields, options)``."""
        ...

    def prepare(self, index: IndexInfo, write: Write) -> Any:
        """Outside the commit lock: what ``commit_rows`` needs for ``write`` (may be
        expensive: tokenizing, parsing)."""
        ...

    def commit_rows(
        self,
        index: IndexInfo,
        changes: list[tuple[Write, Any]],
        ts: int,
        entries: list[IndexEntry],
        keys: list[bytes],
    ) -> None:
        """Under the commit lock: append the entries and written keys of one commit's
        ``changes`` (write, prepared) to ``index``. Cheap; never raises."""
        ...

    def backfill(
        self,
        index: IndexInfo,
        documents: Iterator[tuple[DocumentRevision, dict[str, Any]]],
        snapshot_ts: int,
        write: Callable[[list[IndexEntry]], None],
        progress: Callable[[int], None],
    ) -> None:
        """Fill a ``backfilling`` index from the table's documents live at ``snapshot_ts``
        (entries at each revision's ts; anything written at ``snapshot_ts`` must not collide
        with a commit's entries)."""
        ...

    def dropped(self, index: IndexInfo) -> None:
        """The index was dropped (its entries are deleted by the database)."""
        ...
