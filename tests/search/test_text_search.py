"""Full-text search (SEMANTICS.md §4) through the public API: ``with_search_index`` in the
functions of tests/search/app/convex, run by ``TestBackend``."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from convection import UNSET, ConvexError, knobs
from convection.errors import ConvectionError, OccConflict
from convection.functions.context import MutationCtx
from convection.functions.identity import Identity
from convection.search import tokenize
from convection.server.app import open_deployment
from convection.testing import TestBackend

APP = Path(__file__).parent / "app" / "convex"


@pytest.fixture
def backend(convection_backend: TestBackend) -> TestBackend:
    return convection_backend


def bodies(backend: TestBackend, text: str, **kw: Any) -> list[str]:
    result: list[str] = backend.query("messages:search_bodies", {"text": text, **kw})
    return result


def add(backend: TestBackend, body: str, channel: str = "general", **kw: Any) -> str:
    doc_id: str = backend.mutation("messages:add", {"body": body, "channel": channel, **kw})
    return doc_id


def search_error(backend: TestBackend, build: Callable[[Any], Any], index: str = "search_body") -> str:
    """The code of the error a search raises inside a transaction."""

    def run(ctx: MutationCtx) -> Any:
        return ctx.db.query("messages").with_search_index(index, build).collect()

    with pytest.raises(ConvectionError) as info:
        backend.run(run)
    return info.value.code


# --- tokenizer -------------------------------------------------------------------------------


def test_tokenizer_splits_on_non_alphanumerics_and_lowercases() -> None:
    assert tokenize("Hello, WORLD! foo_bar x-ray 3.14 naïve Ünïcode 東京") == [
        "hello", "world", "foo", "bar", "x", "ray", "3", "14", "naïve", "ünïcode", "東京",
    ]
    assert tokenize("") == []
    assert tokenize("  ...!!! ") == []
    assert tokenize("running runs ran") == ["running", "runs", "ran"]  # no stemming
    assert tokenize("the a of") == ["the", "a", "of"]  # no stop words


def test_tokenizer_drops_tokens_of_32_bytes_or_more() -> None:
    # Tantivy's RemoveLongFilter keeps tokens with len(utf-8) < 32.
    assert knobs.MAX_TEXT_TERM_LENGTH_BYTES == 32
    assert tokenize("a" * 31) == ["a" * 31]
    assert tokenize("a" * 32 + " ok " + "b" * 40) == ["ok"]
    assert tokenize("é" * 15) == ["é" * 15]  # 30 bytes
    assert tokenize("é" * 16) == []  # 16 characters, 32 bytes
    # The limit applies to the token as written, before lowercasing.
    assert tokenize("A" * 31) == ["a" * 31]


def test_documents_and_queries_share_the_tokenizer(backend: TestBackend) -> None:
    add(backend, "Convection: a PYTHON backend (reactive!)")
    add(backend, "x" * 32 + " tail")
    assert bodies(backend, "python") == ["Convection: a PYTHON backend (reactive!)"]
    assert bodies(backend, "REACTIVE convection") == ["Convection: a PYTHON backend (reactive!)"]
    assert bodies(backend, "x" * 32) == []  # dropped from the document and from the query
    assert bodies(backend, "tail") == ["x" * 32 + " tail"]
    assert bodies(backend, "") == []
    assert bodies(backend, "?!") == []


# --- matching and ranking --------------------------------------------------------------------


def test_terms_are_ored_and_documents_matching_more_terms_rank_first(backend: TestBackend) -> None:
    add(backend, "apple pie")
    add(backend, "kiwi tart")
    add(backend, "apple kiwi smoothie")
    add(backend, "plain water")
    result = bodies(backend, "apple kiwi")
    assert result[0] == "apple kiwi smoothie"
    assert sorted(result[1:]) == ["apple pie", "kiwi tart"]


def test_bm25_prefers_shorter_documents_over_raw_term_frequency(backend: TestBackend) -> None:
    # avgdl = 5: "apple" twice in 8 tokens scores 2/(2+1.2*(.25+.75*8/5)) = 0.535 (x weight);
    # once in 2 tokens scores 1/(1+1.2*(.25+.75*2/5)) = 0.602: the short document wins.
    add(backend, "apple apple banana cherry date egg fig grape")
    add(backend, "apple kiwi")
    assert bodies(backend, "apple") == ["apple kiwi", "apple apple banana cherry date egg fig grape"]


def test_bm25_term_frequency_and_rarity(backend: TestBackend) -> None:
    add(backend, "red red blue")
    add(backend, "red blue blue")
    assert bodies(backend, "red") == ["red red blue", "red blue blue"]
    assert bodies(backend, "blue") == ["red blue blue", "red red blue"]
    for filler in ("common one", "common two", "common three"):
        add(backend, filler)
    add(backend, "common rare")
    add(backend, "common")
    # "rare" (1 document) weighs more than "common" (5 documents).
    assert bodies(backend, "common rare")[0] == "common rare"


def test_bm25_scores_match_the_formula(backend: TestBackend) -> None:
    """The exact order predicted by BM25 (k1=1.2, b=0.75) for a small corpus."""
    corpus = [
        "alpha beta gamma",
        "alpha alpha alpha delta epsilon zeta eta theta",
        "beta beta",
        "gamma delta alpha beta",
        "omega",
    ]
    for text in corpus:
        add(backend, text)
    query = ["alpha", "beta"]
    n = len(corpus)
    lengths = [len(t.split()) for t in corpus]
    avgdl = sum(lengths) / n

    def score(text: str) -> float:
        words = text.split()
        total = 0.0
        for term in query:
            tf = words.count(term)
            if not tf:
                continue
            df = sum(term in t.split() for t in corpus)
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            total += idf * 2.2 * tf / (tf + 1.2 * (0.25 + 0.75 * len(words) / avgdl))
        return total

    expected = sorted((t for t in corpus if score(t) > 0), key=lambda t: -score(t))
    # "beta" is the last term, so it is also a prefix: no other term starts with it here.
    assert bodies(backend, "alpha beta") == expected


def test_ties_go_to_newer_documents_first(backend: TestBackend) -> None:
    ids = [add(backend, "same text") for _ in range(3)]
    found = backend.query("messages:search", {"text": "same"})
    assert [d["_id"] for d in found] == list(reversed(ids))


def test_prefix_match_applies_to_the_last_term_only(backend: TestBackend) -> None:
    add(backend, "hello")
    add(backend, "world")
    add(backend, "hel")
    # "hel" is not the last term: exact only; "wor" is: prefix.
    assert sorted(bodies(backend, "hel wor")) == ["hel", "world"]
    assert sorted(bodies(backend, "hel")) == ["hel", "hello"]
    assert bodies(backend, "ello") == []  # a prefix, not a substring


def test_exact_matches_outrank_prefix_matches(backend: TestBackend) -> None:
    add(backend, "cat")
    add(backend, "category")  # newer, same length: would win a tie
    assert bodies(backend, "cat") == ["cat", "category"]


def test_prefix_expands_to_at_most_16_terms(backend: TestBackend) -> None:
    assert knobs.MAX_SEARCH_PREFIX_MATCHES_COUNT == 16
    backend.mutation("messages:add_many", {"bodies": [f"pre{i:02d}" for i in range(20)]})
    found = bodies(backend, "pre")
    # The 16 lexicographically smallest terms with the prefix.
    assert sorted(found) == [f"pre{i:02d}" for i in range(16)]
    assert bodies(backend, "pre19") == ["pre19"]


def test_only_the_first_16_query_terms_count(backend: TestBackend) -> None:
    add(backend, "target")
    fillers = " ".join(f"w{i}" for i in range(15))
    assert bodies(backend, fillers + " target") == ["target"]  # 16th term
    assert bodies(backend, fillers + " w15 target") == []  # 17th term: dropped


# --- filters, post-filters, terminal operations ----------------------------------------------


def test_equality_filters(backend: TestBackend) -> None:
    add(backend, "news one", "a", author="ann")
    add(backend, "news two", "b", author="bob")
    add(backend, "news three", "a")
    add(backend, "news four", "a", author="bob")
    assert sorted(bodies(backend, "news", channel="a")) == ["news four", "news one", "news three"]
    found = backend.query("messages:search", {"text": "news", "channel": "a", "author": "bob"})
    assert [d["body"] for d in found] == ["news four"]
    assert backend.query("messages:search", {"text": "news", "channel": "c"}) == []

    def missing_author(ctx: MutationCtx) -> list[str]:
        q = ctx.db.query("messages").with_search_index(
            "search_body", lambda q: q.search("body", "news").eq("author", UNSET)
        )
        return [d["body"] for d in q.collect()]

    assert backend.run(missing_author) == ["news three"]


def test_post_filter_first_take(backend: TestBackend) -> None:
    for i in range(5):
        add(backend, f"item number {i}", n=float(i))
    assert sorted(backend.query("messages:search_min_n", {"text": "item", "min_n": 3})) == [
        "item number 3", "item number 4",
    ]
    assert backend.query("messages:search_first", {"text": "item"}) == "item number 4"
    assert backend.query("messages:search_first", {"text": "nothing"}) is None
    assert len(bodies(backend, "item", limit=2)) == 2


def test_search_errors(backend: TestBackend) -> None:
    add(backend, "x")
    assert search_error(backend, lambda q: q.eq("channel", "a")) == "MissingSearchFilterError"
    assert search_error(backend, lambda q: q.search("body", "a").search("body", "b")) == "DuplicateSearchFiltersError"
    assert search_error(backend, lambda q: q.search("channel", "a")) == "IncorrectSearchField"
    assert search_error(backend, lambda q: q.search("body", "a").eq("n", 1)) == "IncorrectFilterFieldError"
    assert search_error(backend, lambda q: q.search("body", 3)) == "InvalidSearchQuery"
    assert search_error(backend, lambda q: q.search("body", "x"), index="nope") == "IndexNotFound"
    assert knobs.MAX_SEARCH_FILTER_CONDITIONS_COUNT == 8

    def many(q: Any) -> Any:
        q = q.search("body", "x")
        for _ in range(9):
            q = q.eq("channel", "a")
        return q

    assert search_error(backend, many) == "TooManyFilterConditionsInSearchQueryError"

    def with_order(ctx: MutationCtx) -> Any:
        return ctx.db.query("messages").with_search_index("search_body", lambda q: q.search("body", "x")).order("desc")

    def order_first(ctx: MutationCtx) -> Any:
        return ctx.db.query("messages").order("asc").with_search_index("search_body", lambda q: q.search("body", "x"))

    def both_indexes(ctx: MutationCtx) -> Any:
        return ctx.db.query("messages").with_index("by_creation_time").with_search_index(
            "search_body", lambda q: q.search("body", "x")
        )

    for fn in (with_order, order_first, both_indexes):
        with pytest.raises(ConvectionError) as info:
            backend.run(fn)
        assert info.value.code == "InvalidQuery"


def test_too_many_candidates(backend: TestBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    assert knobs.MAX_SEARCH_CANDIDATES_COUNT == 1024
    monkeypatch.setattr(knobs, "MAX_SEARCH_CANDIDATES_COUNT", 5)
    backend.mutation("messages:add_many", {"bodies": [f"word {i}" for i in range(7)]})
    assert len(bodies(backend, "word", limit=5)) == 5

    def collect(ctx: MutationCtx) -> Any:
        return ctx.db.query("messages").with_search_index("search_body", lambda q: q.search("body", "word")).collect()

    with pytest.raises(ConvectionError) as info:
        backend.run(collect)
    assert info.value.code == "SearchQueryTooManyResults"
    # Pagination goes past the limit: each page is its own search after the cursor.
    seen: list[str] = []
    cursor = None
    while True:
        page = backend.query("messages:search_page", {"text": "word", "paginationOpts": {"numItems": 3, "cursor": cursor}})
        seen += [d["body"] for d in page["page"]]
        if page["isDone"]:
            break
        cursor = page["continueCursor"]
    assert sorted(seen) == sorted(f"word {i}" for i in range(7))


# --- pagination ------------------------------------------------------------------------------


def test_paginate_search_results_in_relevance_order(backend: TestBackend) -> None:
    add(backend, "fox")
    add(backend, "fox fox jumps over the dog")
    add(backend, "the quick brown fox")
    add(backend, "fox fox")
    add(backend, "a fox and another fox and more")
    everything = bodies(backend, "fox")
    assert len(everything) == 5
    pages: list[list[str]] = []
    cursor = None
    while True:
        page = backend.query("messages:search_page", {"text": "fox", "paginationOpts": {"numItems": 2, "cursor": cursor}})
        pages.append([d["body"] for d in page["page"]])
        if page["isDone"]:
            break
        cursor = page["continueCursor"]
    assert [b for p in pages for b in p] == everything
    assert [len(p) for p in pages] == [2, 2, 1]
    # A cursor of one search does not fit another.
    first = backend.query("messages:search_page", {"text": "fox", "paginationOpts": {"numItems": 2, "cursor": None}})
    with pytest.raises(ConvexError):
        backend.query("messages:search_page", {"text": "dog", "paginationOpts": {"numItems": 2, "cursor": first["continueCursor"]}})


def test_paginated_search_page_is_stable_with_its_end_cursor(backend: TestBackend) -> None:
    for i in range(4):
        add(backend, f"note {i}")
    first = backend.query("messages:search_page", {"text": "note", "paginationOpts": {"numItems": 2, "cursor": None}})
    again = backend.query(
        "messages:search_page",
        {"text": "note", "paginationOpts": {"numItems": 2, "cursor": None, "endCursor": first["continueCursor"]}},
    )
    assert again["page"] == first["page"]


# --- read-your-writes and snapshots ----------------------------------------------------------


def test_a_mutation_sees_its_own_writes_in_search(backend: TestBackend) -> None:
    first = add(backend, "hello world")
    add(backend, "hello other", "elsewhere")
    inside = backend.mutation("messages:add_then_search", {"body": "hello again hello", "text": "hello"})
    assert inside == ["hello again hello", "hello world"]
    # Byte-identical to the same search after the commit (same statistics).
    assert bodies(backend, "hello", channel="general") == inside
    assert backend.mutation("messages:edit_then_search", {"id": first, "body": "goodbye", "text": "hello"}) == [
        "hello again hello", "hello other",
    ]
    assert backend.mutation("messages:edit_then_search", {"id": first, "body": "hello hello hello", "text": "hello"})[0] == (
        "hello hello hello"
    )
    assert backend.mutation("messages:remove_then_search", {"id": first, "text": "hello"}) == [
        "hello again hello", "hello other",
    ]
    assert bodies(backend, "hello") == ["hello again hello", "hello other"]


def test_search_runs_at_the_transaction_snapshot(backend: TestBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    a = add(backend, "snapshot alpha")
    b = add(backend, "snapshot beta")
    db = backend.db

    def search_in(txn: Any, text: str) -> list[str]:
        from convection.database.query import Query

        q = Query(txn, "messages").with_search_index("search_body", lambda q: q.search("body", text))
        return [d["body"] for d in q.collect()]

    for exact in (4096, 0):  # scoring every posting, then the threshold algorithm
        monkeypatch.setattr(knobs, "SEARCH_EXACT_POSTINGS_COUNT", exact)
        old = db.begin(read_only=True)
        before = search_in(old, "snapshot")
        backend.mutation("messages:edit", {"id": a, "body": "changed alpha"})
        backend.mutation("messages:remove", {"id": b})
        c = add(backend, "snapshot gamma")
        assert bodies(backend, "snapshot") == ["snapshot gamma"]  # forces the index to catch up
        assert search_in(old, "snapshot") == before
        assert search_in(db.begin(read_only=True), "snapshot") == ["snapshot gamma"]
        # Put things back for the second round.
        backend.mutation("messages:edit", {"id": a, "body": "snapshot alpha"})
        b = add(backend, "snapshot beta")
        backend.mutation("messages:remove", {"id": c})


# --- reactivity and OCC ----------------------------------------------------------------------


def test_subscribed_search_updates_on_matching_writes(backend: TestBackend) -> None:
    add(backend, "live one", "a")
    with backend.subscribe("messages:search_bodies", {"text": "live", "channel": "a"}) as sub:
        assert sub.value == ["live one"]
        new = add(backend, "live two", "a")
        assert sub.wait_for_change() == ["live two", "live one"]
        backend.mutation("messages:edit", {"id": new, "body": "dead two"})
        assert sub.wait_for_change() == ["live one"]
        backend.mutation("messages:edit", {"id": new, "body": "live again"})
        assert sub.wait_for_change() == ["live again", "live one"]
        backend.mutation("messages:remove", {"id": new})
        assert sub.wait_for_change() == ["live one"]


def test_writes_outside_the_filter_do_not_invalidate(backend: TestBackend) -> None:
    add(backend, "quiet", "a")
    with backend.subscribe("messages:search_bodies", {"text": "quiet", "channel": "a"}) as sub:
        assert sub.value == ["quiet"]
        run = sub._run
        assert run is not None
        add(backend, "quiet too", "b")  # another channel: cannot change the result
        assert run.subscription.invalidated_at is None
        add(backend, "noise", "a")  # same channel, no query term: reads are per term
        assert run.subscription.invalidated_at is None
        add(backend, "quietly", "a")  # a term starting with the prefix term: invalidates
        assert run.subscription.invalidated_at is not None
        assert sub.wait_for_change() == ["quiet", "quietly"]


def test_unfiltered_search_depends_on_every_write_to_the_table(backend: TestBackend) -> None:
    with backend.subscribe("messages:search_bodies", {"text": "anything"}) as sub:
        assert sub.value == []
        add(backend, "anything at all", "zzz")
        assert sub.wait_for_change() == ["anything at all"]


def test_a_search_conflicts_with_a_concurrent_matching_write(backend: TestBackend) -> None:
    from convection.database.query import Query

    db = backend.db
    add(backend, "contended", "a")
    txn = db.begin()
    q = Query(txn, "messages").with_search_index("search_body", lambda q: q.search("body", "contended").eq("channel", "a"))
    assert len(q.collect()) == 1
    txn.insert("notes", {"text": "saw one"})
    add(backend, "contended too", "a")  # commits after txn's snapshot, inside its read set
    with pytest.raises(OccConflict):
        db.commit(txn)
    # A write outside the filter does not conflict.
    txn = db.begin()
    q = Query(txn, "messages").with_search_index("search_body", lambda q: q.search("body", "contended").eq("channel", "a"))
    assert len(q.collect()) == 2
    txn.insert("notes", {"text": "saw two"})
    add(backend, "contended elsewhere", "b")
    db.commit(txn)
    # Mutations retry on the conflict and see the new write.
    assert backend.mutation("messages:search_then_count", {"text": "contended"}) == 3


# --- restart ---------------------------------------------------------------------------------


def test_the_index_is_rebuilt_from_disk_after_a_restart(tmp_path: Path) -> None:
    admin = Identity(kind="admin")

    def call(dep: Any, kind: str, path: str, args: dict[str, Any]) -> Any:
        fn = dep.app.run_query if kind == "query" else dep.app.run_mutation
        outcome = asyncio.run(fn(path, args, admin))
        assert outcome.success, outcome.error_message
        return outcome.value

    dep = open_deployment(APP, tmp_path, dev=True)
    try:
        kept = call(dep, "mutation", "messages:add", {"body": "persistent words", "channel": "a"})
        gone = call(dep, "mutation", "messages:add", {"body": "persistent but deleted", "channel": "a"})
        call(dep, "mutation", "messages:remove", {"id": gone})
        call(dep, "mutation", "messages:edit", {"id": kept, "body": "persistent words edited"})
    finally:
        dep.close()
        dep.app.loaded.unload()
    dep = open_deployment(APP, tmp_path, dev=True)
    try:
        assert call(dep, "query", "messages:search_bodies", {"text": "persistent"}) == ["persistent words edited"]
        assert call(dep, "query", "messages:search_bodies", {"text": "edit", "channel": "a"}) == ["persistent words edited"]
        call(dep, "mutation", "messages:add", {"body": "persistent after restart", "channel": "a"})
        assert call(dep, "query", "messages:search_bodies", {"text": "persistent"}) == [
            "persistent after restart", "persistent words edited",
        ]
    finally:
        dep.close()
        dep.app.loaded.unload()
