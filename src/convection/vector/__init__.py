"""Vector search for actions: ``ctx.vector_search`` over in-memory vector indexes maintained
from commits, brute-force cosine similarity (docs/search.md)."""

from __future__ import annotations

from convection.vector.service import VectorFilterBuilder, VectorSearchError, VectorSearchService

__all__ = ["VectorFilterBuilder", "VectorSearchError", "VectorSearchService"]
