"""Vector search for actions: ``ctx.vector_search`` over persisted HNSW indexes (usearch)
maintained from commits, exact search for small candidate sets (docs/search.md). numpy and usearch are imported only when a vector index is used."""

from __future__ import annotations

from convection.vector.service import VectorFilterBuilder, VectorKind, VectorSearchError

__all__ = ["VectorFilterBuilder", "VectorKind", "VectorSearchError"]
