"""Full-text search: the ``convex_en`` tokenizer, search indexes whose postings and BM25
statistics live in the MVCC index log, and ``Query.with_search_index`` (docs/search.md,
docs/internals/derived-indexes.md)."""

from __future__ import annotations

from convection.search.service import SearchKind
from convection.search.tokenizer import tokenize

__all__ = ["SearchKind", "tokenize"]
