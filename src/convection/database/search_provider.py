"""The seam for full-text search in queries: ``Query.with_search_index`` asks the database's
:class:`SearchProvider` (installed by ``convection.search``, a layer above) to compile a
search bound to a transaction. Generic in the transaction type so that this module imports
neither the transaction nor the query module (they both import it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

TxnT_contra = TypeVar("TxnT_contra", contravariant=True)


class CompiledSearch(Protocol):
    """A search built by ``with_search_index``, bound to its transaction."""

    shape: str  # names the query for pagination cursors

    def rows(self, start: bytes, end: bytes | None) -> Iterator[tuple[bytes, dict[str, Any]]]:
        """Results with synthetic keys in ``[start, end)``, best first; records the reads."""
        ...


class SearchProvider(Protocol[TxnT_contra]):
    """Full-text search over a database (``Database.text_search``)."""

    def compile(
        self, txn: TxnT_contra, table: str, index: str, build: Callable[[Any], Any]
    ) -> CompiledSearch:
        """Validate ``with_search_index(index, build)`` on ``table``; raises DatabaseError."""
        ...
