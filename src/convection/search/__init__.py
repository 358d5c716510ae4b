"""Full-text search: the ``convex_en`` tokenizer, in-memory inverted indexes maintained from
commits, BM25 ranking and ``Query.with_search_index`` (docs/search.md)."""

from __future__ import annotations

from convection.search.service import TextSearchService
from convection.search.tokenizer import tokenize

__all__ = ["TextSearchService", "tokenize"]
