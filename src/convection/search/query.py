"""The search filter builder ``q`` of ``with_search_index(name, lambda q: ...)`` and the compiled
query it produces (docs/search.md).

A search query is exactly one ``q.search(search_field, text)`` plus at most
``MAX_SEARCH_FILTER_CONDITIONS_COUNT`` equality conditions ``q.eq(filter_field, value)`` on the
index's filter fields (``convection.UNSET`` matches documents missing the field). The text is
tokenized like documents; the first ``MAX_SEARCH_QUERY_TERMS_COUNT`` terms are kept, the last
of them is a prefix term. Errors carry Convex's error codes and are raised when the query is
built.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from convection import knobs
from convection.errors import DatabaseError
from convection.indexing.keys import encode_value
from convection.schema.schema import SearchIndexDefinition
from convection.search.tokenizer import tokenize
from convection.values.model import UNSET, normalize
from convection.values.order import MISSING


class SearchFilterBuilder:
    """``q`` in ``with_search_index(name, lambda q: q.search("body", text).eq("channel", c))``."""

    def __init__(self) -> None:
        self._search: list[tuple[Any, Any]] = []
        self._eq: list[tuple[Any, Any]] = []

    def search(self, field: str, text: str) -> SearchFilterBuilder:
        """Match documents whose ``field`` (the index's search field) contains terms of ``text``."""
        self._search.append((field, text))
        return self

    def eq(self, field: str, value: Any) -> SearchFilterBuilder:
        """Only documents whose filter field ``field`` equals ``value`` (``UNSET``: missing)."""
        self._eq.append((field, value))
        return self


@dataclass(frozen=True)
class CompiledTextQuery:
    """A validated search query: the query terms (the last one a prefix) and the equality
    conditions as (filter field position, encoded value)."""

    terms: tuple[str, ...]
    filters: tuple[tuple[int, bytes], ...]
    text: str

    def shape(self, table: str, index: str) -> str:
        """A hash naming this query for pagination cursors."""
        h = hashlib.sha256()
        parts = [b"search", table.encode(), index.encode(), self.text.encode("utf-8", "surrogatepass")]
        parts += [bytes([pos]) + enc for pos, enc in self.filters]
        for part in parts:
            h.update(len(part).to_bytes(4, "big"))
            h.update(part)
        return h.hexdigest()[:16]


def compile_search(
    table: str,
    definition: SearchIndexDefinition,
    build: Callable[[SearchFilterBuilder], Any],
) -> CompiledTextQuery:
    """Run the user's builder function and validate what it built."""
    where = f"Search query against {table}.{definition.name}"
    if not callable(build):
        raise DatabaseError(
            f"{where}: with_search_index takes a function building the search, e.g. "
            f'lambda q: q.search("{definition.search_field}", text)',
            code="InvalidSearchQuery",
        )
    q = SearchFilterBuilder()
    result = build(q)
    if result is not None and result is not q:
        raise DatabaseError(
            f"{where}: the search function must return the builder (q.search(...).eq(...))",
            code="InvalidSearchQuery",
        )
    if not q._search:
        raise DatabaseError(
            f"{where} does not contain any search filters. You must include a search filter "
            f'like q.search("{definition.search_field}", search_text).',
            code="MissingSearchFilterError",
        )
    if len(q._search) > 1:
        raise DatabaseError(
            f"{where} contains multiple search filters. Only one q.search(...) is allowed.",
            code="DuplicateSearchFiltersError",
        )
    field, text = q._search[0]
    if field != definition.search_field:
        raise DatabaseError(
            f"{where} contains a search filter against {field!r}, which doesn't match the "
            f"indexed search field {definition.search_field!r}.",
            code="IncorrectSearchField",
        )
    if not isinstance(text, str):
        raise DatabaseError(
            f"{where}: the search text must be a string, got {type(text).__name__}",
            code="InvalidSearchQuery",
        )
    if len(q._eq) > knobs.MAX_SEARCH_FILTER_CONDITIONS_COUNT:
        raise DatabaseError(
            f"{where} has too many filter conditions. Max: "
            f"{knobs.MAX_SEARCH_FILTER_CONDITIONS_COUNT} Actual: {len(q._eq)}",
            code="TooManyFilterConditionsInSearchQueryError",
        )
    positions = {f: i for i, f in enumerate(definition.filter_fields)}
    filters: list[tuple[int, bytes]] = []
    for f, value in q._eq:
        pos = positions.get(f) if isinstance(f, str) else None
        if pos is None:
            raise DatabaseError(
                f"{where} contains an equality filter on {f!r} but that field isn't indexed "
                f"for filtering in filter_fields ({', '.join(definition.filter_fields) or 'none'}).",
                code="IncorrectFilterFieldError",
            )
        v = MISSING if value is UNSET else normalize(value)
        filters.append((pos, encode_value(v)))
    terms = tuple(tokenize(text)[: knobs.MAX_SEARCH_QUERY_TERMS_COUNT])
    return CompiledTextQuery(terms, tuple(filters), text)
