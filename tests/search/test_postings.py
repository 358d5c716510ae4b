"""Search postings in the MVCC index log: the catalog entry, statistics, top-k retrieval
without scoring every posting, backfill with progress, and no rebuild at start."""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from convection import knobs
from convection.database.catalog import ENABLED, SEARCH_KIND
from convection.database.query import Query
from convection.functions.identity import Identity
from convection.search import postings, tokenize
from convection.server.app import open_deployment
from convection.testing import TestBackend

APP = Path(__file__).parent / "app" / "convex"
WORDS = [f"w{i}" for i in range(40)]


@pytest.fixture
def backend(convection_backend: TestBackend) -> TestBackend:
    return convection_backend


def zipf_corpus(rng: random.Random, n: int) -> list[str]:
    weights = [1 / (i + 1) for i in range(len(WORDS))]
    return [" ".join(rng.choices(WORDS, weights, k=rng.randint(1, 8))) for _ in range(n)]


def search_ids(backend: TestBackend, text: str, channel: str | None = None, n: int | None = None) -> list[str]:
    def run(ctx: Any) -> list[str]:
        def build(q: Any) -> Any:
            q = q.search("body", text)
            return q.eq("channel", channel) if channel is not None else q

        q = ctx.db.query("messages").with_search_index("search_body", build)
        return [d["_id"] for d in (q.take(n) if n is not None else q.collect())]

    result: list[str] = backend.run(run)
    return result


def reference(docs: dict[str, tuple[str, str, float]], text: str, channel: str | None) -> list[str]:
    """BM25 over the whole corpus (SEMANTICS.md §4.1), computed from scratch."""
    terms = tokenize(text)[: knobs.MAX_SEARCH_QUERY_TERMS_COUNT]
    toks = {i: Counter(tokenize(b)) for i, (b, _, _) in docs.items()}
    n = len(docs)
    avgdl = sum(sum(c.values()) for c in toks.values()) / n
    vocab = sorted({t for c in toks.values() for t in c})
    scope = {i for i, (_, ch, _) in docs.items() if channel is None or ch == channel}
    chosen = dict.fromkeys(terms, 1.0)
    expanded = [t for t in vocab if t.startswith(terms[-1]) and any(t in toks[i] for i in scope)]
    for t in expanded[: knobs.MAX_SEARCH_PREFIX_MATCHES_COUNT]:
        chosen.setdefault(t, 0.5)
    scores: dict[str, float] = {}
    for t in sorted(chosen):
        df = sum(1 for c in toks.values() if t in c)
        if not df:
            continue
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for i in scope:
            tf = toks[i][t]
            if tf:
                dl = sum(toks[i].values())
                scores[i] = scores.get(i, 0.0) + chosen[t] * idf * 2.2 * tf / (tf + 1.2 * (0.25 + 0.75 * dl / avgdl))
    return sorted(scores, key=lambda i: (-scores[i], -docs[i][2], i))


def test_search_index_is_a_catalog_index_with_postings_in_the_log(backend: TestBackend) -> None:
    info = backend.db.catalog.index("messages", "search_body")
    assert info is not None and info.kind == SEARCH_KIND and info.state == ENABLED
    assert info.fields == ("body", "channel", "author")
    backend.mutation("messages:add", {"body": "alpha beta alpha", "channel": "c"})
    p = backend.db.persistence
    ts = backend.db.latest_ts()
    keys = [k for k, _ in p.index_keys(info.index_id, b"", None, ts, 1000)]
    unfiltered = [k for k in keys if k[0] == postings.UNFILTERED]
    assert sorted(postings.term_of(k, 1)[0] for k in unfiltered) == ["alpha", "beta"]
    assert len([k for k in keys if 1 <= k[0] <= 2]) == 4  # per filter field and term
    alpha = next(k for k in unfiltered if postings.term_of(k, 1)[0] == "alpha")
    posting = postings.decode_posting(alpha, postings.suffix_offset(alpha))
    assert (posting.tf, posting.length) == (2, 3)
    # A database query cannot read it as an ordinary index.
    with pytest.raises(Exception) as err:
        backend.run(lambda ctx: ctx.db.query("messages").with_index("search_body").collect())
    assert getattr(err.value, "code", None) == "IndexNotFound"


def test_statistics_are_exact_at_every_snapshot(backend: TestBackend) -> None:
    info = backend.db.catalog.index("messages", "search_body")
    assert info is not None
    stats = backend.db.text_search.statistics(info)  # type: ignore[union-attr]
    snapshots = []
    ids = []
    for body in ("red fish", "red red cat", "blue fish"):
        ids.append(backend.mutation("messages:add", {"body": body}))
        snapshots.append(backend.db.latest_ts())
    backend.mutation("messages:edit", {"id": ids[0], "body": "green"})
    backend.mutation("messages:remove", {"id": ids[1]})
    now = backend.db.latest_ts()
    assert stats.corpus(now) == (2, 3)
    assert (stats.df("red", now), stats.df("fish", now), stats.df("green", now)) == (0, 1, 1)
    # Older snapshots, after the cache moved past them.
    assert stats.corpus(snapshots[1]) == (2, 5)
    assert stats.df("red", snapshots[1]) == 2
    assert stats.df("fish", snapshots[2]) == 2


@pytest.mark.parametrize("exact", [100_000, 0])
def test_top_k_matches_a_reference_bm25(backend: TestBackend, monkeypatch: pytest.MonkeyPatch, exact: int) -> None:
    """Scoring every posting and the threshold algorithm (exact=0) both return the order
    BM25 over the whole corpus predicts, for take(k), collect() and filters."""
    monkeypatch.setattr(knobs, "SEARCH_EXACT_POSTINGS_COUNT", exact)
    rng = random.Random(7)
    docs: dict[str, tuple[str, str, float]] = {}
    bodies = zipf_corpus(rng, 150)
    channels = [rng.choice("ab") for _ in bodies]
    for i in range(0, len(bodies), 50):
        backend.mutation("messages:add_many", {"bodies": bodies[i : i + 25], "channel": "a"})
        backend.mutation("messages:add_many", {"bodies": bodies[i + 25 : i + 50], "channel": "b"})
    del channels

    def load(ctx: Any) -> list[tuple[str, str, str, float]]:
        return [(d["_id"], d["body"], d["channel"], d["_creationTime"]) for d in ctx.db.query("messages").collect()]

    for id_, body, channel, ct in backend.run(load):
        docs[id_] = (body, channel, ct)
    for text in ("w0 w1", "w3 w0 w12", "w1 w2 w", "w7", "w1"):
        for channel in (None, "b"):
            want = reference(docs, text, channel)
            assert search_ids(backend, text, channel) == want, (text, channel)
            assert search_ids(backend, text, channel, n=5) == want[:5], (text, channel)


def test_threshold_algorithm_reads_few_documents_for_a_common_term(
    backend: TestBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(knobs, "SEARCH_EXACT_POSTINGS_COUNT", 0)
    backend.mutation("messages:add_many", {"bodies": ["common filler"] * 300})
    backend.mutation("messages:add_many", {"bodies": ["common rare"] * 3})

    db = backend.db
    txn = db.begin(read_only=True)
    found = [d["body"] for d in Query(txn, "messages").with_search_index(
        "search_body", lambda q: q.search("body", "common rare")).take(3)]
    assert found == ["common rare"] * 3
    # The three best come from the "rare" stream; far fewer than 303 documents are read.
    assert txn.rows_read < 50


def test_backfill_of_a_new_search_index_reports_progress(tmp_path: Path) -> None:
    from convection import define_schema, define_table, v
    from convection.database.database import Database
    from convection.persistence.memory import MemoryPersistence
    from convection.search import SearchKind

    db = Database(MemoryPersistence())
    try:
        SearchKind.attach(db)
        for chunk in range(3):
            txn = db.begin()
            for i in range(1000):
                txn.insert("posts", {"text": f"hello world {chunk} {i}", "tag": "x" if i % 2 else "y"})
            db.commit(txn)
        seen: list[tuple[str, int]] = []
        schema = define_schema({"posts": define_table({"text": v.string(), "tag": v.string()}).search_index(
            "by_text", search_field="text", filter_fields=["tag"])})
        db.set_schema(schema, progress=lambda name, n: seen.append((name, n)))
        assert seen and seen[-1] == ("posts.by_text", 3000)
        assert [n for _, n in seen] == sorted(n for _, n in seen)
        txn = db.begin(read_only=True)
        found = Query(txn, "posts").with_search_index(
            "by_text", lambda q: q.search("text", "hello 7").eq("tag", "x")).take(5)
        assert len(found) == 5 and all(d["tag"] == "x" for d in found)
        # Writes after the backfill keep it current; statistics include both.
        txn = db.begin()
        txn.insert("posts", {"text": "late hello", "tag": "x"})
        db.commit(txn)
        info = db.catalog.index("posts", "by_text")
        assert info is not None
        stats = db.text_search.statistics(info)  # type: ignore[union-attr]
        assert stats.corpus(db.latest_ts())[0] == 3001
        assert stats.df("hello", db.latest_ts()) == 3001
    finally:
        db.close()


def test_a_restart_tokenizes_no_document(tmp_path: Path) -> None:
    """No rebuild at start: the postings are in the log, so opening a deployment and
    answering a search analyzes no stored document (only the query text is tokenized)."""
    admin = Identity(kind="admin")

    def call(dep: Any, kind: str, path: str, args: dict[str, Any]) -> Any:
        fn = dep.app.run_query if kind == "query" else dep.app.run_mutation
        outcome = asyncio.run(fn(path, args, admin))
        assert outcome.success, outcome.error_message
        return outcome.value

    sizes = []
    for n in (50, 500):
        data = tmp_path / str(n)
        dep = open_deployment(APP, data, dev=True)
        try:
            for i in range(0, n, 50):
                call(dep, "mutation", "messages:add_many", {"bodies": [f"needle {j}" for j in range(i, i + 50)]})
        finally:
            dep.close()
            dep.app.loaded.unload()
        before = postings.TOKENIZED[0]
        dep = open_deployment(APP, data, dev=True)
        try:
            assert len(call(dep, "query", "messages:search_bodies", {"text": "needle 7", "limit": 3})) == 3
            sizes.append(postings.TOKENIZED[0] - before)
        finally:
            dep.close()
            dep.app.loaded.unload()
    # Opening analyzed nothing; the search analyzed at most the few documents it returned
    # (the same number whatever the corpus size).
    assert sizes[0] == sizes[1]
    assert sizes[1] <= 3


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_search_over_postings_on_every_store(store: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The same searches (filters, prefix, several terms, the transaction's own writes) on
    SQLite and PostgreSQL, reopened: everything comes from the stored entries."""
    from convection import define_schema, define_table, v
    from convection.database.database import Database
    from convection.persistence.base import Persistence
    from convection.persistence.sqlite import SqlitePersistence
    from convection.search import SearchKind

    def open_store() -> Persistence:
        if store == "postgres":
            from convection.persistence.postgres import PostgresPersistence

            return PostgresPersistence(url)
        return SqlitePersistence(tmp_path / "db.sqlite3")

    url = request.getfixturevalue("postgres_store_url") if store == "postgres" else ""
    schema = define_schema({"posts": define_table({"text": v.string(), "tag": v.string()}).search_index(
        "by_text", search_field="text", filter_fields=["tag"])})
    db = Database(open_store())
    SearchKind.attach(db)
    db.set_schema(schema)
    txn = db.begin()
    for i in range(40):
        txn.insert("posts", {"text": f"apple {'banana ' * (i % 3)}cherry{i % 5}", "tag": "ab"[i % 2]})
    db.commit(txn)
    db.close()

    db = Database(open_store())
    try:
        SearchKind.attach(db)

        def run(text: str, tag: str | None = None, txn: Any = None) -> list[str]:
            txn = txn or db.begin(read_only=True)

            def build(q: Any) -> Any:
                q = q.search("text", text)
                return q.eq("tag", tag) if tag is not None else q

            return [d["text"] for d in Query(txn, "posts").with_search_index("by_text", build).take(50)]

        assert len(run("apple")) == 40
        assert all(t.endswith("cherry1") for t in run("cherry1"))
        assert len(run("cherry1")) == 8
        assert run("banana", "a")[0].count("banana") == 2  # tf 2 first, all tagged "a"
        assert len(run("banana", "a")) == 13
        assert sorted({t.split()[-1] for t in run("zzz cher")}) == [f"cherry{i}" for i in range(5)]
        txn = db.begin()
        txn.insert("posts", {"text": "banana banana banana", "tag": "a"})
        assert run("banana", "a", txn)[0] == "banana banana banana"
        db.commit(txn)
        assert run("banana", "a")[0] == "banana banana banana"
    finally:
        db.close()
